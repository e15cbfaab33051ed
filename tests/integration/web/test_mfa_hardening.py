"""MFA checks are serialized: simultaneous requests cannot both use one code, and concurrent wrong
guesses neither escape django-otp's backoff nor lose failure counts.

Each request is a real POST to ``/access/<name>/credentials/`` from its own Django test client in its
own thread (its own database connection). A ``Rendezvous`` forces the interleaving a race needs: a
request about to save the device waits until every other request has read the device too, or is
waiting inside the database while this one holds a transaction (a lock it waits for). Also run on
PostgreSQL (``-m concurrency``), where the lock is a row lock; SQLite serializes writers instead.
"""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, connections
from django.db.models.signals import pre_save
from django.test import Client
from django_otp import device_classes
from django_otp.models import Device

from akeru.models import AuditEvent
from tests.helpers.access import get_json, grant, person, principal
from tests.integration.web.test_access_mfa_tokens import code, enrol

pytestmark = [pytest.mark.concurrency, pytest.mark.django_db(transaction=True)]

SAFETY = 60  # seconds: only reached when a request hangs, and then the test fails


class Rendezvous:
    def __init__(self, count):
        self.count = count
        self.tables = [model._meta.db_table for model in device_classes()]
        self.lock = threading.Condition()
        self.threads = set()
        self.read = set()  # threads that have read a device row
        self.in_db = set()  # threads inside a database call right now
        self.done = set()

    def execute(self, execute, sql, params, many, context):
        me = threading.get_ident()
        with self.lock:
            self.in_db.add(me)
            self.lock.notify_all()
        try:
            return execute(sql, params, many, context)
        finally:
            with self.lock:
                self.in_db.discard(me)
                if sql.lstrip().upper().startswith("SELECT") and any(t in sql for t in self.tables):
                    self.read.add(me)
                self.lock.notify_all()

    def before_save(self, sender, instance, **kwargs):
        if not isinstance(instance, Device):
            return
        me = threading.get_ident()
        holding = connection.in_atomic_block  # this request's transaction (and its locks) is open

        def others_caught_up():
            others = self.threads - {me}
            return len(self.threads) == self.count and all(
                t in self.read or t in self.done or (holding and t in self.in_db) for t in others)

        with self.lock:
            assert self.lock.wait_for(others_caught_up, timeout=SAFETY), "a racing request hung"

    def race(self, requests):
        """Run each ``request(i)`` (an HTTP call) in its own thread, all at once; their responses."""
        barrier = threading.Barrier(self.count)

        def run(i):
            with self.lock:
                self.threads.add(threading.get_ident())
            try:
                barrier.wait(timeout=SAFETY)
                with connection.execute_wrapper(self.execute):
                    return requests(i)
            finally:
                with self.lock:
                    self.done.add(threading.get_ident())
                    self.lock.notify_all()
                connections.close_all()

        pre_save.connect(self.before_save, weak=False)
        try:
            with ThreadPoolExecutor(max_workers=self.count) as pool:
                return list(pool.map(run, range(self.count)))
        finally:
            pre_save.disconnect(self.before_save)


def enrolled_person_with_mfa_principal():
    role = principal("ops", mfa=True)
    user, client = person()
    grant(role, user=user)
    device = enrol(client, user)
    clients = []
    for _ in range(4):
        other = Client()
        other.force_login(user)
        clients.append(other)
    return user, device, clients


def wrong_codes(device, count):
    valid = {code(device, steps) for steps in (-1, 0, 1, 2)}
    return [c for c in (f"{n:06d}" for n in range(100000, 999999, 111111)) if c not in valid][:count]


def error_codes(responses):
    return sorted(r.json()["Error"]["Code"] if r.status_code != 200 else "OK" for r in responses)


def test_two_simultaneous_requests_cannot_both_use_one_code(world):
    user, device, clients = enrolled_person_with_mfa_principal()
    fresh = code(device, steps_ahead=1)  # the enrolment used the current step

    responses = Rendezvous(2).race(lambda i: get_json(clients[i], "ops", mfa_code=fresh))

    assert error_codes(responses) == ["MFAInvalid", "OK"]
    outcomes = sorted(AuditEvent.objects.filter(principal_name="ops").values_list("outcome", flat=True))
    assert outcomes == ["refused", "success"]


def test_concurrent_wrong_guesses_all_count(world, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0  # no backoff: every guess is checked, and each one must count
    user, device, clients = enrolled_person_with_mfa_principal()
    guesses = wrong_codes(device, 4)

    responses = Rendezvous(4).race(lambda i: get_json(clients[i], "ops", mfa_code=guesses[i]))

    assert error_codes(responses) == ["MFAInvalid"] * 4
    device.refresh_from_db()
    assert device.throttling_failure_count == 4


def test_concurrent_wrong_guesses_do_not_escape_the_backoff(world):
    user, device, clients = enrolled_person_with_mfa_principal()
    guesses = wrong_codes(device, 4)

    responses = Rendezvous(4).race(lambda i: get_json(clients[i], "ops", mfa_code=guesses[i]))

    # One guess is checked; django-otp then asks for a pause, so the others are not even tried.
    assert error_codes(responses) == ["MFAInvalid", "MFAThrottled", "MFAThrottled", "MFAThrottled"]
    device.refresh_from_db()
    assert device.throttling_failure_count == 1
    reasons = sorted(AuditEvent.objects.filter(principal_name="ops").values_list("reason", flat=True))
    assert reasons == ["MFA code wrong, stale or replayed"] + ["MFA throttled after failures"] * 3
