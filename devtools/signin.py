"""A local stand-in for the AWS federation sign-in endpoint (``/federation``), for the demo and tests.

It answers like ``https://signin.aws.amazon.com/federation``:

* ``?Action=getSigninToken&Session={"sessionId","sessionKey","sessionToken"}[&SessionDuration=N]``
  answers ``{"SigninToken": "..."}``; it asks the local STS (moto) ``GetCallerIdentity`` with the
  session's credentials to learn who would be signed in. Like the real endpoint it refuses a
  malformed session, a ``SessionDuration`` outside 900–43200 seconds, and a ``SessionDuration`` with
  federated-user credentials (HTTP 400).
* ``?Action=login&Issuer=…&Destination=…&SigninToken=…`` shows a page naming who would be signed in
  to the console (instead of the console itself), with a link back to the issuer.

``mode`` makes it fail like the real one can, for tests: ``"ok"`` (default), ``"error"`` (HTTP 400
to getSigninToken), ``"server-error"`` (HTTP 500), ``"timeout"`` (answers after ``delay`` seconds),
``"garbage"`` (HTTP 200 without a token).

    python devtools/signin.py --port 5001 --sts-endpoint http://127.0.0.1:5000
"""

from __future__ import annotations

import html
import json
import secrets
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

MODES = ("ok", "error", "server-error", "timeout", "garbage")


class SigninStandIn:
    """The stand-in server. ``start()`` serves in a background thread; ``url`` is its /federation URL."""

    def __init__(self, sts_endpoint: str, port: int = 0, host: str = "127.0.0.1", region: str = "us-east-1"):
        self.sts_endpoint = sts_endpoint
        self.region = region
        self.mode = "ok"
        self.delay = 5.0
        self.tokens: dict[str, dict] = {}  # SigninToken -> who and how
        self.requests: list[dict] = []  # what was asked (no secrets): action, session_duration, identity
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer((host, port), _Handler)
        self.server.daemon_threads = True
        self.server.standin = self
        self.thread = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/federation"

    def start(self) -> "SigninStandIn":
        self.thread = threading.Thread(target=self.server.serve_forever, name="signin-standin", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def identity(self, session: dict) -> str:
        import boto3

        sts = boto3.client(
            "sts", endpoint_url=self.sts_endpoint, region_name=self.region,
            aws_access_key_id=session["sessionId"], aws_secret_access_key=session["sessionKey"],
            aws_session_token=session["sessionToken"],
        )
        return sts.get_caller_identity()["Arn"]

    def issue(self, record: dict) -> str:
        token = secrets.token_urlsafe(48)
        with self._lock:
            self.tokens[token] = record
        return token


class _Handler(BaseHTTPRequestHandler):
    server_version = "signin-standin/1"

    def log_message(self, fmt, *args):  # quiet: the query string carries credentials
        return

    @property
    def standin(self) -> SigninStandIn:
        return self.server.standin

    def do_GET(self):
        self._handle(parse_qs(urlsplit(self.path).query))

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self._handle(parse_qs(self.rfile.read(length).decode()))

    def _send(self, status: int, body: str, content_type: str = "application/json") -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, query: dict) -> None:
        if urlsplit(self.path).path.rstrip("/") != "/federation":
            return self._send(404, "Not Found", "text/plain")
        action = (query.get("Action") or [""])[0]
        if action == "getSigninToken":
            return self._get_signin_token(query)
        if action == "login":
            return self._login(query)
        return self._send(400, "Bad Request: unknown Action", "text/plain")

    def _get_signin_token(self, query: dict) -> None:
        standin = self.standin
        mode = standin.mode
        if mode == "timeout":
            time.sleep(standin.delay)
        elif mode == "error":
            return self._send(400, "Bad Request", "text/plain")
        elif mode == "server-error":
            return self._send(500, "Internal Server Error", "text/plain")
        elif mode == "garbage":
            return self._send(200, "<html>Service unavailable</html>", "text/html")
        try:
            session = json.loads((query.get("Session") or [""])[0])
            if not all(isinstance(session.get(k), str) and session[k] for k in ("sessionId", "sessionKey", "sessionToken")):
                raise ValueError
        except (ValueError, AttributeError):
            return self._send(400, "Bad Request: invalid Session", "text/plain")
        duration = (query.get("SessionDuration") or [None])[0]
        if duration is not None and not (duration.isdigit() and 900 <= int(duration) <= 43200):
            return self._send(400, "Bad Request: invalid SessionDuration", "text/plain")
        try:
            arn = standin.identity(session)
        except Exception as exc:  # noqa: BLE001 - the real endpoint answers 400 to credentials STS refuses
            return self._send(400, f"Bad Request: the session's credentials were refused ({type(exc).__name__})", "text/plain")
        if duration is not None and ":federated-user/" in arn:
            return self._send(400, "Bad Request: SessionDuration is not allowed with federation tokens", "text/plain")
        standin.requests.append({"action": "getSigninToken", "session_duration": duration, "identity": arn})
        token = standin.issue({"arn": arn, "session_duration": duration, "issued": datetime.now(timezone.utc)})
        return self._send(200, json.dumps({"SigninToken": token}))

    def _login(self, query: dict) -> None:
        token = (query.get("SigninToken") or [""])[0]
        record = self.standin.tokens.get(token)
        issuer = (query.get("Issuer") or [""])[0]
        destination = (query.get("Destination") or [""])[0]
        self.standin.requests.append({"action": "login", "issuer": issuer, "destination": destination,
                                      "identity": record["arn"] if record else None})
        if record is None:
            return self._send(400, _page("Sign-in failed", "<p>The sign-in token is invalid or expired.</p>"), "text/html")
        arn = html.escape(record["arn"])
        account = html.escape(record["arn"].split(":")[4]) if record["arn"].count(":") >= 5 else ""
        duration = record["session_duration"]
        if record["arn"].endswith(":user/moto") and duration is None:
            # moto answers GetCallerIdentity for every federation token with this placeholder
            arn += "<br><small>a federated user: moto does not record who a federation token was issued to</small>"
        body = f"""
<p class="tag">Local stand-in for the AWS console</p>
<h1>Signed in to the AWS console</h1>
<p>AWS would now open the console as:</p>
<p class="who" id="identity">{arn}</p>
<table>
<tr><th>Account</th><td>{account}</td></tr>
<tr><th>Console session</th><td>{html.escape(duration) + " s" if duration else "as long as the credentials (federation token)"}</td></tr>
<tr><th>Destination</th><td>{html.escape(destination)}</td></tr>
<tr><th>Issuer</th><td><a href="{html.escape(issuer)}">{html.escape(issuer)}</a></td></tr>
</table>
<p><a class="back" href="{html.escape(issuer)}">Back to Akeru</a></p>"""
        return self._send(200, _page("AWS console (local stand-in)", body), "text/html")


def _page(title: str, body: str) -> str:
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;background:#232f3e;color:#fff;margin:0;padding:48px}}
main{{max-width:720px;margin:auto;background:#fff;color:#16191f;border-radius:10px;padding:32px 36px}}
.tag{{display:inline-block;background:#ff9900;color:#16191f;font-weight:700;font-size:12px;padding:2px 8px;border-radius:4px}}
.who{{font-family:monospace;font-size:16px;background:#f2f3f3;padding:12px;border-radius:6px;word-break:break-all}}
th{{text-align:left;padding:4px 16px 4px 0;color:#545b64}} a{{color:#0972d3}}</style></head>
<body><main>{body}</main></body></html>"""


def main(argv=None) -> int:
    import argparse
    import os

    parser = argparse.ArgumentParser(description="Local stand-in for the AWS federation sign-in endpoint")
    parser.add_argument("--port", type=int, default=5001)
    parser.add_argument("--sts-endpoint", default=os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"))
    parser.add_argument("--mode", choices=MODES, default="ok")
    args = parser.parse_args(argv)
    standin = SigninStandIn(args.sts_endpoint, port=args.port)
    standin.mode = args.mode
    print(f"sign-in stand-in on {standin.url} (STS at {args.sts_endpoint})", flush=True)
    try:
        standin.server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        standin.server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
