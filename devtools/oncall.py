"""A stand-in for PagerDuty's REST API v2 ``GET /oncalls``, on 127.0.0.1, for the demo and the tests.

It answers as PagerDuty does: ``Authorization: Token token=…`` checked (else 401
``{"error": {"message": "Unauthorized", "code": 2006}}``), ``schedule_ids[]`` filtering, ``include[]=users``
putting the user's ``email`` on ``user`` (otherwise a ``user_reference`` without it), ``limit``/``offset``
paging with ``more``; the entries are those on call now (``start <= now < end``).

Control endpoints (no token; loopback only, never part of PagerDuty's API):

``POST /_schedule``  ``{"id": "PDEMO1", "name": "Demo", "oncall": [{"email": "alice@example.com",
                     "name": "alice", "start": ISO, "end": ISO}]}`` sets who is on call in that schedule (start
                     and end default to an hour ago and eight hours from now)
``POST /_fault``     ``{"fault": "500" | "hang" | "garbage" | null}``: answer ``/oncalls`` with HTTP 500, never
                     (until stopped), or a body that is not JSON; ``null`` answers normally again
``GET /_calls``      the ``/oncalls`` requests received: ``[{"path", "query", "authorized", "accept"}]``

Run it: ``python -m devtools.oncall --port 5004 --token TOKEN --schedule PDEMO1=alice@example.com``
(``--schedule`` repeated, or ``--config schedules.json`` holding ``[{"id", "name", "oncall": [...]}]``).
"""

from __future__ import annotations

import argparse
import json
import threading
import zlib
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

UNAUTHORIZED = {"error": {"message": "Unauthorized", "code": 2006}}
FAULTS = {None, "500", "hang", "garbage"}


def _iso(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class OncallServer:
    """The stand-in, serving in a thread of this process (``start``/``stop``); ``url`` is its base URL."""

    def __init__(self, token: str, port: int = 0, schedules: list | None = None):
        self.token = token
        self.schedules: dict[str, dict] = {}
        self.fault: str | None = None
        self.calls: list[dict] = []
        self.release = threading.Event()
        self.lock = threading.Lock()
        for schedule in schedules or []:
            self.set_schedule(schedule)
        self.server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self.server.daemon_threads = True
        self.server.standin = self

    @property
    def url(self) -> str:
        return "http://%s:%d" % self.server.server_address[:2]

    def start(self) -> OncallServer:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def serve_forever(self):
        self.server.serve_forever()

    def stop(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    # --- control -----------------------------------------------------------------------------------

    def set_schedule(self, schedule: dict):
        """Who is on call in one schedule (``POST /_schedule``'s body)."""
        sid = str(schedule["id"])
        now = datetime.now(timezone.utc)
        entries = []
        for n, person in enumerate(schedule.get("oncall") or []):
            email = person["email"]
            name = person.get("name") or email.split("@")[0]
            entries.append({
                "escalation_level": int(person.get("escalation_level", 1)),
                "user": {"id": person.get("id") or f"PU{zlib.crc32(email.encode()) % 10**6:06d}", "type": "user",
                         "summary": name, "email": email, "name": name},
                "schedule": {"id": sid, "type": "schedule_reference", "summary": schedule.get("name") or sid},
                "start": person.get("start") or _iso(now - timedelta(hours=1)),
                "end": person.get("end") or _iso(now + timedelta(hours=8)),
                "_order": n,
            })
        with self.lock:
            self.schedules[sid] = {"name": schedule.get("name") or sid, "entries": entries}

    def set_fault(self, fault: str | None):
        if fault not in FAULTS:
            raise ValueError(f"fault is one of {sorted(f for f in FAULTS if f)} or null")
        self.fault = fault

    # --- /oncalls -------------------------------------------------------------------------------------

    def oncalls(self, query: dict, now: datetime | None = None) -> dict:
        now = now or datetime.now(timezone.utc)
        wanted = query.get("schedule_ids[]") or list(self.schedules)
        users = "users" in query.get("include[]", [])
        limit = min(int((query.get("limit") or ["25"])[0]), 100)
        offset = int((query.get("offset") or ["0"])[0])
        with self.lock:
            entries = [e for sid in wanted for e in self.schedules.get(sid, {}).get("entries", [])
                       if _parse(e["start"]) <= now < _parse(e["end"])]
        shown = []
        for entry in entries[offset:offset + limit]:
            item = {k: v for k, v in entry.items() if not k.startswith("_")}
            if not users:
                item["user"] = {"id": entry["user"]["id"], "type": "user_reference", "summary": entry["user"]["summary"]}
            shown.append(item)
        return {"oncalls": shown, "limit": limit, "offset": offset, "more": offset + limit < len(entries),
                "total": None}


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        return

    @property
    def standin(self) -> OncallServer:
        return self.server.standin

    def _answer(self, status: int, body, content_type="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802 - http.server's name
        parts = urlsplit(self.path)
        if parts.path == "/_calls":
            return self._answer(200, self.standin.calls)
        if parts.path != "/oncalls":
            return self._answer(404, {"error": {"message": "Not Found", "code": 2100}})
        query = parse_qs(parts.query)
        authorized = self.headers.get("Authorization", "") == f"Token token={self.standin.token}"
        self.standin.calls.append({"path": parts.path, "query": query, "authorized": authorized,
                                   "accept": self.headers.get("Accept", "")})
        if not authorized:
            return self._answer(401, UNAUTHORIZED)
        fault = self.standin.fault
        if fault == "500":
            return self._answer(500, {"error": {"message": "Internal Server Error", "code": 2000}})
        if fault == "hang":
            self.standin.release.wait(60)  # the client gives up first (its timeout)
            return None
        if fault == "garbage":
            return self._answer(200, b"<html>maintenance</html>", "text/html")
        return self._answer(200, self.standin.oncalls(query))

    def do_POST(self):  # noqa: N802
        parts = urlsplit(self.path)
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            if parts.path == "/_schedule":
                self.standin.set_schedule(body)
            elif parts.path == "/_fault":
                self.standin.set_fault(body.get("fault"))
            else:
                return self._answer(404, {"error": {"message": "Not Found", "code": 2100}})
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            return self._answer(400, {"error": {"message": f"bad control request: {exc}", "code": 2001}})
        return self._answer(200, {"ok": True})


def _schedules(args) -> list:
    schedules = []
    if args.config:
        with open(args.config) as f:
            schedules += json.load(f)
    for spec in args.schedule or []:
        sid, _, emails = spec.partition("=")
        schedules.append({"id": sid, "name": sid,
                          "oncall": [{"email": e} for e in emails.split(",") if e]})
    return schedules


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=5004)
    parser.add_argument("--token", required=True, help="the API token Akeru must send")
    parser.add_argument("--schedule", action="append", help="ID=email[,email…]: who is on call now")
    parser.add_argument("--config", help="a JSON file: a list of schedules as POST /_schedule takes them")
    args = parser.parse_args(argv)
    server = OncallServer(args.token, args.port, _schedules(args))
    print(f"on-call schedule stand-in on {server.url} ({', '.join(server.schedules) or 'no schedules'})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
