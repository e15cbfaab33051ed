"""Small helpers for tests (import them: ``from tests.helpers import wait_until``); by subject in
tests/helpers/*.py (``aws``: in-process moto; ``live``: the subprocess stack; ``access``: /access/)."""

import json
import time

import pytest


def wait_until(predicate, timeout=10.0, interval=0.1, message=None, ignore=()):
    """Call ``predicate()`` until it returns a truthy value, and return that value.

    Fails the test after ``timeout`` seconds with ``message`` (default: the predicate's
    name), the last value it returned and the last exception it raised. Exceptions of the
    types in ``ignore`` count as "not yet" (e.g. an IAM entity that does not exist yet).
    """
    deadline = time.monotonic() + timeout
    last_value, last_error, attempts = None, None, 0
    while True:
        attempts += 1
        try:
            last_value = predicate()
        except ignore as error:  # noqa: PERF203
            last_error, last_value = error, None
        if last_value:
            return last_value
        if time.monotonic() >= deadline:
            what = message or getattr(predicate, "__name__", repr(predicate))
            detail = f"last value: {last_value!r}"
            if last_error is not None:
                detail += f"; last error: {last_error!r}"
            pytest.fail(f"timed out after {timeout:g}s ({attempts} tries) waiting for {what}; {detail}", pytrace=False)
        time.sleep(interval)


class TemplateBucket:
    """Template objects in the policy bucket; the subclass provides ``s3``, ``bucket``."""

    def key(self, name):
        """``{POLICY_PREFIX}/{name}.json``, as Akeru itself names it."""
        from akeru.settings.accessor import akeru_settings

        return akeru_settings.template_key(name[: -len(".json")] if name.endswith(".json") else name)

    def put_template(self, name, document):
        """Upload a template: a dict is dumped as JSON, str/bytes go as they are. Returns its key."""
        body = document if isinstance(document, (str, bytes)) else json.dumps(document)
        self.s3.put_object(Bucket=self.bucket, Key=self.key(name), Body=body)
        return self.key(name)

    def delete_template(self, name):
        self.s3.delete_object(Bucket=self.bucket, Key=self.key(name))


class SilentServer:
    """A TCP server on 127.0.0.1 that accepts connections and never answers (a hung broker).

    ``with SilentServer() as server: server.url("redis")`` — the sockets are closed on exit.
    """

    def __init__(self):
        import socket
        import threading

        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self.accepted = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            self.accepted.append(conn)  # held open, never read from or written to

    def url(self, scheme="redis"):
        return f"{scheme}://127.0.0.1:{self.port}/0"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)
        for conn in self.accepted:
            conn.close()
        self._sock.close()


def run_with_deadline(function, seconds):
    """Run ``function()`` in a thread; fail the test if it has not returned after ``seconds``
    (a hang guard, not a timing assertion). Returns its result or re-raises its exception."""
    import threading

    outcome = {}

    def target():
        try:
            outcome["value"] = function()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            outcome["error"] = exc
        finally:
            from django.db import connections

            connections.close_all()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"{getattr(function, '__name__', function)} still running after {seconds}s: it hangs", pytrace=False)
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")
