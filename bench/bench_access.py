"""/access/: vend latency against a raw boto3 AssumeRole, and the page's SQL queries for 1 vs 200 grants.

    .venv/bin/python bench/bench_access.py                 # 300 vends each way
    .venv/bin/python bench/bench_access.py --vends 50      # quick run

Against a fresh moto_server this script starts on a free 127.0.0.1 port, in this process:

1. Set-up (not measured): the principal ``developer`` synced by Akeru's own engine, granted to the
   group of the person ``alice``; a second person with 200 principals (granted through a group, half
   of them also directly with an expiry) and a third with 1.
2. Timed, interleaved (vend, raw, vend, raw, … so both see the same machine load), after 10 warm-up
   rounds: ``POST /access/developer/credentials/`` with ``Accept: application/json`` through Django's
   test client (URL routing, session, CSRF, the grant and status checks, AssumeRole, the audit row,
   the JSON answer) against ``sts.assume_role`` with the same parameters on one boto3 client. The goal
   is Akeru's median and p95 within 1.5x of the raw call's.
3. SQL queries of ``GET /access/`` for the person with 1 grant and the one with 200.

Figures, not tests: ``tests/integration/web/test_access.py`` asserts the query counts are equal.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _stack import bench_main  # noqa: E402


def percentile(values, share):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vends", type=int, default=300, help="timed vends each way (default 300)")
    bench_main("bench_access", parser, run, report)


def people():
    from django.contrib.auth.models import Group, User
    from django.test import Client
    from django.utils import timezone

    from akeru.models import AccessRole, AWSRole, Status

    def person(name, grants):
        user = User.objects.create_user(name, password="x")
        group = Group.objects.create(name=f"team-{name}")
        user.groups.add(group)
        roles = AWSRole.objects.bulk_create([AWSRole(name=f"{name}-{i:03d}", policy="template-readonly",
                                                     status=Status.SYNCED) for i in range(grants)])
        AccessRole.objects.bulk_create([AccessRole(role=r, group=group) for r in roles])
        AccessRole.objects.bulk_create([AccessRole(role=r, user=user, expires_at=timezone.now() + timedelta(hours=8))
                                        for r in roles[::2]])
        client = Client(HTTP_HOST="localhost")
        client.force_login(user)
        return client

    return person


def run(stack, args):
    from django.contrib.auth.models import Group, User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from akeru.reconcile import catalog, principal
    from akeru.aws import clients
    from akeru.models import AccessRole, AuditEvent, AWSRole

    assert catalog.refresh_catalog().ok
    role = AWSRole.objects.create(name="developer", policy="template-developer", generation=1)
    run_ = principal.sync(role.pk)
    assert run_ is not None and not run_.error, run_ and run_.error
    role.refresh_from_db()
    alice = User.objects.create_user("alice", password="alice")
    developers = Group.objects.create(name="developers")
    alice.groups.add(developers)
    AccessRole.objects.create(role=role, group=developers)
    client = Client(HTTP_HOST="localhost")
    client.force_login(alice)

    sts = clients.base_session().client("sts")
    raw_params = {"RoleArn": role.arn, "RoleSessionName": "alice", "SourceIdentity": "alice", "DurationSeconds": 3600}

    def vend():
        response = client.post("/access/developer/credentials/", HTTP_ACCEPT="application/json")
        assert response.status_code == 200, response.content[:300]

    def raw():
        sts.assume_role(**raw_params)["Credentials"]

    from django.db import connections

    timings = {}
    for mode, max_age in (("sqlite", 0), ("persistent", 60)):
        # worker.settings closes SQLite connections after every request (CONN_MAX_AGE=0: web, worker and
        # beat share the file); with PostgreSQL (DATABASE_URL) they are kept for 60 s.
        connections["default"].settings_dict["CONN_MAX_AGE"] = max_age
        for _ in range(10):
            vend()
            raw()
        timings[mode] = {"vend": [], "raw": []}
        stack.log(f"timing {args.vends} vends and {args.vends} raw AssumeRole calls, interleaved "
                  f"(database connection {'per request' if not max_age else 'kept'})")
        for _ in range(args.vends):
            for name, call in (("vend", vend), ("raw", raw)):
                started = time.perf_counter()
                call()
                timings[mode][name].append(time.perf_counter() - started)
    with CaptureQueriesContext(connection) as queries:
        vend()
    vend_queries = len(queries)

    person = people()
    counts = {}
    for name, grants in (("one", 1), ("many", 200)):
        page_client = person(name, grants)
        page_client.get("/access/")
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            response = page_client.get("/access/")
            seconds = time.perf_counter() - started
        assert response.status_code == 200
        counts[grants] = (len(queries), seconds)
    audited = AuditEvent.objects.filter(actor=alice, outcome="success").count()
    return {"timings": timings, "counts": counts, "vend_queries": vend_queries, "audited": audited}


def report(out, args):
    print()
    print(f"{'call':<70} {'median ms':>10} {'p95 ms':>8}")
    for mode, what in (("sqlite", "SQLite, a database connection per request (worker.settings)"),
                       ("persistent", "database connection kept between requests (as with PostgreSQL)")):
        vend, raw = out["timings"][mode]["vend"], out["timings"][mode]["raw"]
        print(what)
        for label, values in (("  Akeru POST /access/developer/credentials/ (JSON, test client)", vend),
                              ("  raw boto3 sts.assume_role, same parameters", raw)):
            print(f"{label:<70} {statistics.median(values) * 1000:>10.2f} {percentile(values, 0.95) * 1000:>8.2f}")
        median_ratio = statistics.median(vend) / statistics.median(raw)
        p95_ratio = percentile(vend, 0.95) / percentile(raw, 0.95)
        goal = "met" if max(median_ratio, p95_ratio) <= 1.5 else "NOT met"
        print(f"  ratio Akeru / raw: median {median_ratio:.2f}x, p95 {p95_ratio:.2f}x  (goal <= 1.5x: {goal}); "
              f"Akeru adds {(statistics.median(vend) - statistics.median(raw)) * 1000:.1f} ms at the median")
    print(f"one vend: {out['vend_queries']} SQL queries (session, user, grant with its principal, audit row); "
          f"{out['audited']} vends audited")
    one, many = out["counts"][1], out["counts"][200]
    print(f"GET /access/: {one[0]} SQL queries with 1 grant, {many[0]} with 200 grants "
          f"(ratio {many[0] / one[0]:.2f}); render {one[1] * 1000:.1f} ms vs {many[1] * 1000:.1f} ms")


if __name__ == "__main__":
    main()
