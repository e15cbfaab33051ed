"""``/scim/v2/``: the identity provider (Okta, Entra) pushes people and groups (docs/scim.md).

django-scim2 does the protocol — routing, discovery (ServiceProviderConfig, ResourceTypes, Schemas),
filters (``userName eq "…"``) turned into SQL, list responses and SCIM error JSON. Akeru's parts:

- ``BearerToken`` (django-scim2's ``AUTH_CHECK_MIDDLEWARE``): ``Authorization: Bearer <AKERU_SCIM_TOKEN>``,
  compared in constant time; 401 SCIM error otherwise; SCIM off (no token set) answers 404;
- ``User`` and ``Group``, the adapters of ``auth.User`` and ``auth.Group``, their SCIM ids in ``ScimUser``
  and ``ScimGroup``; what Okta and Entra send is read through ``scim_payloads`` first (their quirks);
- the views: one transaction per request (rolled back when the answer is an error), every change and
  every refusal an ``AuditEvent`` (channel ``scim``), ``akeru_scim_requests_total`` counted;
- deactivation (``active`` false by PUT or PATCH, or DELETE) is ``akeru.services.people.deactivate``.
"""

import json
import uuid

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group as DjangoGroup
from django.db import transaction
from django.http import HttpResponse
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_exempt
from django_scim import adapters, constants, exceptions, models as scim_models, views

from .. import audit
from ..metrics.instruments import SCIM_REQUESTS
from ..models import AuditEvent, ScimGroup, ScimUser
from ..services import people
from ..settings.accessor import akeru_settings
from . import scim_payloads as payloads
from .scim_hooks import GroupFilter, UserFilter, error
from .http import client_ip

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
MAX_RESULTS = 200  # a page of a list or a filter holds at most this many (ServiceProviderConfig says so)


def requester(request):
    """The identity provider, for the audit log: no Akeru user, the SCIM channel, its address."""
    return audit.Requester(None, channel=AuditEvent.Channel.SCIM, source_ip=client_ip(request),
                           user_agent=request.headers.get("User-Agent", ""))


def base_location(request=None, *args, **kwargs):
    """django-scim2's ``BASE_LOCATION_GETTER``: where this request reached Akeru."""
    return request.build_absolute_uri("/") if request is not None else "/"


class ServiceProviderConfig(scim_models.SCIMServiceProviderConfig):
    def to_dict(self):
        config = super().to_dict()
        config.update({
            "documentationUri": None,
            "filter": {"supported": True, "maxResults": MAX_RESULTS},
            "changePassword": {"supported": False},
            "authenticationSchemes": [{
                "type": "oauthbearertoken", "name": "Bearer token", "primary": True,
                "description": "Authorization: Bearer <AKERU_SCIM_TOKEN>",
            }],
        })
        return config


# --- the adapters -------------------------------------------------------------------------------------


def _scim_id(obj, model, field):
    row, _ = model.objects.get_or_create(**{field: obj})
    return row


class User(adapters.SCIMUser):
    """A Django user as a SCIM User. Kept: ``userName``, ``name.givenName``/``familyName``, the primary (or
    work) email, ``externalId``, ``active``. Other attributes are accepted and ignored; a SCIM password is
    never stored (people sign in through the identity provider)."""

    id_field = "akeru_scim__scim_id"
    ATTR_MAP = UserFilter.attr_map

    def __init__(self, obj, request=None):
        super().__init__(obj, request)
        self.active = None  # what the request says (None: unchanged); applied by save()
        self.external_id = None

    @property
    def scim(self):
        return _scim_id(self.obj, ScimUser, "user")

    @property
    def id(self):
        return str(self.scim.scim_id)

    @property
    def groups(self):
        return [{"value": str(_scim_id(g, ScimGroup, "group").scim_id), "display": g.name,
                 "$ref": Group(g, self.request).location} for g in self.obj.groups.order_by("name")]

    @property
    def display_name(self):
        full = f"{self.obj.first_name} {self.obj.last_name}".strip()
        return full or self.obj.username

    @property
    def emails(self):
        return [{"value": self.obj.email, "primary": True, "type": "work"}] if self.obj.email else []

    def to_dict(self):
        scim = self.scim
        self.obj.scim_external_id = scim.external_id  # where django-scim2 reads it
        d = super().to_dict()
        d["meta"]["lastModified"] = scim.updated_at.isoformat()
        if not d["externalId"]:
            del d["externalId"]
        return d

    def validate_dict(self, d):
        payloads.check_schemas(d, "User")

    def from_dict(self, d):
        """A POST or PUT: the whole person (what the request leaves out is emptied)."""
        username = d.get("userName")
        if not isinstance(username, str) or not username.strip():
            raise payloads.bad('"userName" is required.')
        self.set_username(username)
        name = d.get("name") or {}
        if not isinstance(name, dict):
            raise payloads.bad('"name" must be an object (givenName, familyName).')
        self.obj.first_name = str(name.get("givenName") or "")[:150]
        self.obj.last_name = str(name.get("familyName") or "")[:150]
        self.set_email(payloads.primary_email(d.get("emails")))
        if "externalId" in d:  # a PUT that leaves it out keeps it: the IdP's own reference, not a profile field
            self.external_id = str(d.get("externalId") or "")
        if d.get("active") is not None:
            self.active = payloads.boolean(d["active"])
        elif self.obj.pk is None:
            self.active = True

    def set_username(self, username):
        username = username.strip()
        if len(username) > 150:
            raise payloads.bad('"userName" is at most 150 characters.')
        taken = get_user_model().objects.filter(username__iexact=username).exclude(pk=self.obj.pk).exists()
        if taken:
            raise exceptions.IntegrityError(f"A user named {username!r} exists already.", scim_type="uniqueness")
        self.obj.username = username

    def set_email(self, email):
        if email:
            self.validate_email(email)
        self.obj.email = email

    def patch(self, body):
        """A PATCH: each operation as ``scim_payloads`` reads it, applied in order, then saved."""
        name_parts = {"name.givenName": "first_name", "givenName": "first_name",
                      "name.familyName": "last_name", "familyName": "last_name"}
        for op, attr, value in payloads.patch_operations(body):
            removing = op == "remove"
            if attr == "active":
                if removing:
                    raise payloads.bad('"active" cannot be removed; replace it with false.', "mutability")
                self.active = payloads.boolean(value)
            elif attr == "userName":
                if removing or not isinstance(value, str):
                    raise payloads.bad('"userName" must be a string.')
                self.set_username(value)
            elif attr in name_parts:
                setattr(self.obj, name_parts[attr], "" if removing else str(value or "")[:150])
            elif attr == "name":
                value = {} if removing else value
                if not isinstance(value, dict):
                    raise payloads.bad('"name" must be an object (givenName, familyName).')
                for key in ("givenName", "familyName"):
                    if removing or key in value:
                        setattr(self.obj, name_parts[key], str(value.get(key) or "")[:150])
            elif attr in ("emails", "emails.value"):
                self.set_email("" if removing else payloads.primary_email(value))
            elif attr == "externalId":
                self.external_id = "" if removing else str(value or "")
            # anything else (displayName, title, addresses, an extension's attributes…): accepted, not kept
        self.save()

    def save(self):
        creating = self.obj.pk is None
        with transaction.atomic():
            if creating:
                self.obj.set_unusable_password()
                self.obj.is_active = bool(self.active)
            self.obj.save()
            scim = self.scim
            if self.external_id is not None and scim.external_id != self.external_id:
                scim.external_id = self.external_id
            scim.save()
            who = requester(self.request)
            name = self.obj.get_username()
            action = AuditEvent.Action.SCIM_CREATED if creating else AuditEvent.Action.SCIM_UPDATED
            audit.record(who, action, AuditEvent.Outcome.SUCCESS,
                         f"user {name} {'provisioned' if creating else 'updated'} by the identity provider",
                         detail={"user": name, "scim_id": str(scim.scim_id), "method": self.request.method})
            if not creating and self.active is not None and self.active != self.obj.is_active:
                if self.active:
                    people.reactivate(self.obj, who)
                else:
                    people.deactivate(self.obj, who)
                self.obj.refresh_from_db()

    def delete(self):
        """DELETE of a person deactivates them (their audit trail and grants are kept, suspended)."""
        people.deactivate(self.obj, requester(self.request), why="the identity provider deleted the account")


class Group(adapters.SCIMGroup):
    """A Django group as a SCIM Group: ``displayName`` (the group's name), ``externalId``, ``members``."""

    id_field = "akeru_scim__scim_id"
    ATTR_MAP = GroupFilter.attr_map

    def __init__(self, obj, request=None):
        super().__init__(obj, request)
        self.external_id = None
        self.members_to = None  # a full list of member ids (POST, PUT, a replace), else None
        self.adding, self.removing = [], []

    @property
    def scim(self):
        return _scim_id(self.obj, ScimGroup, "group")

    @property
    def id(self):
        return str(self.scim.scim_id)

    @property
    def members(self):
        return [{"value": str(_scim_id(u, ScimUser, "user").scim_id), "display": u.get_username(),
                 "$ref": User(u, self.request).location} for u in self.obj.user_set.order_by("username")]

    def to_dict(self):
        self.obj.scim_external_id = self.scim.external_id  # where django-scim2 reads it
        d = super().to_dict()
        if not d["externalId"]:
            del d["externalId"]
        if "members" in self.request.GET.get("excludedAttributes", "").split(","):
            del d["members"]  # Entra asks so, to spare reading a large group
        return d

    def validate_dict(self, d):
        payloads.check_schemas(d, "Group")

    def from_dict(self, d):
        self.set_name(d.get("displayName"))
        if "externalId" in d:
            self.external_id = str(d.get("externalId") or "")
        self.members_to = payloads.member_ids(d.get("members"))

    def set_name(self, name):
        if not isinstance(name, str) or not name.strip():
            raise payloads.bad('"displayName" is required.')
        name = name.strip()
        if len(name) > 150:
            raise payloads.bad('"displayName" is at most 150 characters.')
        if DjangoGroup.objects.filter(name=name).exclude(pk=self.obj.pk).exists():
            raise exceptions.IntegrityError(f"A group named {name!r} exists already.", scim_type="uniqueness")
        self.obj.name = name

    def patch(self, body):
        for op, attr, value in payloads.patch_operations(body):
            if attr == "members":
                ids = payloads.member_ids(value)
                if op == "add":
                    self.adding += ids
                elif op == "remove":
                    if value is None:
                        self.members_to, self.adding, self.removing = [], [], []
                    else:
                        self.removing += ids
                else:
                    self.members_to, self.adding, self.removing = ids, [], []
            elif attr.startswith("members:"):
                if op != "remove":
                    raise payloads.bad("A member filter path is for removing that member.", "invalidPath")
                self.removing.append(attr.partition(":")[2])
            elif attr == "displayName":
                if op == "remove":
                    raise payloads.bad('"displayName" cannot be removed.', "mutability")
                self.set_name(value)
            elif attr == "externalId":
                self.external_id = "" if op == "remove" else str(value or "")
            elif attr == "id":
                continue  # Okta's replace repeats the group's id beside its new displayName
            else:
                raise payloads.bad(f"A Group has no attribute {attr!r} Akeru keeps (displayName, externalId, "
                                   "members).", "invalidPath")
        self.save()

    def _users(self, ids):
        """The users of these SCIM ids; a SCIM 400 naming those that are no user's."""
        parsed = {}
        for value in ids:
            try:
                parsed[value] = uuid.UUID(value)
            except ValueError:
                parsed[value] = None
        found = {row.scim_id: row.user for row in ScimUser.objects.select_related("user")
                 .filter(scim_id__in=[u for u in parsed.values() if u is not None])}
        missing = sorted(value for value, u in parsed.items() if u not in found)
        if missing:
            raise payloads.bad(f"No such user: {', '.join(missing)} (members are SCIM user ids).")
        return [found[u] for u in dict.fromkeys(parsed.values())]

    def save(self):
        creating = self.obj.pk is None
        with transaction.atomic():
            self.obj.save()
            scim = self.scim
            if self.external_id is not None:
                scim.external_id = self.external_id
            scim.save()
            before = set(self.obj.user_set.values_list("username", flat=True))
            if self.members_to is not None:
                self.obj.user_set.set(self._users(self.members_to))
            if self.adding:
                self.obj.user_set.add(*self._users(self.adding))
            if self.removing:
                self.obj.user_set.remove(*self._users(self.removing))
            after = set(self.obj.user_set.values_list("username", flat=True))
            action = AuditEvent.Action.SCIM_CREATED if creating else AuditEvent.Action.SCIM_UPDATED
            added, removed = sorted(after - before), sorted(before - after)
            change = "; ".join(part for part in (f"added {', '.join(added)}" if added else "",
                                                 f"removed {', '.join(removed)}" if removed else "") if part)
            audit.record(requester(self.request), action, AuditEvent.Outcome.SUCCESS,
                         f"group {self.obj.name} {'provisioned' if creating else 'updated'} by the identity provider"
                         + (f": {change}" if change else ""),
                         detail={"group": self.obj.name, "scim_id": str(scim.scim_id), "added": added,
                                 "removed": removed, "method": self.request.method})

    def delete(self):
        """DELETE of a group: the group goes, and with it its members' grants through it."""
        name, members = self.obj.name, sorted(self.obj.user_set.values_list("username", flat=True))
        scim_id = self.id
        self.obj.delete()
        audit.record(requester(self.request), AuditEvent.Action.SCIM_DELETED, AuditEvent.Outcome.SUCCESS,
                     f"group {name} deleted by the identity provider",
                     detail={"group": name, "scim_id": scim_id, "members": members})


# --- the views ----------------------------------------------------------------------------------------


class Counted:
    """One transaction per SCIM request, rolled back when the answer is an error; a refusal audited after
    that rollback; ``akeru_scim_requests_total`` counted."""

    resource = "other"

    @method_decorator(csrf_exempt)  # as_view() takes the attribute from the outermost dispatch: this one
    def dispatch(self, request, *args, **kwargs):
        with transaction.atomic():
            response = super().dispatch(request, *args, **kwargs)
            if response.status_code >= 400:
                transaction.set_rollback(True)
        method = request.method if request.method in METHODS else "other"
        SCIM_REQUESTS.labels(self.resource, method, str(response.status_code)).inc()
        if response.status_code >= 400 and not response.content:
            response = error(response.status_code, f"{request.path} is not a resource Akeru serves.")
        if response.status_code >= 400 and akeru_settings.AKERU_SCIM_TOKEN:
            self._audit_refusal(request, response)
        return response

    def _audit_refusal(self, request, response):
        try:
            detail = json.loads(response.content or b"{}").get("detail", "")
        except ValueError:
            detail = ""
        audit.record(requester(request), AuditEvent.Action.SCIM_REFUSED, AuditEvent.Outcome.REFUSED,
                     f"{request.method} {request.path}: {response.status_code} {detail}".strip(),
                     detail={"resource": self.resource, "method": request.method, "status": response.status_code,
                             "path": request.path[:200]})

    @property
    def get_queryset_post_processor(self):
        return lambda request, qs: qs.order_by("pk")  # pages stay stable while SCIM ids are given out

    def _page(self, request):
        start, count = super()._page(request)
        return start, max(0, min(count, MAX_RESULTS))

    def load_body(self, body):
        loaded = super().load_body(body)
        if not isinstance(loaded, dict):
            raise payloads.bad("The body must be a JSON object.", "invalidSyntax")
        return loaded

    def get_object(self):
        try:
            uuid.UUID(self.kwargs.get(self.lookup_url_kwarg) or "")
        except ValueError:
            raise exceptions.NotFoundError(self.kwargs.get(self.lookup_url_kwarg)) from None
        return super().get_object()

    def patch(self, request, *args, **kwargs):
        scim_obj = self.scim_adapter(self.get_object(), request=request)
        scim_obj.patch(self.load_body(request.body))
        response = HttpResponse(json.dumps(scim_obj.to_dict()), content_type=constants.SCIM_CONTENT_TYPE)
        response["Location"] = scim_obj.location
        return response


class Users(Counted, views.UsersView):
    resource = "User"


class Groups(Counted, views.GroupsView):
    resource = "Group"


class UserSearch(Counted, views.UserSearchView):
    resource = "User"


class GroupSearch(Counted, views.GroupSearchView):
    resource = "Group"


class Config(Counted, views.ServiceProviderConfigView):
    resource = "ServiceProviderConfig"


class ResourceTypes(Counted, views.ResourceTypesView):
    resource = "ResourceTypes"


class Schemas(Counted, views.SchemasView):
    resource = "Schemas"


class NotImplemented(Counted, views.SCIMView):
    implemented = False
