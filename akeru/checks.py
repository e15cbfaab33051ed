"""Django system checks for Akeru's settings: clear messages at start-up, never a traceback at import."""

from django.conf import settings
from django.core.checks import Error, Warning, register

from . import crypto
from .domain import policy
from .settings.accessor import akeru_settings
from .settings.declarations import REQUIRED


@register("akeru")
def check_settings(app_configs=None, **kwargs):
    errors = []
    for name in REQUIRED:
        if not getattr(akeru_settings, name):
            errors.append(Error(
                f"Akeru setting {name} is required but not set.",
                hint=f"Set {name} in your Django settings (worker.settings reads it from AKERU_{name}).",
                id="akeru.E001",
            ))
    account = akeru_settings.ACCOUNT_ID
    if account and not (str(account).isdigit() and len(str(account)) == 12):
        errors.append(Error(f"ACCOUNT_ID {account!r} is not a 12-digit AWS account id.", id="akeru.E002"))
    variables = {"account_id": account or "123456789012", "name": "example", "partition": akeru_settings.AKERU_PARTITION}
    for name in ("DEFAULT_TRUST_POLICY", "EC2_TRUST_POLICY", "LAMBDA_TRUST_POLICY"):
        text = getattr(akeru_settings, name)
        if not text:
            continue
        document, problems = policy.check_document_text(
            text, variables, name, max_chars=policy.TRUST_POLICY_MAX_CHARS, trust=True
        )
        errors += [Error(problem, hint=f"Fix the JSON of {name}.", id="akeru.E003") for problem in problems]
        if document is not None:
            errors += [
                Error(problem, hint=f"Narrow {name}, or list the account in AKERU_TRUSTED_ACCOUNTS.", id="akeru.E007")
                for problem in policy.trust_lint(document, akeru_settings.trusted_accounts, what=name,
                                                 trusted_organizations=akeru_settings.trusted_organizations)
            ]
    for name in ("ASSUMED_ROLE_TIMEOUT", "FEDERATED_USER_TIMEOUT", "AKERU_SYNC_LEASE_SECONDS",
                 "AKERU_PENDING_TIMEOUT", "AKERU_DRIFT_INTERVAL", "AKERU_TEMPLATE_REFRESH_INTERVAL",
                 "AKERU_SYNC_TIME_LIMIT", "AKERU_RUN_TIME_LIMIT", "AKERU_PURGE_INTERVAL",
                 "AKERU_REQUEST_TTL", "AKERU_BREAK_GLASS_DURATION", "AKERU_REQUEST_SWEEP_INTERVAL"):
        value = getattr(akeru_settings, name)
        if not isinstance(value, int) or value <= 0:
            errors.append(Error(f"{name} must be a positive whole number of seconds, not {value!r}.", id="akeru.E004"))
    for name in ("AKERU_SYNC_HISTORY_DAYS", "AKERU_DRIFT_HISTORY_DAYS", "AKERU_RUN_HISTORY_DAYS", "AKERU_TASK_RESULT_DAYS"):
        value = getattr(akeru_settings, name)
        if not isinstance(value, int) or value < 0:
            errors.append(Error(f"{name} must be a whole number of days (0 keeps everything), not {value!r}.",
                                id="akeru.E004"))
    limit, lease = akeru_settings.AKERU_SYNC_TIME_LIMIT, akeru_settings.AKERU_SYNC_LEASE_SECONDS
    if isinstance(limit, int) and isinstance(lease, int) and limit > 0 and lease > 0 and limit >= lease:
        errors.append(Error(
            f"AKERU_SYNC_TIME_LIMIT ({limit}s) must be below AKERU_SYNC_LEASE_SECONDS ({lease}s): a sync that "
            f"outlives its lease can overlap another worker's sync of the same principal.",
            hint="Raise AKERU_SYNC_LEASE_SECONDS or lower AKERU_SYNC_TIME_LIMIT.",
            id="akeru.E020",
        ))
    seconds = akeru_settings.ASSUMED_ROLE_TIMEOUT
    if isinstance(seconds, int) and seconds > 0 and not 3600 <= seconds <= 43200:
        errors.append(Warning(
            f"ASSUMED_ROLE_TIMEOUT {seconds}s is outside IAM's 3600–43200 s; roles get "
            f"MaxSessionDuration {akeru_settings.max_session_duration}s.",
            id="akeru.W001",
        ))
    if not akeru_settings.AKERU_PASSWORD_LOGIN and not akeru_settings.AKERU_OIDC_ISSUER:
        errors.append(Warning(
            "AKERU_PASSWORD_LOGIN is false and single sign-on is not configured (AKERU_OIDC_ISSUER is empty): "
            "nobody but superusers on /accounts/login/local/ can sign in.",
            hint="Set AKERU_OIDC_ISSUER (and its client settings), or AKERU_PASSWORD_LOGIN=true.",
            id="akeru.W002",
        ))
    if not (akeru_settings.AKERU_VENDING_PRINCIPAL or "").strip():
        errors.append(Warning(
            f"AKERU_VENDING_PRINCIPAL is not set: purpose-built roles trust Akeru's whole account "
            f"({akeru_settings.vending_principal}), so any identity there whose own policy allows sts:AssumeRole "
            "on them may assume them (with a SourceIdentity of its choosing).",
            hint="Set AKERU_VENDING_PRINCIPAL to the ARN of the role or user Akeru's AWS credentials are.",
            id="akeru.W003",
        ))
    if akeru_settings.AKERU_DRIFT_MODE not in ("repair", "report"):
        errors.append(Error(f"AKERU_DRIFT_MODE must be 'repair' or 'report', not {akeru_settings.AKERU_DRIFT_MODE!r}.",
                            id="akeru.E005"))
    if akeru_settings.AKERU_AWS_RETRY_MODE not in ("adaptive", "standard", "legacy"):
        errors.append(Error(f"AKERU_AWS_RETRY_MODE must be 'adaptive', 'standard' or 'legacy', not "
                            f"{akeru_settings.AKERU_AWS_RETRY_MODE!r}.", id="akeru.E005"))
    for problem in policy.path_problems(akeru_settings.AKERU_IAM_PATH):
        errors.append(Error(f"AKERU_IAM_PATH: {problem}", id="akeru.E006"))
    for account_id in akeru_settings.trusted_accounts:
        if not (account_id.isdigit() and len(account_id) == 12):
            errors.append(Error(f"AKERU_TRUSTED_ACCOUNTS: {account_id!r} is not a 12-digit AWS account id.",
                                id="akeru.E008"))
    for organization in akeru_settings.trusted_organizations:
        if not policy.ORGANIZATION_RE.fullmatch(organization):
            errors.append(Error(f"AKERU_TRUSTED_ORGANIZATIONS: {organization!r} is neither an organization id "
                                "(o-…) nor an organization path (o-…/r-…/ou-…/).", id="akeru.E008"))
    boundary = akeru_settings.AKERU_PERMISSIONS_BOUNDARY
    if boundary and not policy.BOUNDARY_ARN_RE.fullmatch(str(boundary)):
        errors.append(Error(
            f"AKERU_PERMISSIONS_BOUNDARY {boundary!r} is not the ARN of a managed policy "
            "(arn:PARTITION:iam::ACCOUNT:policy/NAME or arn:PARTITION:iam::aws:policy/NAME).", id="akeru.E009"))
    base_url = str(akeru_settings.AKERU_BASE_URL or "")
    if not base_url.startswith(("http://", "https://")) or len(base_url.split("://", 1)[1].strip("/")) == 0:
        errors.append(Error(
            f"AKERU_BASE_URL {base_url!r} is not an absolute http(s) URL; emails about access requests link to it.",
            hint="Set AKERU_BASE_URL to where people reach Akeru, e.g. https://akeru.example.com", id="akeru.E020"))
    try:
        akeru_settings.metrics_allowed_networks
    except ValueError as exc:
        errors.append(Error(str(exc), hint="List addresses or CIDR ranges, comma-separated.", id="akeru.E021"))
    errors += check_oidc()
    errors += check_access_keys()
    return errors


def check_oidc():
    """Single sign-on's settings, when it is on (``AKERU_OIDC_ISSUER`` set)."""
    issuer = str(akeru_settings.AKERU_OIDC_ISSUER or "").strip()
    if not issuer:
        return []
    errors = []
    missing = [name for name in ("AKERU_OIDC_CLIENT_ID", "AKERU_OIDC_CLIENT_SECRET") if not getattr(akeru_settings, name)]
    if missing:
        errors.append(Error(f"AKERU_OIDC_ISSUER is set but {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} "
                            "empty: nobody could sign in with single sign-on.",
                            hint="Register Akeru at the identity provider (docs/sign-in.md) and set both.",
                            id="akeru.E030"))
    scheme, _, rest = issuer.partition("://")
    host = rest.split("/", 1)[0].rsplit(":", 1)[0]
    if not rest or scheme not in ("https", "http") or (scheme == "http" and host not in ("127.0.0.1", "localhost")):
        errors.append(Error(f"AKERU_OIDC_ISSUER {issuer!r} is not an https URL (plain http only on 127.0.0.1 or "
                            "localhost).", hint="Use the issuer exactly as the provider's discovery document names it.",
                            id="akeru.E031"))
    match = str(akeru_settings.AKERU_OIDC_GROUP_MATCH).strip().lower()
    if match not in ("name", "id"):
        errors.append(Error(f"AKERU_OIDC_GROUP_MATCH must be 'name' or 'id', not {akeru_settings.AKERU_OIDC_GROUP_MATCH!r}.",
                            id="akeru.E032"))
    return errors


def check_access_keys():
    errors = [Error(problem, hint="worker.settings reads AKERU_ENCRYPTION_KEYS from the environment variable of that name.",
                    id="akeru.E007") for problem in crypto.problems()]
    for name in ("AKERU_KEY_MAX_AGE_DAYS", "AKERU_KEY_GRACE_SECONDS", "AKERU_KEY_ROTATION_INTERVAL",
                 "AKERU_KEY_VERIFY_ATTEMPTS", "AKERU_KEY_VERIFY_DELAY"):
        value = getattr(akeru_settings, name)
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = None
        if number is None or number <= 0 or (name != "AKERU_KEY_VERIFY_DELAY" and number != int(number)):
            kind = "a positive number" if name == "AKERU_KEY_VERIFY_DELAY" else "a positive whole number"
            errors.append(Error(f"{name} must be {kind}, not {value!r}.", id="akeru.E008"))
    return errors
