"""Akeru's pages. Mount them in the host project with ``path("", include("akeru.urls"))``."""

from django.contrib.auth import views as auth_views
from django.urls import include, path

from .web import (
    access, cli_login, health, ledger, metrics, mfa, oidc, passkeys, requests, reviews, signin, slack, tokens,
)

app_name = "akeru"

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),  # database and broker reachable: 200, else 503
    path("metrics", metrics.metrics, name="metrics"),  # Prometheus; 404 unless AKERU_METRICS_TOKEN or _ALLOWED_ADDRESSES
    path("accounts/login/", signin.LoginView.as_view(), name="login"),  # SSO first; passwords unless AKERU_PASSWORD_LOGIN=false
    path("accounts/login/local/", signin.local_login, name="akeru-local-login"),  # break-glass: superuser + TOTP
    # single sign-on (docs/sign-in.md): 404 unless AKERU_OIDC_ISSUER is set
    path("accounts/oidc/login/", oidc.oidc_login, name="akeru-oidc-login"),
    path("accounts/oidc/callback/", oidc.oidc_callback, name="akeru-oidc-callback"),
    path("accounts/logout/", auth_views.LogoutView.as_view(template_name="akeru/logged_out.html"), name="logout"),
    path("access/", access.access, name="access"),
    path("access/mfa/", mfa.mfa, name="mfa"),
    path("access/mfa/passkeys/", passkeys.register, name="passkey_register"),
    path("access/mfa/passkeys/options/", passkeys.register_options, name="passkey_register_options"),
    path("access/mfa/passkeys/challenge/", passkeys.assert_options, name="passkey_assert_options"),
    path("access/mfa/passkeys/<int:pk>/remove/", passkeys.remove, name="passkey_remove"),
    path("access/tokens/", tokens.token_create, name="token_create"),
    path("access/tokens/<int:pk>/revoke/", tokens.token_revoke, name="token_revoke"),
    path("access/tokens/revoke-all/", tokens.token_revoke_all, name="token_revoke_all"),
    # the command line: download it, sign it in (docs/cli-login.md)
    path("access/cli/", cli_login.cli_install, name="cli_install"),
    path("access/cli/akeru", cli_login.cli_download, name="cli_download"),
    path("access/cli/akeru.sha256", cli_login.cli_checksum, name="cli_sha256"),
    path("access/cli/authorize/", cli_login.authorize, name="cli_authorize"),
    path("access/cli/device/", cli_login.device, name="cli_device"),
    path("api/v1/auth/device/", cli_login.device_authorization, name="cli_device_authorization"),
    path("api/v1/auth/token/", cli_login.token, name="cli_token"),
    path("api/v1/auth/revoke/", cli_login.revoke, name="cli_revoke"),
    path("access/approvals/", requests.approvals, name="approvals"),
    path("access/approvals/<int:pk>/", requests.decide, name="decide"),
    path("access/requests/<int:pk>/cancel/", requests.request_cancel, name="request_cancel"),
    path("access/requests/<int:pk>/end/", requests.request_end, name="request_end"),
    # access reviews and idle grants (docs/reviews.md)
    path("access/reviews/", reviews.reviews, name="reviews"),
    path("access/reviews/<int:pk>/", reviews.review, name="review"),
    path("access/reviews/<int:pk>/export.csv", reviews.export_csv, name="review_export_csv"),
    path("access/reviews/<int:pk>/export.json", reviews.export_json, name="review_export_json"),
    path("access/grants/<int:pk>/renew/", reviews.renew, name="grant_renew"),
    path("access/request/", requests.request_bundle, name="request_bundle"),
    # the ledger (docs/ledger.md): what was done under a grant, a request, a vend
    path("access/activity/grants/<int:pk>/", ledger.grant_activity, name="grant_activity"),
    path("access/activity/requests/<int:pk>/", ledger.request_activity, name="request_activity"),
    path("access/activity/sessions/<int:pk>/", ledger.vend_activity, name="vend_activity"),
    # <path:…>: a name may be ACCOUNT/NAME where it is used in several accounts
    path("access/<path:name>/activity/", ledger.principal_activity, name="principal_activity"),
    path("access/<path:name>/request/", requests.request_create, name="request_create"),
    path("access/<path:name>/break-glass/", requests.break_glass, name="break_glass"),
    path("access/<path:name>/console/", access.console, name="console"),
    path("access/<path:name>/credentials/", access.credentials, name="credentials"),
    # Slack's Request URL (docs/slack.md): signed by Slack, so no CSRF token
    path("integrations/slack/interactions/", slack.interactions, name="slack_interactions"),
    # the versioned API (docs/api.md); api/v1/auth/… (the command line's sign-in) comes before it
    path("api/v1/", include("akeru.web.api.urls")),
]
