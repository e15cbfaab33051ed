"""The person's endpoints: who am I, my principals, vending credentials and console sign-ins, my requests,
my approvals, my denied calls and my tokens.

Every rule is a service's (``akeru.services.vending``, ``akeru.services.requests``, ``akeru.tokens``); a
view reads the body, calls it with the caller as a ``Requester`` on channel ``api``, and shows its answer.
A refusal raised by a service becomes the error shape in ``errors.exception_handler``.
"""

from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response

from ... import tokens
from ...models import AccessRequest, ApiToken, AuditEvent, Passkey
from ...services import denials as denial_service
from ...services import requests as request_service
from ...services import vending
from ...settings.accessor import akeru_settings
from . import serializers as s
from .base import ApiView
from .errors import Problem

REF = OpenApiParameter("ref", str, OpenApiParameter.PATH,
                       description="The principal: NAME, or ACCOUNT/NAME (account id or display name).")
ERRORS = {code: s.ErrorOut for code in (400, 401, 403, 404)}
VEND_ERRORS = {**ERRORS, 502: s.ErrorOut}


def _valid(serializer_class, request):
    form = serializer_class(data=request.data)
    form.is_valid(raise_exception=True)
    return form.validated_data


# --- who I am -------------------------------------------------------------------------------------


class Me(ApiView):
    @extend_schema(summary="Who am I", responses={200: s.MeOut, 401: s.ErrorOut})
    def get(self, request):
        user = request.user
        token = request.auth if isinstance(request.auth, ApiToken) else None
        me = {
            "username": user.get_username(), "email": user.email, "name": user.get_full_name(),
            "groups": sorted(user.groups.values_list("name", flat=True)),
            "mfa": {"totp": vending.mfa_device(user) is not None, "passkeys": Passkey.objects.filter(user=user).count()},
            "token": token and {"id": token.pk, "kind": token.kind, "name": token.name,
                                "expires_at": token.expires_at},
        }
        return Response(s.MeOut(me).data)


# --- principals and vending -----------------------------------------------------------------------


class Principals(ApiView):
    @extend_schema(summary="The principals I may use, and those I may ask for", operation_id="principals_list", responses={200: s.PrincipalsOut, 401: s.ErrorOut})
    def get(self, request):
        user = request.user
        principals = [{
            "ref": item.ref, "name": item.role.name, "account": item.account,
            "kind": "user" if item.role.user else "role", "mfa": item.role.mfa,
            "require_passkey": item.role.require_passkey, "status": item.role.status, "usable": item.usable,
            "reason": item.reason, "access_until": item.expires_at, "via": item.via,
            "session_seconds": item.session_seconds,
        } for item in vending.entitlements(user)]
        askable = list(request_service.requestable_for(user).select_related("account"))
        ref = request_service.refs(askable)
        requestable = [{"ref": ref[p.pk], "name": p.name, "account": p.account,
                        "max_duration_seconds": int(p.request_policy.max_duration.total_seconds())} for p in askable]
        return Response(s.PrincipalsOut({"principals": principals, "requestable": requestable}).data)


# The MFA code never in a 500's error report. Decorating ``dispatch`` marks Django's own request, which the
# report is made from (DRF's ``Request`` wraps it and copies a form body into its ``POST``).
NO_MFA_CODE_IN_REPORTS = method_decorator(sensitive_post_parameters("mfa_code"), name="dispatch")


@NO_MFA_CODE_IN_REPORTS
class Credentials(ApiView):
    audit_action = AuditEvent.Action.CREDENTIALS

    @extend_schema(summary="Vend temporary credentials", parameters=[REF], request=s.CredentialsIn,
                   responses={200: s.CredentialsOut, **VEND_ERRORS})
    def post(self, request, ref):
        data = _valid(s.CredentialsIn, request)
        creds, _ = vending.vend(self.requester(), ref, mfa_code=data.get("mfa_code"))
        return Response(s.CredentialsOut({**creds.as_process_json(), "AccessUntil": creds.access_until}).data)


@NO_MFA_CODE_IN_REPORTS
class Console(ApiView):
    audit_action = AuditEvent.Action.CONSOLE

    @extend_schema(summary="A console sign-in URL", parameters=[REF], request=s.ConsoleIn,
                   responses={200: s.ConsoleOut, **VEND_ERRORS})
    def post(self, request, ref):
        data = _valid(s.ConsoleIn, request)  # a bad service or region: nothing is vended
        issuer = request.build_absolute_uri(reverse("akeru:access"))
        creds, url = vending.vend(self.requester(), ref, mfa_code=data.get("mfa_code"), console_issuer=issuer,
                                  service=data.get("service") or None, region=data.get("region") or None)
        return Response(s.ConsoleOut({"url": url, "expires_at": creds.expiration}).data)


# --- requests -------------------------------------------------------------------------------------


def _with_details(queryset):
    """Requests with what their answer shows: principal and account, decisions."""
    return queryset.select_related("principal__account", "principal__request_policy").prefetch_related("decisions")


def _bundles_of(reqs):
    """``{bundle id: its members}`` of the bundles ``reqs`` belong to (one query each)."""
    return {req.bundle_id: req.bundle_members() for req in reqs if req.bundle_id}


def _bundle_shown(members, ref):
    return {"id": members[0].bundle_id, "requests": [m.pk for m in members],
            "principals": [{"ref": ref[m.principal_id], "name": m.principal.name, "account": m.principal.account}
                           for m in members]}


def _shown(reqs):
    """Requests as the API answers them (``AccessRequestOut``)."""
    bundles = _bundles_of(reqs)
    ref = request_service.refs({req.principal for req in reqs} | {m.principal for ms in bundles.values() for m in ms})
    return [{
        "id": req.pk, "requester": req.requester_name, "state": req.state,
        "principal": {"ref": ref[req.principal_id], "name": req.principal.name, "account": req.principal.account},
        "duration_seconds": int(req.duration.total_seconds()), "reason": req.reason,
        "ticket": req.ticket, "ticket_url": request_service.ticket_url(req) or None, "created_at": req.created_at, "decided_at": req.decided_at,
        "starts_at": req.decided_at if req.access_until else None, "ends_at": req.access_until,
        "decisions": [{"by": d.approver_name, "decision": "approve" if d.approve else "deny", "comment": d.comment,
                       "at": d.at} for d in sorted(req.decisions.all(), key=lambda d: (d.at, d.pk))],
        "bundle": _bundle_shown(bundles[req.bundle_id], ref) if req.bundle_id else None,
        "missing": _missing(req), "escalated_at": req.escalated_at, "auto_approved": req.auto_approved,
        "scope_mode": req.scope_mode, "scope": req.scope, "scope_policy": req.scope_policy, "findings": req.findings,
    } for req in reqs]


def _missing(req):
    if req.state != AccessRequest.State.PENDING:
        return []
    return request_service.approval_state(req, request_service.policy_of(req.principal)).missing


def _one(pk):
    """One request, re-read as it is now, shown."""
    return Response(s.AccessRequestOut(_shown([_with_details(AccessRequest.objects).get(pk=pk)])[0]).data)


class Requests(ApiView):
    @extend_schema(summary="My access requests", operation_id="requests_list", responses={200: s.AccessRequestsOut, 401: s.ErrorOut})
    def get(self, request):
        return Response(s.AccessRequestsOut({"requests": _shown(list(_with_details(request_service.requests_of(request.user))))}).data)

    @extend_schema(summary="Ask for access (to one principal, or to several at once: a bundle)", request=s.RequestIn,
                   responses={201: s.RequestCreatedOut, **ERRORS})
    def post(self, request):
        data = _valid(s.RequestIn, request)
        if "principals" in data:
            return self._ask_bundle(request, data)
        name = data["principal"]
        principal, why = request_service.visible_principal(request.user, name)
        if principal is None:
            if why:
                raise Problem(status.HTTP_403_FORBIDDEN, "AmbiguousName", why[:1].upper() + why[1:] + ".")
            raise request_service.refuse_unseen(self.requester(), name, AuditEvent.Action.REQUESTED,
                                                {"page": request.path[:200], "method": request.method})
        req = request_service.ask(request.user, principal, data["duration"], data["reason"], via=self.via(),
                                  ticket=data["ticket"], scope=data.get("scope"))
        response = _one(req.pk)
        response.status_code = status.HTTP_201_CREATED
        return response

    def _ask_bundle(self, request, data):
        """All the principals or none; names that name no principal the caller may see are reported with the rest
        (``RequestRefused``), each the way vending answers a name it does not know."""
        principals, problems = request_service.principals_named(request.user, data["principals"], via=self.via())
        req = request_service.ask_bundle(request.user, principals, data["duration"], data["reason"], via=self.via(),
                                         ticket=data["ticket"], problems=problems, scope=data.get("scope"))
        members = _shown(list(_with_details(AccessRequest.objects).filter(
            pk__in=[m.pk for m in req.bundle_members()]).order_by("pk")))
        answer = {**members[0], "members": members} if req.bundle_id else members[0]
        return Response(s.RequestCreatedOut(answer).data, status=status.HTTP_201_CREATED)


def _mine(request, pk):
    return get_object_or_404(AccessRequest.objects.select_related("principal"), pk=pk, requester=request.user)


class RequestDetail(ApiView):
    @extend_schema(summary="One of my requests", responses={200: s.AccessRequestOut, 401: s.ErrorOut, 404: s.ErrorOut})
    def get(self, request, pk):
        return _one(_mine(request, pk).pk)


class RequestCancel(ApiView):
    @extend_schema(summary="Cancel my pending request", request=None, responses={200: s.AccessRequestOut, **ERRORS})
    def post(self, request, pk):
        req = request_service.cancel(request.user, _mine(request, pk), via=self.via())
        return _one(req.pk)


class RequestEnd(ApiView):
    @extend_schema(summary="End the access my request gave, now", request=None,
                   responses={200: s.AccessRequestOut, **ERRORS})
    def post(self, request, pk):
        req = request_service.end_now(request.user, _mine(request, pk), via=self.via())
        return _one(req.pk)


class Approvals(ApiView):
    @extend_schema(summary="Pending requests I may decide", operation_id="approvals_list", responses={200: s.AccessRequestsOut, 401: s.ErrorOut})
    def get(self, request):
        pending = list(_with_details(request_service.pending_for_approver(request.user)))
        return Response(s.AccessRequestsOut({"requests": _shown(pending)}).data)


class Decide(ApiView):
    @extend_schema(summary="Approve or deny a request", request=s.DecisionIn,
                   responses={200: s.AccessRequestOut, 409: s.ErrorOut, **ERRORS})
    def post(self, request, pk):
        req = request_service.decidable(request.user, pk)
        if req is None:
            raise Problem(status.HTTP_404_NOT_FOUND, "NotFound", request_service.NOT_YOURS.format(pk=pk))
        data = _valid(s.DecisionIn, request)
        decide = request_service.approve if data["decision"] == "approve" else request_service.deny
        req = decide(request.user, req, data["comment"], via=self.via())
        return _one(req.pk)


# --- denied calls ---------------------------------------------------------------------------------


def _denial_shown(request, denial):
    event, principal, suggestion = denial.event, denial.principal, denial.suggestion
    shown = {
        "principal": principal and {"ref": denial.ref, "name": principal.name, "account": principal.account},
        "action": event.action, "resource": denial.resource, "resources": list(event.resources or ()),
        "account_id": event.account_id, "region": event.region, "count": denial.count, "first_at": denial.first_at,
        "last_at": denial.last_at, "kind": event.deny_kind or "unknown", "explanation": denial.explain,
        "suggestion": None, "explicit": None, "hint": None,
    }
    if denial.kind == denial_service.REQUEST:
        shown["suggestion"] = {
            "statement": suggestion.statement, "note": suggestion.note, "flags": list(suggestion.flags),
            "findings": [f.as_dict() for f in suggestion.findings], "forbidden": list(denial.forbidden),
            "requestable": denial.requestable, "request_mode": denial.request_mode or ("whole" if denial.request_url
                                                                                       else None),
            "request_note": denial.mode_note or None,
            "request_url": request.build_absolute_uri(denial.request_url) if denial.request_url else None,
            "request_command": denial.request_command or None, "ask": denial.ask or None,
        }
    elif denial.kind == denial_service.CHANGE:
        shown["explicit"] = {"policy": event.deny_policy, "who_can_change": denial.who_can_change}
    else:
        shown["hint"] = denial.ask or None
    return shown


class Denials(ApiView):
    @extend_schema(summary="My denied calls of late, and what would allow each", operation_id="denials_list",
                   responses={200: s.DenialsOut, 401: s.ErrorOut})
    def get(self, request):
        shown = [_denial_shown(request, denial) for denial in denial_service.recent(request.user)]
        return Response(s.DenialsOut({"window_days": akeru_settings.AKERU_DENIALS_WINDOW_DAYS,
                                      "denials": shown}).data)


# --- tokens ---------------------------------------------------------------------------------------


class Tokens(ApiView):
    @extend_schema(summary="My tokens (not revoked; expired ones too)", operation_id="tokens_list", responses={200: s.TokensOut, 401: s.ErrorOut})
    def get(self, request):
        rows = ApiToken.objects.filter(user=request.user).active()
        shown = [{"id": row.pk, "kind": row.kind, "name": row.name,
                  "host": row.host, "hint": row.hint, "created_at": row.created_at,
                  "last_used_at": row.last_used_at, "expires_at": row.expires_at,
                  "session_expires_at": row.session_expires_at} for row in rows]
        return Response(s.TokensOut({"tokens": shown}).data)


class TokenDetail(ApiView):
    @extend_schema(summary="Revoke one of my tokens", responses={204: None, 401: s.ErrorOut, 404: s.ErrorOut})
    def delete(self, request, pk):
        if tokens.revoke(self.requester(), pk) is None:
            raise Problem(status.HTTP_404_NOT_FOUND, "NotFound", "You hold no such token (or it was already revoked).")
        return Response(status=status.HTTP_204_NO_CONTENT)
