"""Operators' endpoints: principals, syncs and the audit log to read, and "sync now" — each behind the
admin's own gate: an active staff member holding the Django model permission the admin asks for the same
thing (``view_awsrole``, ``view_syncrun``, ``view_auditevent``; ``change_awsrole`` to sync), and while the
admin requires a second factor (``AKERU_ADMIN_REQUIRE_MFA``), a browser session the admin itself would
let in, or for a token (robots) an owner with a second factor enrolled. Lists are paginated with
``?limit=`` and ``?offset=`` (``next`` is the URL of the following page)."""

from django.contrib import admin
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.generics import ListAPIView
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.response import Response

from ...models import ApiToken, AuditEvent, AWSRole, SyncRun
from ...services import principals as principal_service
from ...settings.accessor import akeru_settings
from ..signin import has_second_factor
from . import serializers as s
from .base import AkeruPolicy, ApiView
from .errors import Problem


class ModelPermission(BasePermission):
    """The admin's gate, then the view's ``required_permission`` (a Django model permission, ``app.codename``)."""

    def has_permission(self, request, view):
        user = request.user
        if not (user and user.is_authenticated and user.is_active and user.is_staff):
            self.message = "The operators' endpoints are for staff (the people the admin lets in)."
            return False
        if isinstance(request.auth, ApiToken):
            if akeru_settings.AKERU_ADMIN_REQUIRE_MFA and not has_second_factor(user):
                self.message = ("The admin requires a second factor: enrol an authenticator app or a passkey on "
                                "/access/mfa/ before using a token for the operators' endpoints.")
                return False
        elif not admin.site.has_permission(request._request):
            self.message = "Open the admin once with your second factor in this browser session first."
            return False
        self.message = f"This needs the permission {view.required_permission}."
        return user.has_perm(view.required_permission)


class Page(LimitOffsetPagination):
    default_limit = 100
    max_limit = 1000


class OperatorList(AkeruPolicy, ListAPIView):
    permission_classes = [IsAuthenticated, ModelPermission]
    pagination_class = Page
    required_permission = ""


@extend_schema(summary="Every principal and its sync status (view_awsrole)")
class AdminPrincipals(OperatorList):
    required_permission = "akeru.view_awsrole"
    serializer_class = s.OperatorPrincipalOut
    queryset = AWSRole.objects.select_related("account").order_by("account__name", "name", "pk")


@extend_schema(summary="Sync runs, newest first (view_syncrun)")
class AdminSyncs(OperatorList):
    required_permission = "akeru.view_syncrun"
    serializer_class = s.SyncRunOut
    queryset = SyncRun.objects.order_by("-started_at", "-pk")


@extend_schema(summary="The audit log, newest first (view_auditevent)")
class AdminAudit(OperatorList):
    required_permission = "akeru.view_auditevent"
    serializer_class = s.AuditEventOut
    queryset = AuditEvent.objects.order_by("-at", "-pk")


class AdminSync(ApiView):
    permission_classes = [IsAuthenticated, ModelPermission]
    required_permission = "akeru.change_awsrole"

    @extend_schema(summary="Sync now: re-check IAM and repair (change_awsrole)", request=None,
                   responses={202: s.SyncQueuedOut, 401: s.ErrorOut, 403: s.ErrorOut, 404: s.ErrorOut, 409: s.ErrorOut})
    def post(self, request, pk):
        principal = get_object_or_404(AWSRole, pk=pk)
        if not principal_service.sync_now([principal.pk], trigger="api sync now"):
            raise Problem(status.HTTP_409_CONFLICT, "PrincipalUnavailable",
                          f"{principal.name} is being deleted; there is nothing to sync.")
        return Response(s.SyncQueuedOut({"queued": True, "generation": principal.generation}).data,
                        status=status.HTTP_202_ACCEPTED)
