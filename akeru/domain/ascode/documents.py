"""What the reader makes of a file: documents (one object each, where it was written) and problems (what is
wrong, where). Pure: standard library only."""

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from .schema import BY_NAME


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the files, where it is (``line`` 1-based; 0: the file as a whole)."""

    file: str
    line: int
    message: str
    warning: bool = False

    def __str__(self):
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {'warning: ' if self.warning else ''}{self.message}"


@dataclass
class Document:
    """One object of a file: its kind, its fields' values (as the reader normalised them: durations in
    seconds, times as aware datetimes, lists as sorted tuples), and where each was written."""

    kind: str
    values: dict
    file: str = ""
    line: int = 0
    lines: dict = field(default_factory=dict)

    def line_of(self, name):
        return self.lines.get(name, self.line)

    def problem(self, message, name=None, warning=False):
        return Problem(self.file, self.line_of(name) if name else self.line, message, warning)

    @property
    def where(self):
        return f"{self.file}:{self.line}" if self.file else ""

    def key(self):
        """The object's identity in its kind, case-insensitively (IAM's rule, and Akeru's for every name)."""
        return key_of(self.kind, self.values)

    def label(self):
        return label_of(self.kind, self.values)


def key_of(kind, values):
    return (kind, *((values.get(name) or "").lower() for name in BY_NAME[kind].key))


def label_of(kind, values):
    """How a plan and a message name an object: ``Principal default/deploy``, ``Grant default/deploy → alice``."""
    v = values
    if kind == "Account":
        return f"Account {v.get('name')} ({v.get('account_id')})"
    if kind == "ApprovalRule":
        return f"ApprovalRule {v.get('name')}"
    if kind == "Principal":
        return f"Principal {v.get('account')}/{v.get('name')}"
    if kind == "Grant":
        who = f"user {v['user']}" if v.get("user") else f"group {v.get('group')}"
        return f"Grant {v.get('account')}/{v.get('principal')} → {who}"
    if kind == "RequestPolicy":
        return f"RequestPolicy {v.get('account')}/{v.get('principal')}"
    scope = (f"{v.get('account')}/{v['principal']}" if v.get("principal")
             else v.get("account") or "default")
    return f"SlackRoute {scope}"


def complete(kind, values):
    """``values`` with every absent field at its default (what an absent field means)."""
    out = {}
    for f in BY_NAME[kind].fields:
        value = values.get(f.name, f.default)
        if f.type == "strings":
            value = tuple(sorted(value or ()))
        out[f.name] = value
    return out


def digest(kind, values):
    """SHA-256 of an object's desired fields: what ``source_digest`` records and drift is judged by."""
    text = json.dumps({k: jsonable(v) for k, v in complete(kind, values).items()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def jsonable(value):
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, tuple):
        return list(value)
    return value


# --- durations and times as files write them ---------------------------------------------------------

UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def parse_duration(text):
    """``4h`` → 14400, ``1d12h`` → 129600; None when ``text`` is not a duration."""
    text = text.strip()
    if not text:
        return None
    total, rest = 0, text
    for unit, seconds in UNITS:
        number, sep, tail = rest.partition(unit)
        if sep:
            if not number.isdigit():
                return None
            total += int(number) * seconds
            rest = tail
    return total if rest == "" else None


def format_duration(seconds):
    if seconds is None:
        return None
    if seconds == 0:
        return "0s"
    parts = []
    for unit, size in UNITS:
        n, seconds = divmod(seconds, size)
        if n:
            parts.append(f"{n}{unit}")
    return "".join(parts)


def seconds_of(value):
    return None if value is None else int(value.total_seconds()) if isinstance(value, timedelta) else value


def format_datetime(value):
    value = value.astimezone(timezone.utc)
    text = value.isoformat(timespec="microseconds" if value.microsecond else "seconds")
    return text.replace("+00:00", "Z")
