"""The site's URLs plus a stand-in for the single sign-on part's ``akeru-oidc-login`` page (built on
another branch): the login page's button must link to it with ``?next=``."""

from django.http import HttpResponse
from django.urls import path

from worker.urls import urlpatterns as site_urlpatterns

urlpatterns = [
    path("accounts/oidc/login/", lambda request: HttpResponse("the identity provider"), name="akeru-oidc-login"),
    *site_urlpatterns,
]
