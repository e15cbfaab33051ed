"""Settings of the deployable site. Everything comes from the environment.

Akeru's own settings keep akeru-cloud-access 0.0.2's names (``ACCOUNT_ID``, …) and are read
from ``AKERU_<NAME>``; new settings are already called ``AKERU_*`` and read from the variable of
the same name. Each is declared once, with its type and default, in
``akeru.settings.declarations``; a setting absent here falls back to its default.
Documented in docs/configuration.md (generated from the declarations).
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

# Pure modules (standard library only): safe to import while Django's settings are being built.
from akeru.settings.declarations import DEFAULTS as _AKERU_DEFAULTS
from akeru.settings.declarations import SETTINGS as _AKERU_SETTINGS
from akeru.settings.declarations import TRUE_WORDS as _TRUE_WORDS
from akeru.settings.declarations import result_expires as _akeru_result_expires
from akeru.logs import logging_config as _akeru_logging_config

BASE_DIR = Path(__file__).resolve().parent.parent
env = os.environ.get


def env_bool(name, default=False):
    value = env(name)
    if value is None:
        return default
    return value.strip().lower() in _TRUE_WORDS


DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = env("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set. Set it to a long random value (python -c 'import secrets; "
            "print(secrets.token_urlsafe(50))'), or set DJANGO_DEBUG=1 for a local development run."
        )
    SECRET_KEY = "akeru-insecure-development-key"  # DEBUG only: never a production fallback
ALLOWED_HOSTS = [h for h in env("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o for o in env("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o]

INSTALLED_APPS = [
    "akeru.apps.AdminConfig",  # django.contrib.admin with Akeru's site: a second factor, sign-in lockouts
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_results",
    "django_celery_beat",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "axes",
    "rest_framework",  # /api/v1/ (akeru.web.api; docs/api.md)
    "drf_spectacular",  # its OpenAPI schema, /api/v1/schema/
    "drf_spectacular_sidecar",  # the reference page's Swagger UI files, served here (no CDN)
    "akeru",
]

MIDDLEWARE = [
    "akeru.web.metrics.RequestDuration",  # first: times the whole answer (akeru_http_request_duration_seconds)
    "akeru.web.context.RequestContext",  # next: every line a request causes names it (AKERU_LOG_FORMAT=json)
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",  # static files in production, without a separate server
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",  # request.user.is_verified(): the admin's second factor
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks: turns a lockout into its page
]
# django-axes first: it refuses a locked-out sign-in before any password is checked. Then Akeru's backend:
# Django's ModelBackend, re-reading the person on every request and refusing one no longer active (every
# sign-in, password, local or single sign-on, logs in with it).
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "akeru.web.signin.ActiveUserBackend"]

ROOT_URLCONF = "worker.urls"
WSGI_APPLICATION = "worker.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env("DATABASE_URL", f"sqlite:///{BASE_DIR / 'akeru.sqlite3'}"), conn_max_age=60
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat write to one file at once: WAL lets readers run beside the
    # writer, IMMEDIATE takes the write lock at BEGIN (no lock upgrade deadlock), and the
    # busy timeout makes a writer wait instead of failing with "database is locked".
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # AKERU_SQLITE_BUSY_TIMEOUT (seconds, default 30): how long a writer waits for the lock; the fault
    # tests shorten it to make the database "unavailable for a moment".
    _busy = float(env("AKERU_SQLITE_BUSY_TIMEOUT", "30"))
    DATABASES["default"]["OPTIONS"] = {
        "timeout": _busy,
        "transaction_mode": "IMMEDIATE",
        "init_command": f"PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout={int(_busy * 1000)};",
    }
    test_name = env("AKERU_TEST_SQLITE")
    if test_name:
        DATABASES["default"]["TEST"] = {"NAME": test_name}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = env("DJANGO_STATIC_ROOT", str(BASE_DIR / "staticfiles"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Compressed copies made by collectstatic (the image runs it); no manifest, so a page never fails
    # over a file that was not collected.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- HTTPS (behind a TLS-terminating proxy in production; see docs/install.md "Production settings") ---
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", False)
SECURE_HSTS_SECONDS = int(env("DJANGO_HSTS_SECONDS", "0"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", False)
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", False)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # probed over plain HTTP from inside the container
if env_bool("DJANGO_SECURE_PROXY_SSL_HEADER", False):
    # Trust X-Forwarded-Proto only when a proxy that always sets it fronts the site.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/access/"
# django-otp's admin never shows a TOTP device's key (or its QR code) once the device exists.
OTP_ADMIN_HIDE_SENSITIVE_DATA = True
CSRF_FAILURE_VIEW = "akeru.web.http.csrf_failure"

# --- The API (/api/v1/, akeru.web.api: its docstring says what differs from DRF's defaults, and why) ------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "akeru.web.api.authentication.BearerTokenAuthentication",
        "akeru.web.api.authentication.CsrfSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "akeru.web.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Akeru API",
    "DESCRIPTION": "Short-lived AWS credentials, console sign-ins and access requests (docs/api.md).",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "SWAGGER_UI_DIST": "SIDECAR",  # drf-spectacular-sidecar's copy, from STATIC_URL: no CDN
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# --- Email (access request notifications; links in them start with AKERU_BASE_URL) -----
# Django's own backends: smtp (default), console (the demo), filebased, locmem.
EMAIL_BACKEND = env("DJANGO_EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env("DJANGO_EMAIL_HOST", "localhost")
EMAIL_PORT = int(env("DJANGO_EMAIL_PORT", "25"))
EMAIL_HOST_USER = env("DJANGO_EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env("DJANGO_EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("DJANGO_EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = 10
if env("DJANGO_EMAIL_FILE_PATH"):
    EMAIL_FILE_PATH = env("DJANGO_EMAIL_FILE_PATH")
DEFAULT_FROM_EMAIL = env("DJANGO_DEFAULT_FROM_EMAIL", "Akeru <akeru@localhost>")

# --- Celery ---------------------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
# A sync spends its time waiting for AWS round trips, not on CPU: a pool of threads overlaps them
# (16 syncs in flight per worker process; docs/operations.md "Sync"). `celery worker -P/-c` override these.
CELERY_WORKER_POOL = env("AKERU_WORKER_POOL", "threads")
CELERY_WORKER_CONCURRENCY = int(env("AKERU_WORKER_CONCURRENCY", "16"))
CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_EXTENDED = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A broker that accepts connections and never answers must not hang a save, the sweep or /healthz:
# every socket operation gives up after a few seconds (publishers then leave the work to the sweep).
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600, "socket_connect_timeout": 2, "socket_timeout": 5}
CELERY_BROKER_CONNECTION_TIMEOUT = 3
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)

# --- Akeru ----------------------------------------------------------------------------------
# Every setting of akeru.settings.declarations, from its variable (0.0.2's names from AKERU_<NAME>,
# the AKERU_* ones from the variable of the same name), read as its declared type says; a setting
# whose variable is unset is left out, and akeru_settings falls back to its declared default.
for _setting in _AKERU_SETTINGS:
    _found, _value = _setting.from_env(os.environ)
    if _found:
        globals()[_setting.name] = _value

# Task results are kept AKERU_TASK_RESULT_DAYS days by Celery itself (its celery.backend_cleanup,
# which django-celery-beat schedules whenever result_expires is set); 0 keeps everything.
CELERY_RESULT_EXPIRES = _akeru_result_expires(globals().get("AKERU_TASK_RESULT_DAYS", _AKERU_DEFAULTS["AKERU_TASK_RESULT_DAYS"]))

# --- SCIM (django-scim2 with Akeru's adapters; docs/scim.md) ---------------------------------------------------------
# Off unless AKERU_SCIM_TOKEN is set (akeru.web.scim_hooks.BearerToken answers 404 then). Locations are built from
# the request's own host, so NETLOC only satisfies django-scim2's check.
SCIM_SERVICE_PROVIDER = {
    "NETLOC": "localhost",
    "AUTHENTICATION_SCHEMES": [{"type": "oauthbearertoken", "name": "Bearer token", "primary": True}],
    "AUTH_CHECK_MIDDLEWARE": "akeru.web.scim_hooks.BearerToken",
    "USER_ADAPTER": "akeru.web.scim.User",
    "GROUP_ADAPTER": "akeru.web.scim.Group",
    "USER_FILTER_PARSER": "akeru.web.scim_hooks.UserFilter",
    "GROUP_FILTER_PARSER": "akeru.web.scim_hooks.GroupFilter",
    "SERVICE_PROVIDER_CONFIG_MODEL": "akeru.web.scim.ServiceProviderConfig",
    "BASE_LOCATION_GETTER": "akeru.web.scim.base_location",
}

# --- Sign-in lockouts (django-axes; docs/operations.md "Sign-in and the admin") --------------------------------------
# A username is locked from one address (never everywhere, so nobody can lock an administrator out
# from afar); an address is locked for failures across usernames at a higher limit
# (AKERU_LOGIN_ADDRESS_FAILURE_LIMIT, applied by akeru.web.signin.LockoutHandler). The address is read as
# the rest of Akeru reads it (AKERU_CLIENT_IP_HEADER); callables are dotted paths, imported on use.
def _akeru(name):
    return globals().get(name, _AKERU_DEFAULTS[name])


AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address"]
AXES_FAILURE_LIMIT = int(_akeru("AKERU_LOGIN_FAILURE_LIMIT"))
AXES_COOLOFF_TIME = timedelta(seconds=int(_akeru("AKERU_LOGIN_COOLOFF")))
AXES_HANDLER = "akeru.web.signin.LockoutHandler"
AXES_CLIENT_IP_CALLABLE = "akeru.web.http.client_ip"
AXES_LOCKOUT_CALLABLE = "akeru.web.signin.lockout_response"
# Masked in the attempts' stored form data and logs, besides axes's own (the password, username, address);
# `code` is the break-glass sign-in's TOTP code.
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address", "otp_token", "code", "csrfmiddlewaretoken"]
# The admin asks for a second factor (django-otp) unless DEBUG is on; AKERU_ADMIN_REQUIRE_MFA decides.
AKERU_ADMIN_REQUIRE_MFA = env_bool("AKERU_ADMIN_REQUIRE_MFA", not DEBUG)

# AKERU_LOG_FORMAT: `text` (human lines, Celery's worker formats its own) or `json` (one object a line from
# every logger of web and worker; docs/operations.md "Logs"). In JSON Celery must leave the root logger's
# handler alone: that is where its own lines go through the JSON formatter.
AKERU_LOG_FORMAT = env("AKERU_LOG_FORMAT", "text")
try:
    LOGGING = _akeru_logging_config(AKERU_LOG_FORMAT, env("AKERU_LOG_LEVEL", "INFO"))
except ValueError as _error:
    raise ImproperlyConfigured(str(_error)) from None
CELERY_WORKER_HIJACK_ROOT_LOGGER = AKERU_LOG_FORMAT != "json"
if AKERU_LOG_FORMAT == "json":
    LOGGING_CONFIG = "akeru.logs.configure_json"  # Python's warnings become JSON lines too
