"""Recording proxies in front of moto_server: each records what Akeru sends (secrets excepted), answers
some calls itself as real AWS would, and forwards the rest to moto.

``StsProxy`` (point ``AWS_ENDPOINT_URL_STS`` here): moto accepts any AssumeRole duration and every caller;
real STS does not. Set ``refuse`` to answer as AWS does:

``None``              forward everything to moto (record the parameters, secrets excepted)
``"access-denied"``   403 AccessDenied, as for a role whose trust policy does not allow the caller
``"chaining"``        400 ValidationError for DurationSeconds > 3600 (role chaining), forward the rest

``IamProxy`` (point ``AWS_ENDPOINT_URL_IAM`` here): moto has no last-accessed data. The proxy answers
``GenerateServiceLastAccessedDetails`` (a job id) and ``GetServiceLastAccessedDetails`` (the services given
with ``last_accessed(arn, [...])``, ``status`` ``COMPLETED`` by default, or ``IN_PROGRESS``/``FAILED``) with
IAM's XML; ``refuse = "access-denied"`` answers both 403 AccessDenied. Everything else goes to moto.
"""

from __future__ import annotations

import threading
import urllib.request
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

ERROR = """<ErrorResponse xmlns="https://{service}.amazonaws.com/doc/{version}/">
  <Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>
  <RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId>
</ErrorResponse>"""
CHAINING = "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining."
SECRET_PARAMS = {"SerialNumber", "TokenCode"}


class RecordingProxy:
    """The shared part: a threaded server on 127.0.0.1, every call recorded, ``answer`` decides (None:
    forward to ``upstream``)."""

    service, version = "sts", "2011-06-15"

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

    def error(self, status, code, message):
        return status, ERROR.format(service=self.service, version=self.version, code=code, message=escape(message))

    def answer(self, params) -> tuple[int, str] | None:
        return None


class StsProxy(RecordingProxy):
    def answer(self, params):
        action = params.get("Action")
        if self.refuse == "access-denied" and action in ("AssumeRole", "GetFederationToken"):
            return self.error(403, "AccessDenied", "User: arn:aws:iam::123456789012:user/akeru is not authorized to "
                                                   "perform: sts:AssumeRole")
        if self.refuse == "chaining" and action == "AssumeRole" and int(params.get("DurationSeconds", 3600)) > 3600:
            return self.error(400, "ValidationError", CHAINING)
        return None


def _iso(when):
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class IamProxy(RecordingProxy):
    service, version = "iam", "2010-05-08"
    NS = "https://iam.amazonaws.com/doc/2010-05-08/"

    def __init__(self, upstream: str):
        super().__init__(upstream)
        self.status = "COMPLETED"
        self.services: dict[str, list[dict]] = {}  # principal ARN -> [{"namespace", "last", "actions"}]
        self.jobs: dict[str, str] = {}  # job id -> ARN

    def last_accessed(self, arn: str, services: list[dict]):
        """What IAM says of ``arn``: ``[{"namespace": "s3", "last": datetime | None,
        "actions": {"GetObject": datetime | None} | None}]`` (``actions`` None: service level only)."""
        self.services[arn] = services

    def answer(self, params):
        action = params.get("Action")
        if action not in ("GenerateServiceLastAccessedDetails", "GetServiceLastAccessedDetails"):
            return None
        if self.refuse == "access-denied":
            return self.error(403, "AccessDenied", f"User: arn:aws:sts::123456789012:assumed-role/akeru/p is not "
                                                   f"authorized to perform: iam:{action}")
        if action == "GenerateServiceLastAccessedDetails":
            job = str(uuid.uuid4())
            self.jobs[job] = params.get("Arn", "")
            return 200, (f'<GenerateServiceLastAccessedDetailsResponse xmlns="{self.NS}">'
                         f"<GenerateServiceLastAccessedDetailsResult><JobId>{job}</JobId>"
                         "</GenerateServiceLastAccessedDetailsResult><ResponseMetadata><RequestId>"
                         f"{uuid.uuid4()}</RequestId></ResponseMetadata></GenerateServiceLastAccessedDetailsResponse>")
        job = params.get("JobId", "")
        if job not in self.jobs:
            return self.error(404, "NoSuchEntity", f"No such job {job}")
        return 200, self._details(self.services.get(self.jobs[job], []))

    def _details(self, services):
        now = _iso(datetime.now(timezone.utc))
        members = []
        for item in services:
            parts = [f"<ServiceName>{escape(item['namespace'])}</ServiceName>",
                     f"<ServiceNamespace>{escape(item['namespace'])}</ServiceNamespace>",
                     f"<TotalAuthenticatedEntities>{1 if item.get('last') else 0}</TotalAuthenticatedEntities>"]
            if item.get("last"):
                parts.append(f"<LastAuthenticated>{_iso(item['last'])}</LastAuthenticated>")
            if item.get("actions") is not None:
                tracked = "".join(
                    f"<member><ActionName>{escape(name)}</ActionName>"
                    + (f"<LastAccessedTime>{_iso(when)}</LastAccessedTime>" if when else "") + "</member>"
                    for name, when in item["actions"].items())
                parts.append(f"<TrackedActionsLastAccessed>{tracked}</TrackedActionsLastAccessed>")
            members.append("<member>" + "".join(parts) + "</member>")
        error = "<Error><Message>canned failure</Message><Code>FAILED</Code></Error>" if self.status == "FAILED" else ""
        return (f'<GetServiceLastAccessedDetailsResponse xmlns="{self.NS}"><GetServiceLastAccessedDetailsResult>'
                f"<JobStatus>{self.status}</JobStatus><JobType>ACTION_LEVEL</JobType>"
                f"<JobCreationDate>{now}</JobCreationDate><JobCompletionDate>{now}</JobCompletionDate>"
                f"<ServicesLastAccessed>{''.join(members) if self.status == 'COMPLETED' else ''}</ServicesLastAccessed>"
                f"<IsTruncated>false</IsTruncated>{error}</GetServiceLastAccessedDetailsResult>"
                f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
                "</GetServiceLastAccessedDetailsResponse>")


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
        answered = proxy.answer(params)
        if answered is not None:
            return self._answer(*answered)
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
