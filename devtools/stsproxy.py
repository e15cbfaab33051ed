"""An HTTP proxy in front of moto_server's STS that records what Akeru sends and can refuse like AWS.

moto accepts any AssumeRole duration and every caller; real STS does not. Point
``AWS_ENDPOINT_URL_STS`` here and set ``refuse`` to answer as AWS does:

``None``              forward everything to moto (record the parameters, secrets excepted)
``"access-denied"``   403 AccessDenied, as for a role whose trust policy does not allow the caller
``"chaining"``        400 ValidationError for DurationSeconds > 3600 (role chaining), forward the rest
"""

from __future__ import annotations

import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

ERROR = """<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>
  <RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId>
</ErrorResponse>"""
CHAINING = "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining."
SECRET_PARAMS = {"SerialNumber", "TokenCode"}


class StsProxy:
    def __init__(self, upstream: str):
        self.upstream = upstream.rstrip("/")
        self.refuse: str | None = None
        self.calls: list[dict] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.proxy = self
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return "http://%s:%d" % self.server.server_address[:2]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        return

    def do_POST(self):
        proxy = self.server.proxy
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        params = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        call = {k: v for k, v in params.items() if k not in SECRET_PARAMS}
        credential = self.headers.get("Authorization", "").partition("Credential=")[2]
        call["_signed_by"] = credential.split("/")[0]  # the access key id that signed the request
        proxy.calls.append(call)
        action = params.get("Action")
        if proxy.refuse == "access-denied" and action in ("AssumeRole", "GetFederationToken"):
            return self._answer(403, ERROR.format(code="AccessDenied", message=(
                "User: arn:aws:iam::123456789012:user/akeru is not authorized to perform: sts:AssumeRole")))
        if proxy.refuse == "chaining" and action == "AssumeRole" and int(params.get("DurationSeconds", 3600)) > 3600:
            return self._answer(400, ERROR.format(code="ValidationError", message=CHAINING))
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
        request = urllib.request.Request(proxy.upstream + self.path, data=body, headers=headers, method="POST")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=30) as response:
                return self._answer(response.status, response.read().decode())
        except urllib.error.HTTPError as exc:
            return self._answer(exc.code, exc.read().decode())

    def _answer(self, status, text):
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
