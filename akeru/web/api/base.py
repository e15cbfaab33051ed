"""What every API view shares: who may call (set here, on the views, so that a host project whose
``REST_FRAMEWORK`` setting lacks Akeru's lines still gets them, never DRF's Basic authentication, open
permissions or browsable pages), the one error shape, answers never cached, the caller as an audit
``Requester`` on channel ``api``, and the ``NotFound`` every unknown path under ``/api/v1/`` gets."""

from drf_spectacular.utils import extend_schema
from rest_framework import exceptions
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from ...models import AuditEvent
from .. import http
from .authentication import BearerTokenAuthentication, CsrfSessionAuthentication
from .errors import exception_handler


class NoStore:
    """``Cache-Control: no-store`` on every answer, errors included (a mixin for DRF's views)."""

    def finalize_response(self, request, response, *args, **kwargs):
        return http.no_store(super().finalize_response(request, response, *args, **kwargs))


class AkeruPolicy(NoStore):
    """Akeru's API policy on a DRF view (a mixin): bearer tokens, then the session with CSRF; signed-in
    callers only; JSON only; the errors' one shape; never cached."""

    authentication_classes = [BearerTokenAuthentication, CsrfSessionAuthentication]
    permission_classes = [IsAuthenticated]
    renderer_classes = [JSONRenderer]

    def get_exception_handler(self):
        return exception_handler


class ApiView(AkeruPolicy, APIView):
    audit_action = None  # vend views: the audit action a refused token is recorded under

    def requester(self):
        return http.requester(self.request, AuditEvent.Channel.API)

    def via(self):
        return http.via(self.request, AuditEvent.Channel.API)


@extend_schema(exclude=True)
class NoSuchEndpoint(ApiView):
    """Any path under ``/api/v1/`` that names no endpoint: ``NotFound`` in the API's shape (never a page),
    with a hint where only the trailing slash is missing."""

    authentication_classes = []
    permission_classes = [AllowAny]

    def initial(self, request, *args, **kwargs):
        path = request.path
        hint = f" (API paths end in '/': {path}/)" if not path.endswith("/") else ""
        raise exceptions.NotFound(f"No API endpoint at {path}{hint}.")
