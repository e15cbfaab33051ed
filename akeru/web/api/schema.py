"""How the OpenAPI schema (drf-spectacular) names Akeru's authentication classes. Imported by ``urls.py``:
the extensions register themselves on import."""

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object

from .authentication import BearerTokenAuthentication, CsrfSessionAuthentication


class BearerScheme(OpenApiAuthenticationExtension):
    """How the OpenAPI schema names the token."""

    target_class = BearerTokenAuthentication
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object(header_name="Authorization", token_prefix="Bearer")


class SessionScheme(OpenApiAuthenticationExtension):
    target_class = CsrfSessionAuthentication
    name = "cookieAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "cookie", "name": settings.SESSION_COOKIE_NAME}
