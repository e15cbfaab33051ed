"""A small, real OpenID Connect provider on 127.0.0.1 for the demo and the tests (Authlib's server parts
on Flask).

It serves discovery (``/.well-known/openid-configuration``), its keys (``/jwks``), an authorization
endpoint that asks for a demo person's password, and a token endpoint (client secret, PKCE S256
required) that issues RS256 ID tokens with the person's ``groups`` and ``amr``. One client is registered:
``client_id`` / ``client_secret`` with its ``redirect_uris``. Its session cookie is ``akeru_demo_idp``, so it
never collides with Akeru's ``sessionid``/``csrftoken`` on the same host.

The people (``PEOPLE``): admin (``admins``, signs in with MFA), alice (``developers``), bob
(``approvers``) and leaver (disabled here: the provider refuses her password). Each ``sub`` is not the
username, as at a real provider. Tests change ``idp.people`` (a group removed, a new person) and turn the
knobs of ``idp.faults`` (``Faults``): a token signed with a key not in the JWKS, a wrong audience, an
expired token, no groups claim, Entra's groups "overage", another issuer.

    python -m devtools.idp --port 5002 --client-id akeru --client-secret … --redirect-uri http://…/callback/
"""

from __future__ import annotations

import argparse
import copy
import html
import secrets
import threading
import time
from dataclasses import dataclass, field

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, grants
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode
from flask import Flask, request, session
from joserfc.jwk import RSAKey
from werkzeug.serving import WSGIRequestHandler, make_server

COOKIE_NAME = "akeru_demo_idp"
KID = "akeru-demo-idp-1"

PEOPLE = {
    "admin": {"password": "admin", "sub": "00u-admin-7f3a", "name": "Ada Admin", "email": "admin@example.com",
              "groups": ["admins"], "amr": ["pwd", "otp", "mfa"], "active": True},
    "alice": {"password": "alice", "sub": "00u-alice-2b91", "name": "Alice Developer", "email": "alice@example.com",
              "groups": ["developers"], "amr": ["pwd"], "active": True},
    "bob": {"password": "bob", "sub": "00u-bob-c4d2", "name": "Bob Approver", "email": "bob@example.com",
            "groups": ["approvers"], "amr": ["pwd"], "active": True},
    "leaver": {"password": "leaver", "sub": "00u-leaver-9e0f", "name": "Lee Leaver", "email": "leaver@example.com",
               "groups": ["developers"], "amr": ["pwd"], "active": False},
}


@dataclass
class Faults:
    """What the provider gets wrong on purpose (tests). All off by default."""

    wrong_key: bool = False  # sign ID tokens with a key that is not in the JWKS (same kid: a forgery)
    audience: str | None = None  # the ID token's aud instead of the client id
    expired: bool = False  # an ID token that expired ten minutes ago
    no_groups: bool = False  # leave the groups claim out
    overage: bool = False  # Entra's "too many groups": _claim_names/_claim_sources instead of groups
    issuer: str | None = None  # the issuer named in discovery and in ID tokens instead of the real one
    extra: dict = field(default_factory=dict)  # more claims in every ID token


@dataclass
class Client(ClientMixin):
    client_id: str
    client_secret: str
    redirect_uris: list

    def get_client_id(self):
        return self.client_id

    def get_default_redirect_uri(self):
        return self.redirect_uris[0] if self.redirect_uris else None

    def get_allowed_scope(self, scope):
        allowed = {"openid", "profile", "email", "groups"}
        return " ".join(s for s in (scope or "").split() if s in allowed)

    def check_redirect_uri(self, redirect_uri):
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret):
        return secrets.compare_digest(client_secret or "", self.client_secret)

    def check_endpoint_auth_method(self, method, endpoint):
        return method in ("client_secret_basic", "client_secret_post") if endpoint == "token" else True

    def check_response_type(self, response_type):
        return response_type == "code"

    def check_grant_type(self, grant_type):
        return grant_type == "authorization_code"


@dataclass
class Code:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    username: str
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int

    def get_redirect_uri(self):
        return self.redirect_uri

    def get_scope(self):
        return self.scope

    def get_nonce(self):
        return self.nonce

    def get_auth_time(self):
        return self.auth_time

    def get_acr(self):
        return None

    def get_amr(self):
        return None  # the person's amr comes with the user info (it is per person here)


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code="-", size="-"):
        pass  # no line per request (URLs carry codes and states)


class IdentityProvider:
    """The provider. ``start()`` serves in a background thread; ``issuer`` is its URL."""

    def __init__(self, client_id="akeru", client_secret=None, redirect_uris=(), port=0, host="127.0.0.1"):
        self.people = copy.deepcopy(PEOPLE)
        self.faults = Faults()
        self.client = Client(client_id, client_secret or secrets.token_urlsafe(24), list(redirect_uris))
        self.key = RSAKey.generate_key(2048, parameters={"kid": KID, "use": "sig", "alg": "RS256"})
        self.other_key = RSAKey.generate_key(2048, parameters={"kid": KID, "use": "sig", "alg": "RS256"})
        self.codes: dict[str, Code] = {}
        self.nonces: set[str] = set()
        self.sign_ins: list[str] = []  # usernames that passed the password form, in order
        self._lock = threading.Lock()
        self.app = self._make_app()
        self.server = make_server(host, port, self.app, threaded=True, request_handler=_QuietHandler)
        self.thread = None

    @property
    def issuer(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def claimed_issuer(self) -> str:
        return self.faults.issuer or self.issuer

    def start(self) -> "IdentityProvider":
        self.thread = threading.Thread(target=self.server.serve_forever, name="oidc-idp", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reset(self) -> None:
        self.people = copy.deepcopy(PEOPLE)
        self.faults = Faults()
        self.sign_ins.clear()

    # --- the OAuth 2.0 / OpenID Connect parts (Authlib) ----------------------------------------------

    def _make_app(self) -> Flask:
        idp = self
        app = Flask("akeru-demo-idp")
        app.config.update(SECRET_KEY=secrets.token_urlsafe(32), SESSION_COOKIE_NAME=COOKIE_NAME,
                          SESSION_COOKIE_SAMESITE="Lax")

        class CodeGrant(grants.AuthorizationCodeGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

            def save_authorization_code(self, code, req):
                data = req.payload.data
                with idp._lock:
                    idp.codes[code] = Code(code, req.client.client_id, req.payload.redirect_uri, req.payload.scope,
                                           req.user, data.get("nonce"), data.get("code_challenge"),
                                           data.get("code_challenge_method"), int(time.time()))
                    if data.get("nonce"):
                        idp.nonces.add(data["nonce"])

            def query_authorization_code(self, code, client):
                found = idp.codes.get(code)
                return found if found and found.client_id == client.client_id else None

            def delete_authorization_code(self, authorization_code):
                with idp._lock:
                    idp.codes.pop(authorization_code.code, None)

            def authenticate_user(self, authorization_code):
                return authorization_code.username

        class IDToken(OpenIDCode):
            def exists_nonce(self, nonce, req):
                return nonce in idp.nonces

            def resolve_client_private_key(self, client):
                return idp.other_key if idp.faults.wrong_key else idp.key

            def get_client_algorithm(self, client):
                return "RS256"

            def get_encode_header(self, client):
                return {"alg": "RS256", "kid": KID}

            def get_client_claims(self, client):
                now = int(time.time())
                claims = {"iss": idp.claimed_issuer, "aud": [idp.faults.audience or client.client_id],
                          "iat": now, "exp": now + 300}
                if idp.faults.expired:
                    claims.update(iat=now - 1200, exp=now - 600)
                return claims

            def generate_user_info(self, username, scope):
                person = idp.people[username]
                info = UserInfo(sub=person["sub"], preferred_username=username, name=person["name"],
                                email=person["email"], amr=list(person.get("amr") or ["pwd"]))
                if idp.faults.overage:
                    info["_claim_names"] = {"groups": "src1"}
                    info["_claim_sources"] = {"src1": {"endpoint": f"{idp.issuer}/groups-overage"}}
                elif not idp.faults.no_groups:
                    info["groups"] = list(person.get("groups") or [])
                info.update(idp.faults.extra)
                return info

        server = AuthorizationServer(app, query_client=lambda cid: idp.client if cid == idp.client.client_id else None,
                                     save_token=lambda token, req: None)
        server.register_grant(CodeGrant, [IDToken(require_nonce=True), CodeChallenge(required=True)])

        @app.get("/.well-known/openid-configuration")
        def discovery():
            base = idp.issuer
            return {
                "issuer": idp.claimed_issuer, "authorization_endpoint": f"{base}/authorize",
                "token_endpoint": f"{base}/token", "jwks_uri": f"{base}/jwks",
                "response_types_supported": ["code"], "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"], "code_challenge_methods_supported": ["S256"],
                "scopes_supported": ["openid", "profile", "email", "groups"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                "claims_supported": ["sub", "preferred_username", "name", "email", "groups", "amr"],
            }

        @app.get("/jwks")
        def jwks():
            return {"keys": [idp.key.as_dict(private=False)]}

        @app.route("/authorize", methods=["GET", "POST"])
        def authorize():
            try:
                grant = server.get_consent_grant(end_user=None)  # a bad client, redirect URI or PKCE: refused here
            except Exception as error:  # Authlib's OAuth2Error: shown, never redirected to an unknown URI
                return _page("Sign-in refused", f"<p>{html.escape(str(error))}</p>"), 400
            if request.method == "GET":
                session["csrf"] = secrets.token_urlsafe(16)
                return _login_form(request.args.get("login_hint", ""), session["csrf"])
            if not secrets.compare_digest(request.form.get("csrf", ""), session.get("csrf") or "-"):
                return _page("Sign-in expired", "<p>Go back and try again.</p>"), 400
            username = request.form.get("username", "").strip()
            person = idp.people.get(username)
            if not person or not secrets.compare_digest(request.form.get("password", ""), person["password"]):
                return _login_form(username, session["csrf"], "Wrong username or password."), 401
            if not person.get("active", True):
                return _login_form(username, session["csrf"], "This account is disabled."), 403
            idp.sign_ins.append(username)
            return server.create_authorization_response(grant_user=username, grant=grant)

        @app.post("/token")
        def token():
            return server.create_token_response()

        return app


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><title>{html.escape(title)} · Demo identity provider</title></head>"
            f"<body style='font-family:sans-serif;max-width:26rem;margin:4rem auto'><h1>{html.escape(title)}</h1>"
            f"{body}</body></html>")


def _login_form(username: str, csrf: str, error: str = "") -> str:
    people = ", ".join(f"{name} / {name}" for name in PEOPLE)
    return _page("Demo identity provider", (
        (f"<p role='alert' style='color:#b00020'>{html.escape(error)}</p>" if error else "")
        + "<form method='post'>"
        f"<input type='hidden' name='csrf' value='{html.escape(csrf)}'>"
        "<p><label>Username <input name='username' autocomplete='username' "
        f"value='{html.escape(username)}' autofocus></label></p>"
        "<p><label>Password <input name='password' type='password' autocomplete='current-password'></label></p>"
        "<p><button type='submit'>Sign in</button></p></form>"
        f"<p style='color:#666'>Demo people: {html.escape(people)} (leaver is disabled).</p>"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=5002)
    parser.add_argument("--client-id", default="akeru")
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--redirect-uri", action="append", default=[])
    args = parser.parse_args(argv)
    idp = IdentityProvider(args.client_id, args.client_secret, args.redirect_uri, port=args.port)
    print(f"OpenID Connect provider {idp.issuer} (client {args.client_id})", flush=True)
    idp.server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
