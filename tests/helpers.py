"""Small helpers for tests (import them: ``from tests.helpers import wait_until``)."""

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
