"""Small helpers for tests (import them: ``from tests.helpers import wait_until``)."""

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
        from akeru.conf import akeru_settings

        return akeru_settings.template_key(name[: -len(".json")] if name.endswith(".json") else name)

    def put_template(self, name, document):
        """Upload a template: a dict is dumped as JSON, str/bytes go as they are. Returns its key."""
        body = document if isinstance(document, (str, bytes)) else json.dumps(document)
        self.s3.put_object(Bucket=self.bucket, Key=self.key(name), Body=body)
        return self.key(name)

    def delete_template(self, name):
        self.s3.delete_object(Bucket=self.bucket, Key=self.key(name))
