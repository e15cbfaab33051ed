"""The parts of ``/scim/v2/`` django-scim2 imports while its own modules load (before ``akeru.web.scim``
can be imported): its ``AUTH_CHECK_MIDDLEWARE`` (``BearerToken``) and its ``USER_FILTER_PARSER`` and
``GROUP_FILTER_PARSER`` — SCIM filters (``userName eq "…"``, ``displayName eq``, ``externalId eq``) as the
columns they are, turned into SQL by django-scim2."""

import hmac
import json

from django.http import HttpResponse
from django_scim import constants, exceptions, filters

from ..settings.accessor import akeru_settings


def error(status, detail, scim_type=None, **headers):
    body = exceptions.SCIMException(detail, status=status, scim_type=scim_type).to_dict()
    response = HttpResponse(json.dumps(body), status=status, content_type=constants.SCIM_CONTENT_TYPE)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


class BearerToken:
    """django-scim2's ``AUTH_CHECK_MIDDLEWARE`` (it wraps every SCIM view's ``dispatch``)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request, *args, **kwargs):
        token = akeru_settings.AKERU_SCIM_TOKEN or ""
        if not token:
            return error(404, "SCIM is off: set AKERU_SCIM_TOKEN to let the identity provider provision people.")
        scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(sent.strip().encode(), token.encode()):
            said = "a wrong token" if sent.strip() else "no token"
            return error(401, f"SCIM needs 'Authorization: Bearer <AKERU_SCIM_TOKEN>' (this request sent {said}).",
                         WWW_Authenticate='Bearer realm="akeru-scim"')
        return self.get_response(request, *args, **kwargs)



class UserFilter(filters.UserFilterQuery):
    joins = ("LEFT JOIN akeru_scimuser ON akeru_scimuser.user_id = auth_user.id",)
    attr_map = {
        ("userName", None, None): "auth_user.username",
        ("externalId", None, None): "akeru_scimuser.external_id",
        ("name", "familyName", None): "auth_user.last_name",
        ("name", "givenName", None): "auth_user.first_name",
        ("emails", "value", None): "auth_user.email",
        ("emails", None, None): "auth_user.email",
        ("active", None, None): "auth_user.is_active",
    }


class GroupFilter(filters.GroupFilterQuery):
    joins = ("LEFT JOIN akeru_scimgroup ON akeru_scimgroup.group_id = auth_group.id",)
    attr_map = {
        ("displayName", None, None): "auth_group.name",
        ("externalId", None, None): "akeru_scimgroup.external_id",
    }
