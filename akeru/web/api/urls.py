"""``/api/v1/``: mounted by ``akeru/urls.py`` as ``path("api/v1/", include("akeru.web.api.urls"))`` (namespace
``akeru:api``). ``api/v1/auth/…`` belongs to the command line's sign-in (plain Django views in
``akeru/urls.py``, before this include); every other unknown path here answers ``NotFound`` as JSON."""

from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.permissions import AllowAny

from . import operators, schema, views  # noqa: F401 - schema: its extensions register on import
from .base import NoStore, NoSuchEndpoint

app_name = "api"


class Schema(NoStore, SpectacularAPIView):
    """The OpenAPI 3 schema (public: it describes the API, and holds nothing about anyone; no
    authentication is even tried, so no password is ever checked here)."""

    authentication_classes = []
    permission_classes = [AllowAny]


class Docs(NoStore, SpectacularSwaggerSplitView):
    """Swagger UI from drf-spectacular-sidecar's static files: no CDN, no inline script."""

    url_name = "akeru:api:schema"
    authentication_classes = []
    permission_classes = [AllowAny]


urlpatterns = [
    path("me/", views.Me.as_view(), name="me"),
    path("principals/", views.Principals.as_view(), name="principals"),
    # <path:…>: a principal may be named ACCOUNT/NAME
    path("principals/<path:ref>/credentials/", views.Credentials.as_view(), name="credentials"),
    path("principals/<path:ref>/console/", views.Console.as_view(), name="console"),
    path("requests/", views.Requests.as_view(), name="requests"),
    path("requests/<int:pk>/", views.RequestDetail.as_view(), name="request"),
    path("requests/<int:pk>/cancel/", views.RequestCancel.as_view(), name="request-cancel"),
    path("requests/<int:pk>/end/", views.RequestEnd.as_view(), name="request-end"),
    path("approvals/", views.Approvals.as_view(), name="approvals"),
    path("approvals/<int:pk>/", views.Decide.as_view(), name="decide"),
    path("denials/", views.Denials.as_view(), name="denials"),
    path("tokens/", views.Tokens.as_view(), name="tokens"),
    path("tokens/<int:pk>/", views.TokenDetail.as_view(), name="token"),
    path("admin/principals/", operators.AdminPrincipals.as_view(), name="admin-principals"),
    path("admin/principals/<int:pk>/sync/", operators.AdminSync.as_view(), name="admin-sync"),
    path("admin/syncs/", operators.AdminSyncs.as_view(), name="admin-syncs"),
    path("admin/audit/", operators.AdminAudit.as_view(), name="admin-audit"),
    path("schema/", Schema.as_view(), name="schema"),
    path("docs/", Docs.as_view(), name="docs"),
    re_path(r"^.*$", NoSuchEndpoint.as_view(), name="not-found"),  # last
]
