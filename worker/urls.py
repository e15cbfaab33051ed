from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("scim/v2/", include("akeru.scim_urls")),  # the identity provider's SCIM (off unless AKERU_SCIM_TOKEN)
    path("", include("akeru.urls")),  # /access/, and /accounts/login/ + logout in Akeru's look
    path("accounts/", include("django.contrib.auth.urls")),  # password change and reset
    path("", RedirectView.as_view(pattern_name="akeru:access", permanent=False)),
]
