from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("akeru.urls")),  # /access/, and /accounts/login/ + logout in Akeru's look
    path("accounts/", include("django.contrib.auth.urls")),  # password change and reset
    path("", RedirectView.as_view(pattern_name="akeru:access", permanent=False)),
]
