"""Who is on call now: the on-call schedule API (PagerDuty's REST API v2, or one answering as it does).

``GET {AKERU_ONCALL_API_URL}/oncalls?schedule_ids[]=…&earliest=true&include[]=users`` with
``Authorization: Token token=…`` and ``Accept: application/vnd.pagerduty+json;version=2``; the answer is
``{"oncalls": [{"user": {"id", "summary", "email"}, "schedule": {"id", "summary"}, "start", "end",
"escalation_level"}], "limit", "offset", "more"}`` (``include[]=users`` puts the email on ``user``), paged by
``offset`` while ``more``. Any failure — no token, a timeout, a refused connection, a non-2xx answer, an
answer that is not that JSON — raises ``Unavailable`` with a short reason, never the token or the body:
the caller then leaves the decision to a person.
"""

import logging
from dataclasses import dataclass
from datetime import datetime

import requests

from ..settings.accessor import akeru_settings

log = logging.getLogger(__name__)

ACCEPT = "application/vnd.pagerduty+json;version=2"
PAGE = 100
MAX_PAGES = 20


class Unavailable(Exception):
    """The schedule API could not say who is on call; ``reason`` is a short code (``timeout``,
    ``unreachable``, ``unauthorized``, ``http 503``, ``bad answer``, ``not configured``)."""

    def __init__(self, reason, message=""):
        self.reason = reason
        super().__init__(message or reason)


@dataclass(frozen=True)
class OnCall:
    """One entry of a schedule: who (``user`` id, ``name``, ``email``) is on call in ``schedule`` from
    ``start`` to ``end`` (ISO 8601 as the API wrote them; empty: open-ended)."""

    schedule: str
    schedule_name: str
    user: str
    name: str
    email: str
    start: str
    end: str

    def as_audit(self):
        return {"schedule": self.schedule, "schedule_name": self.schedule_name, "user": self.user,
                "email": self.email, "start": self.start, "end": self.end}


def _when(text):
    if not text:
        return None
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError("a time without its zone")
    return value


def _entry(item):
    user, schedule = item.get("user") or {}, item.get("schedule") or {}
    if not isinstance(user, dict) or not isinstance(schedule, dict):
        raise ValueError("user and schedule are objects")
    entry = OnCall(schedule=str(schedule.get("id") or ""), schedule_name=str(schedule.get("summary") or ""),
                   user=str(user.get("id") or ""), name=str(user.get("summary") or user.get("name") or ""),
                   email=str(user.get("email") or ""), start=str(item.get("start") or ""),
                   end=str(item.get("end") or ""))
    _when(entry.start), _when(entry.end)  # noqa: B018 - a time that does not parse is a bad answer
    return entry


def _page(session, url, schedules, offset):
    params = [("schedule_ids[]", s) for s in schedules] + [
        ("earliest", "true"), ("include[]", "users"), ("limit", str(PAGE)), ("offset", str(offset))]
    timeout = akeru_settings.AKERU_ONCALL_TIMEOUT
    try:
        answer = session.get(url, params=params, timeout=(timeout, timeout), allow_redirects=False)
    except requests.Timeout:
        raise Unavailable("timeout", f"the schedule API did not answer within {timeout}s") from None
    except requests.RequestException as exc:
        raise Unavailable("unreachable", f"the schedule API could not be reached ({type(exc).__name__})") from None
    if answer.status_code in (401, 403):
        raise Unavailable("unauthorized", f"the schedule API refused the token (HTTP {answer.status_code})")
    if not 200 <= answer.status_code < 300:
        raise Unavailable(f"http {answer.status_code}", f"the schedule API answered HTTP {answer.status_code}")
    try:
        body = answer.json()
        oncalls = body["oncalls"]
        if not isinstance(oncalls, list):
            raise ValueError("oncalls is a list")
        return [_entry(item) for item in oncalls], bool(body.get("more"))
    except (ValueError, KeyError, TypeError, AttributeError):
        raise Unavailable("bad answer", "the schedule API's answer is not the on-call list expected") from None


def on_call(schedules):
    """Everyone on call now (``earliest=true``: each person's current entry) in ``schedules`` (ids).
    Raises ``Unavailable`` when the API cannot say."""
    token = akeru_settings.AKERU_ONCALL_API_TOKEN
    if not token:
        raise Unavailable("not configured", "AKERU_ONCALL_API_TOKEN is not set")
    url = akeru_settings.AKERU_ONCALL_API_URL.rstrip("/") + "/oncalls"
    entries = []
    with requests.Session() as session:
        session.headers.update({"Authorization": f"Token token={token}", "Accept": ACCEPT})
        for page in range(MAX_PAGES):
            found, more = _page(session, url, schedules, page * PAGE)
            entries += found
            if not more:
                break
    return entries


def on_call_now(entries, email, schedules, now):
    """The entry of ``entries`` that puts the person with ``email`` (compared without case) on call at
    ``now`` in one of ``schedules``, or None."""
    wanted = email.strip().lower()
    for entry in entries:
        if not wanted or entry.email.strip().lower() != wanted or entry.schedule not in schedules:
            continue
        start, end = _when(entry.start), _when(entry.end)
        if (start is None or start <= now) and (end is None or now < end):
            return entry
    return None
