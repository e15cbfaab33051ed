"""A delaying, throttling, failing HTTP proxy in front of moto_server: a stand-in for real AWS's
round trip and rate limits, for the benchmarks (``bench/``) and the fault tests (``tests/faults/``).

    python -m devtools.awsproxy --upstream http://127.0.0.1:5000 --port 5100 --latency-ms 50

Every request is held ``--latency-ms`` before it is forwarded (keep-alive connections, as boto3
keeps them). For the services named by ``--services`` (from the SigV4 credential scope; default
``iam,sts``) it can also answer as an overloaded AWS does, without forwarding:

``--throttle-rps R``   above R requests per second (a token bucket of one second's worth), ``400
                       Throttling: Rate exceeded`` — what IAM answers an account over its limit;
``--fail-share P``     a share P of requests (spread evenly: of any n requests, n × P rounded down;
                       a test can count on the share, never on luck) answered ``400 Throttling`` or
                       ``503 ServiceUnavailable`` / ``500 InternalFailure``, alternately.

``hide_new=N`` (config only): IAM's eventual consistency — after a ``CreateRole``/``CreateUser``/
``CreateInstanceProfile`` succeeds, the next N requests naming that entity are answered ``404
NoSuchEntity``; after a ``CreateAccessKey``, the next N STS requests signed with the new key are
answered ``403 InvalidClientTokenId``, as AWS does for a moment after creating them.

``gaad_page_size=N`` (config only): GetAccountAuthorizationDetails answered in pages of at most N
items (and at most the request's ``MaxItems``), with ``IsTruncated`` and ``Marker`` as IAM sends them
— moto answers the whole account in one page whatever is asked; the proxy asks moto for it again
for each page and cuts out the page the request's ``Marker`` names (items in the order
roles, users, groups, policies, so a role and its managed policy can come on different pages).

``GET /__proxy__/stats`` answers the counters as JSON (forwarded, throttled, failed, by service;
``upstream_seconds``: time spent waiting on the upstream, summed over requests);
``POST /__proxy__/config`` with a JSON body changes ``latency_ms``, ``throttle_rps``, ``fail_share``
while it runs (a test turns faults on and off); ``POST /__proxy__/reset`` zeroes the counters.
Only ever listens on and forwards to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

_SCOPE = re.compile(r"Credential=([^/]+)/\d{8}/[^/]+/([a-z0-9-]+)/aws4_request")
_NEW_KEY = re.compile(rb"<AccessKeyId>([A-Z0-9]+)</AccessKeyId>")
_HIDDEN_AFTER = {"CreateRole": "RoleName", "CreateUser": "UserName", "CreateInstanceProfile": "InstanceProfileName"}
_ERROR = ('<ErrorResponse xmlns="https://{service}.amazonaws.com/doc/">'
          "<Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error>"
          "<RequestId>{request_id}</RequestId></ErrorResponse>")
_GAAD_LISTS = ("RoleDetailList", "UserDetailList", "GroupDetailList", "Policies")
_FAULTS = [(400, "Sender", "Throttling", "Rate exceeded"),
           (503, "Receiver", "ServiceUnavailable", "Service is unavailable"),
           (400, "Sender", "Throttling", "Rate exceeded"),
           (500, "Receiver", "InternalFailure", "We encountered an internal error. Please try again.")]


class Proxy:
    def __init__(self, upstream, latency_ms=50.0, throttle_rps=0.0, fail_share=0.0, services=("iam", "sts"),
                 host="127.0.0.1", port=0):
        split = urlsplit(upstream)
        if split.hostname not in ("127.0.0.1", "localhost"):
            raise SystemExit("awsproxy forwards to 127.0.0.1 only")
        self.upstream = (split.hostname, split.port or 80)
        self.latency_ms, self.throttle_rps, self.fail_share = float(latency_ms), float(throttle_rps), float(fail_share)
        self.services = set(services)
        self.fail_credit = 0.0  # fail_share accumulated per request; each whole unit is one failure
        self.lock = threading.Lock()
        self.stats = Counter()
        self.tokens, self.refilled = 0.0, time.monotonic()
        self.hide_new, self.hidden = 0, {}  # ("RoleName", name) or ("key", id) -> answers left
        self.gaad_page_size = 0  # 0: moto's one page
        self.server = ThreadingHTTPServer((host, port), _Handler)
        self.server.daemon_threads = True
        self.server.proxy = self

    @property
    def url(self):
        return "http://%s:%d" % self.server.server_address[:2]

    def configure(self, **values):
        with self.lock:
            for name in ("latency_ms", "throttle_rps", "fail_share"):
                if name in values:
                    setattr(self, name, float(values[name]))
            if "gaad_page_size" in values:
                self.gaad_page_size = int(values["gaad_page_size"])
            if "hide_new" in values:
                self.hide_new, self.hidden = int(values["hide_new"]), {}
            self.tokens, self.refilled = self.throttle_rps, time.monotonic()

    def verdict(self, service):
        """None to forward, or the (status, kind, code, message) to answer instead."""
        with self.lock:
            self.stats[f"requests.{service}"] += 1
            if service not in self.services:
                return None
            if self.throttle_rps > 0:
                now = time.monotonic()
                self.tokens = min(self.throttle_rps, self.tokens + (now - self.refilled) * self.throttle_rps)
                self.refilled = now
                if self.tokens < 1:
                    self.stats["throttled"] += 1
                    self.stats[f"throttled.{service}"] += 1
                    return _FAULTS[0]
                self.tokens -= 1
            self.fail_credit += self.fail_share
            if self.fail_share > 0 and self.fail_credit >= 1:
                self.fail_credit -= 1
                fault = _FAULTS[self.stats["failed"] % len(_FAULTS)]
                self.stats["failed"] += 1
                self.stats[f"failed.{service}"] += 1
                self.stats[f"failed.{fault[2]}"] += 1
                return fault
            return None

    def not_yet_visible(self, service, access_key, params):
        """The (status, kind, code, message) for a request naming an entity still hidden, or None."""
        with self.lock:
            if not self.hidden:
                return None
            if service == "sts":
                target = ("key", access_key)
            else:
                target = next(((k, params[k][0]) for k in _HIDDEN_AFTER.values() if k in params), None)
            if target not in self.hidden:
                return None
            self.hidden[target] -= 1
            if self.hidden[target] <= 0:
                del self.hidden[target]
            self.stats["hidden"] += 1
            if service == "sts":
                return 403, "Sender", "InvalidClientTokenId", "The security token included in the request is invalid."
            return 404, "Sender", "NoSuchEntity", f"The {target[0][:-4].lower()} with name {target[1]} cannot be found."

    def created(self, params, answer):
        """Remember an entity just created, to hide it for the next ``hide_new`` requests."""
        if not self.hide_new:
            return
        action = (params.get("Action") or [""])[0]
        with self.lock:
            if action in _HIDDEN_AFTER and _HIDDEN_AFTER[action] in params:
                self.hidden[(_HIDDEN_AFTER[action], params[_HIDDEN_AFTER[action]][0])] = self.hide_new
            elif action == "CreateAccessKey":
                match = _NEW_KEY.search(answer)
                if match:
                    self.hidden[("key", match.group(1).decode())] = self.hide_new

    def paged(self, params, answer):
        """``answer`` cut to one page when it is moto's whole GetAccountAuthorizationDetails."""
        if not self.gaad_page_size or (params.get("Action") or [""])[0] != "GetAccountAuthorizationDetails":
            return answer
        size = min(self.gaad_page_size, int((params.get("MaxItems") or ["1000"])[0]))
        with self.lock:
            self.stats["gaad_pages"] += 1
        return gaad_page(answer, int((params.get("Marker") or ["0"])[0]), size)

    def serve_forever(self):
        self.server.serve_forever()

    def start(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def gaad_page(answer, start, size):
    """The page of a whole GetAccountAuthorizationDetails ``answer`` (XML) from item ``start``."""
    root = ET.fromstring(answer)
    namespace = root.tag[:root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    ET.register_namespace("", namespace.strip("{}"))
    result = root.find(f"{namespace}GetAccountAuthorizationDetailsResult")
    items = []
    for name in _GAAD_LISTS:
        node = result.find(namespace + name)
        if node is None:
            node = ET.SubElement(result, namespace + name)
        for member in list(node):
            items.append((node, member))
            node.remove(member)
    for node, member in items[start:start + size]:
        node.append(member)
    for name in ("IsTruncated", "Marker"):
        for node in result.findall(namespace + name):
            result.remove(node)
    more = start + size < len(items)
    ET.SubElement(result, namespace + "IsTruncated").text = "true" if more else "false"
    if more:
        ET.SubElement(result, namespace + "Marker").text = str(start + size)
    return ET.tostring(root, encoding="utf-8", xml_declaration=False)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # An answer is written as headers, then body: with Nagle's algorithm on, the body waits for the
    # client's ACK of the headers, which the client delays (~40 ms) on a kept-alive connection — an
    # intermittent extra round trip that real AWS does not add.
    disable_nagle_algorithm = True

    def log_message(self, *args):  # quiet
        pass

    def _reply(self, status, body, content_type="text/xml"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _control(self, body):
        proxy = self.server.proxy
        if self.path == "/__proxy__/stats":
            with proxy.lock:
                data = dict(proxy.stats)
            return self._reply(200, json.dumps(data).encode(), "application/json")
        if self.path == "/__proxy__/config":
            proxy.configure(**json.loads(body or b"{}"))
            return self._reply(200, b"{}", "application/json")
        if self.path == "/__proxy__/reset":
            with proxy.lock:
                proxy.stats.clear()
            return self._reply(200, b"{}", "application/json")
        return self._reply(404, b"{}", "application/json")

    def _forward(self):
        proxy = self.server.proxy
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path.startswith("/__proxy__/"):
            return self._control(body)
        match = _SCOPE.search(self.headers.get("Authorization", ""))
        access_key, service = match.groups() if match else ("", "unsigned")
        params = parse_qs(body.decode("utf-8", "replace")) if service in ("iam", "sts") else {}
        if proxy.latency_ms:
            time.sleep(proxy.latency_ms / 1000)
        fault = proxy.verdict(service) or proxy.not_yet_visible(service, access_key, params)
        if fault is not None:
            status, kind, code, message = fault
            text = _ERROR.format(service=service, kind=kind, code=code, message=message, request_id=uuid.uuid4())
            return self._reply(status, text.encode())
        connection = getattr(self, "_upstream", None)
        upstream_started = time.perf_counter()
        for attempt in (1, 2):  # a kept-alive upstream connection may have been closed meanwhile
            if connection is None:
                connection = http.client.HTTPConnection(*proxy.upstream, timeout=120)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "proxy-connection")}
                connection.request(self.command, self.path, body=body, headers=headers)
                answer = connection.getresponse()
                data = answer.read()
                break
            except (http.client.HTTPException, OSError):
                connection.close()
                connection = None
                if attempt == 2:
                    with proxy.lock:
                        proxy.stats["upstream_errors"] += 1
                    return self._reply(502, b"upstream unreachable", "text/plain")
        self._upstream = connection
        with proxy.lock:
            proxy.stats["forwarded"] += 1
            proxy.stats["upstream_seconds"] += time.perf_counter() - upstream_started  # moto's share
        if answer.status == 200 and params:
            proxy.created(params, data)
            data = proxy.paged(params, data)
        self.send_response(answer.status)
        for key, value in answer.getheaders():
            if key.lower() not in ("transfer-encoding", "connection", "content-length", "server", "date"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward

    def finish(self):
        connection = getattr(self, "_upstream", None)
        if connection is not None:
            connection.close()
        super().finish()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", required=True, help="moto_server's URL (127.0.0.1)")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=50.0, help="delay per request (default 50)")
    parser.add_argument("--throttle-rps", type=float, default=0.0, help="answer Throttling above this rate (0: never)")
    parser.add_argument("--fail-share", type=float, default=0.0, help="share of requests answered 400/5xx, spread evenly")
    parser.add_argument("--services", default="iam,sts", help="services throttled and failed (default iam,sts)")
    args = parser.parse_args(argv)
    proxy = Proxy(args.upstream, args.latency_ms, args.throttle_rps, args.fail_share, args.services.split(","),
                  port=args.port)
    print(f"awsproxy listening at {proxy.url} -> {args.upstream}", flush=True)
    proxy.serve_forever()


if __name__ == "__main__":
    main()
