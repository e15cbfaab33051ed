"""What every API view shares: answers never cached, the caller as an audit ``Requester`` on channel ``api``,
and the ``NotFound`` every unknown path under ``/api/v1/`` gets."""

from drf_spectacular.utils import extend_schema
from rest_framework import exceptions
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

from ...models import AuditEvent
from .. import http


class NoStore:
    """``Cache-Control: no-store`` on every answer, errors included (a mixin for DRF's views)."""

    def finalize_response(self, request, response, *args, **kwargs):
        return http.no_store(super().finalize_response(request, response, *args, **kwargs))


class ApiView(NoStore, APIView):
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
