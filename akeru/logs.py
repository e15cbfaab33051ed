"""Log lines: the context they carry, secrets withheld from them, and the ``LOGGING`` of both formats.

Standard library only, below every layer: ``worker.settings`` builds its ``LOGGING`` here while Django's
settings are being read, the web binds a request's id and user, the outbox carries the request id into
the task it publishes, and the tasks bind the task, principal and account.

- The context is a ``contextvars.ContextVar`` holding a small dict: ``bind(**fields)`` adds to it,
  ``bound(**fields)`` adds for a ``with`` block and restores what was there after.
- ``AddContext`` (a ``logging.Filter`` on the handler) copies those fields onto every record.
- ``WithholdSecrets`` (on the handler, and on botocore's loggers, which log every response body and
  every signed request at DEBUG) withholds a message, field or traceback that carries a secret.
- ``logging_config(format, level)``: ``AKERU_LOG_FORMAT`` ``text`` (the human lines) or ``json`` (one
  JSON object a line: ``time``, ``level``, ``logger``, ``message``, the context fields, ``exc_info``).
"""

import contextvars
import logging
import logging.config
import re
import uuid
from contextlib import contextmanager

FORMATS = ("text", "json")
REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID = "request_id"  # the context field, and the Celery message header that carries it

_context = contextvars.ContextVar("akeru_log_context", default={})
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")


# --- the context --------------------------------------------------------------------------------


def current():
    """The fields bound now (a copy)."""
    return dict(_context.get())


def bind(**fields):
    """Add ``fields`` to the context (a field given None is dropped); returns the token ``unbind``
    takes to restore the context as it was."""
    merged = {**_context.get(), **fields}
    return _context.set({name: value for name, value in merged.items() if value is not None})


def unbind(token):
    _context.reset(token)


def begin(**fields):
    """A new unit of work in this thread (a web request): the context is ``fields`` alone, whatever an
    earlier one left."""
    _context.set({name: value for name, value in fields.items() if value is not None})


def clear():
    _context.set({})


@contextmanager
def bound(**fields):
    """``fields`` in the context for the ``with`` block; afterwards the context is as before (whatever
    was bound inside the block, too)."""
    token = bind(**fields)
    try:
        yield
    finally:
        unbind(token)


def request_id():
    """The request id bound now, or None."""
    return _context.get().get(REQUEST_ID)


def request_id_from(value):
    """``value`` (an incoming ``X-Request-ID``) when it is a sane short token (letters, digits,
    ``._:-``, at most 64), else a new one: a client cannot put spaces, quotes or a novel in our logs."""
    if value and _SANE_REQUEST_ID.fullmatch(value):
        return value
    return uuid.uuid4().hex


class AddContext(logging.Filter):
    """Copies the bound fields onto each record (a field the record already has is left as it is)."""

    def filter(self, record):
        for name, value in _context.get().items():
            if name not in record.__dict__:
                setattr(record, name, value)
        return True


# --- secrets ------------------------------------------------------------------------------------

WITHHELD = "[withheld by Akeru: it carries a secret]"
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class WithholdSecrets(logging.Filter):
    """botocore logs every response body at DEBUG; CreateAccessKey's (and STS's) carry a secret. It
    also logs every request it signs, the session token of temporary credentials included (the
    ``X-Amz-Security-Token`` header, in the prepared request and the canonical request). Such a line
    is kept, its content withheld, whoever turns DEBUG on; so is any other line, extra field or
    traceback naming an AWS secret key or session token, a personal API token (``akeru_…``) or TOTP
    material (an ``otpauth://`` URI, a device's ``bin_key``)."""

    MARKERS = ("secretaccesskey", "secret_access_key", "sessiontoken", "session_token",
               "x-amz-security-token", "otpauth://", "bin_key")
    API_TOKEN = re.compile(r"akeru_[A-Za-z0-9_-]{30,}")

    @classmethod
    def carries_secret(cls, text):
        lowered = text.lower()
        return any(marker in lowered for marker in cls.MARKERS) or cls.API_TOKEN.search(text) is not None

    def filter(self, record):
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken log call is not ours to fail
            return True
        if self.carries_secret(message):
            head = message.split(":", 1)[0][:40] if ":" in message[:40] else "Response body"
            record.msg, record.args = f"{head}: {WITHHELD}", ()
        for name, value in list(record.__dict__.items()):
            if name not in _RECORD_FIELDS and not isinstance(value, (int, float, bool)) and value is not None:
                if self.carries_secret(str(value)):
                    setattr(record, name, WITHHELD)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text and self.carries_secret(record.exc_text):
            kind = record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else "exception"
            record.exc_info, record.exc_text = None, f"{kind}: {WITHHELD}"
        return True


# --- LOGGING ------------------------------------------------------------------------------------

JSON_FORMATTER = {
    "()": "pythonjsonlogger.json.JsonFormatter",
    "fmt": "%(levelname)s %(name)s %(message)s",
    "rename_fields": {"levelname": "level", "name": "logger"},
    "timestamp": "time",  # RFC 3339, UTC (``…+00:00``)
}


def logging_config(log_format="text", level="INFO"):
    """Django's ``LOGGING`` for ``AKERU_LOG_FORMAT``; ValueError for a format it does not know.

    ``text``: Akeru's loggers on one handler, human lines; Celery's worker formats its own (its
    default). ``json``: every logger through one JSON handler: the root (Celery's worker lines, and its
    task logger), Django's and Akeru's; ``worker.settings`` then tells Celery to leave the root logger
    alone (``worker_hijack_root_logger``)."""
    if log_format not in FORMATS:
        raise ValueError(f"AKERU_LOG_FORMAT must be one of {', '.join(FORMATS)}, not {log_format!r}.")
    filters = {"context": {"()": AddContext}, "withhold": {"()": WithholdSecrets}}
    if log_format == "text":
        return {
            "version": 1,
            "disable_existing_loggers": False,
            "filters": filters,
            "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
            "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain",
                                     "filters": ["withhold"]}},
            "loggers": {
                "akeru": {"handlers": ["console"], "level": level, "propagate": False},
                "botocore.credentials": {"level": "WARNING"},
            },
        }
    own = {"handlers": ["console"], "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": filters,
        "formatters": {"json": JSON_FORMATTER},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json",
                                 "filters": ["context", "withhold"]}},
        "root": {"handlers": ["console"], "level": "INFO"},
        "loggers": {
            "akeru": {"level": level, "propagate": True},
            "botocore.credentials": {"level": "WARNING"},
            # Loggers that Django's defaults or Celery give a text handler of their own.
            "django": {**own, "level": "INFO"},
            "django.server": {**own, "level": "INFO"},
            "celery.task": {**own, "level": "INFO"},
            "multiprocessing": {**own, "level": "ERROR"},
            "gunicorn.error": {**own, "level": "INFO"},
            "gunicorn.access": {**own, "level": "INFO"},  # with worker/gunicorn_conf.py
        },
    }


def configure_json(config):
    """``LOGGING_CONFIG`` with JSON logs: Django's ``dictConfig``, and Python's warnings (Celery's
    "running as root", a deprecation) become log lines too instead of raw text on stderr."""
    logging.config.dictConfig(config)
    logging.captureWarnings(True)
