"""Drift scan of several accounts: one after another (in this process) against in parallel (one
``reconcile_account`` task per account on separate Celery worker processes, as the periodic scan runs).

    .venv/bin/python bench/bench_accounts.py                       # 3 accounts x 1000 principals
    .venv/bin/python bench/bench_accounts.py --principals 100      # quick run

Against a fresh moto_server this script starts on a free 127.0.0.1 port (moto keeps a separate IAM
per account; assuming a role in another account gives credentials that act in it):

1. Set-up (not measured): ``--accounts`` accounts, each with its remote access role, and
   ``--principals`` synced principals in each (built with Akeru's planner and executor, as in
   ``bench_drift.py``), with about ``--drift`` of them changed behind Akeru's back.
2. Timed, in one run, ``--rounds`` times each, alternating:
   - serial: ``reconcile.reconcile_all(mode="report")`` in this process: the accounts one after another;
   - parallel: the periodic task ``akeru.reconcile_all`` enqueued once; it enqueues one
     ``akeru.reconcile_account`` per account, and ``--accounts`` worker processes (concurrency 1) scan
     them at the same time. Wall time is from the enqueue until the last account's run is recorded.
   Each scan's IAM calls per account come from its ``ReconcileRun`` (Akeru counts calls per account).

moto ignores GetAccountAuthorizationDetails paging (one page whatever the size); the report also says
how many pages real IAM would need. The machine's cores and moto_server (one process, serving every
account) bound the parallel speed-up here; against AWS each account has its own IAM rate limits.
Figures, not tests.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from math import ceil
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _stack import ACCOUNT_ID, REMOTE_ACCESS_ROLE, Stopwatch, bench_main  # noqa: E402
from bench_drift import KINDS, inject_drift  # noqa: E402
from devtools import localaws  # noqa: E402

OTHER_ACCOUNTS = ("111111111111", "222222222222", "333333333333", "444444444444", "555555555555",
                  "666666666666", "777777777777", "888888888888", "999999999999", "101010101010", "121212121212")


def make_accounts(stack, count):
    from akeru.models import Account

    accounts = [Account.objects.default()]
    for i, account_id in enumerate(OTHER_ACCOUNTS[: count - 1], start=2):
        localaws.seed_account(stack.moto.url, account_id=account_id, remote_access_role=REMOTE_ACCESS_ROLE,
                              trusted_account=ACCOUNT_ID)
        accounts.append(Account.objects.create(name=f"account-{i}", account_id=account_id))
    return accounts


def build_principals(account, count, threads):
    """``count`` principals in ``account``'s IAM (Akeru's plan for a new name) and their synced rows."""
    from django.utils import timezone as dj_timezone

    from akeru.domain import planner, types
    from akeru.reconcile import principal
    from akeru.aws import clients
    from akeru.aws.execute import execute
    from akeru.models import AWSRole, PolicyTemplate, Status

    templates = {t.name: t for t in PolicyTemplate.objects.all()}
    picks = random.Random(7).choices(range(len(KINDS)), weights=[share for *_, share in KINDS], k=count)
    rows = []
    for i, k in enumerate(picks):
        kind, template, _ = KINDS[k]
        rows.append(AWSRole(account=account, name=f"p{i:04d}-{kind}", policy=template, user=kind == "user",
                            ec2=kind == "ec2", aws_lambda=kind == "lambda", generation=1))

    def create(row):
        iam = clients.iam(account)  # per thread
        template = templates[row.policy]
        desired = principal.build_desired(row, template.body)
        execute(iam, planner.plan(desired, types.ObservedPrincipal(name=row.name, is_user=row.user)))
        row.status, row.observed_generation = Status.SYNCED, row.generation
        row.applied_name, row.applied_user, row.applied_ec2 = row.name, row.user, desired.kind is types.Kind.EC2
        row.applied_account = account
        row.template_etag, row.arn, row.last_synced_at = template.etag, desired.arn, dj_timezone.now()
        return row

    with ThreadPoolExecutor(threads) as pool:
        rows = list(pool.map(create, rows))
    AWSRole.objects.bulk_create(rows)
    return rows


class AccountBoto:
    """``stack.boto`` for one account (plain boto3 through its remote role), for ``inject_drift``."""

    def __init__(self, stack, account):
        self.client = localaws.account_client("iam", stack.moto.url, account.remote_role_arn)

    def boto(self, service):
        assert service == "iam"
        return self.client


def reset_statuses():
    from akeru.models import AWSRole, Status

    AWSRole.objects.filter(status=Status.DRIFTED).update(status=Status.SYNCED, last_error="")


def serial_scan():
    from akeru import reconcile

    reset_statuses()
    with Stopwatch() as sw:
        runs = reconcile.reconcile_all(mode="report")
    if not runs.ok:
        raise RuntimeError(runs.error)
    return sw.seconds, list(runs)


def parallel_scan(stack, accounts, timeout=600):
    from akeru import tasks
    from akeru.models import ReconcileRun

    reset_statuses()
    last = ReconcileRun.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    started = time.perf_counter()
    tasks.reconcile_all.delay()
    deadline = time.monotonic() + timeout
    while True:
        runs = list(ReconcileRun.objects.filter(pk__gt=last, finished_at__isnull=False).select_related("account"))
        if len(runs) >= len(accounts):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"parallel scan did not finish in {timeout}s:\n{stack.worker_log_tail()}")
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    if not all(run.ok for run in runs):
        raise RuntimeError("; ".join(run.error for run in runs if not run.ok))
    overlap = min(r.finished_at for r in runs) > max(r.started_at for r in runs)
    return seconds, runs, overlap


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", type=int, default=3, help="accounts (default 3, at most 6)")
    parser.add_argument("--principals", type=int, default=1000, help="principals per account (default 1000)")
    parser.add_argument("--drift", type=float, default=0.03, help="share drifted per account (default 0.03)")
    parser.add_argument("--rounds", type=int, default=2, help="scans of each kind (default 2)")
    parser.add_argument("--threads", type=int, default=4, help="threads building IAM during set-up (default 4)")
    bench_main("bench_accounts", parser, run, report)


def run(stack, args):
    from akeru.reconcile import catalog

    refresh = catalog.refresh_catalog()
    assert refresh.ok, refresh.error
    accounts = make_accounts(stack, args.accounts)
    out = {"accounts": accounts, "injected": {}, "serial": [], "parallel": []}
    for account in accounts:
        stack.log(f"building {args.principals} principals in {account} (set-up, not measured)")
        with Stopwatch() as sw:
            rows = build_principals(account, args.principals, args.threads)
        stack.log(f"  {len(rows)} in {sw.seconds:.1f}s")
        out["injected"][account.account_id] = inject_drift(AccountBoto(stack, account), rows,
                                                           max(4, round(args.principals * args.drift)))
    stack.env["AKERU_DRIFT_MODE"] = "report"  # the periodic task's scans only report, like the serial ones
    stack.start_workers(count=args.accounts, concurrency=1)
    for i in range(args.rounds):
        stack.log(f"round {i + 1}: serial")
        out["serial"].append(serial_scan())
        stack.log(f"  {out['serial'][-1][0]:.2f}s")
        stack.log(f"round {i + 1}: parallel ({args.accounts} workers)")
        out["parallel"].append(parallel_scan(stack, accounts))
        stack.log(f"  {out['parallel'][-1][0]:.2f}s, runs overlapped: {out['parallel'][-1][2]}")
    return out


def report(out, args):
    accounts = out["accounts"]
    print()
    print(f"{len(accounts)} accounts x {args.principals} principals; per account "
          + ", ".join(f"{a.account_id}: {len(out['injected'][a.account_id])} drifted" for a in accounts) + ".")
    header = f"{'scan':<40} {'wall s':>8} " + " ".join(f"{a.account_id:>14}" for a in accounts)
    print("Per account: seconds of its own scan / IAM calls / drifted found")
    print(header)
    print("-" * len(header))
    for kind in ("serial", "parallel"):
        for i, result in enumerate(out[kind], start=1):
            seconds, runs = result[0], {r.account.account_id: r for r in result[1]}
            cells = " ".join(f"{runs[a.account_id].seconds:>5.2f}/{runs[a.account_id].iam_calls:>2}/"
                             f"{runs[a.account_id].drifted:>3}".rjust(14) for a in accounts)
            label = "one after another (this process)" if kind == "serial" else f"in parallel ({len(accounts)} workers)"
            print(f"{label + f', round {i}':<40} {seconds:>8.2f} {cells}")
    best_serial = min(s for s, _ in out["serial"])
    best_parallel = min(p[0] for p in out["parallel"])
    print()
    print(f"serial / parallel wall time (best of {args.rounds} each): {best_serial:.2f}s / {best_parallel:.2f}s "
          f"= {best_serial / best_parallel:.2f}x")
    calls = Counter()
    for run in out["serial"][0][1]:
        calls[run.account.account_id] = run.iam_calls
    print("Every scan found exactly the injected drift: " + ("yes" if all(
        run.drifted == len(out["injected"][run.account.account_id]) for kind in ("serial", "parallel")
        for result in out[kind] for run in result[1]) else "NO"))
    print("IAM calls per account per scan: " + ", ".join(f"{a} {n}" for a, n in calls.items())
          + " (one GetAccountAuthorizationDetails snapshot each; moto answers it in one page)")
    items = args.principals * 2 + 2  # about a role or user and a policy per principal (+ groups for users)
    print(f"  Real IAM pages it: ~{items}+ items per account here, so ~{ceil(items / 1000)}+ pages at MaxItems=1000 "
          "(each account's pages against its own rate limits).")
    print("  Drift found per account matches what was injected: " + ", ".join(
        f"{run.account.account_id} {'yes' if run.drifted == len(out['injected'][run.account.account_id]) else 'NO'}"
        for run in out["serial"][0][1]))
    print(f"  Parallel runs overlapped in time: {', '.join(str(p[2]) for p in out['parallel'])}. This machine and one "
          "moto_server bound the speed-up (see the header: cores).")


if __name__ == "__main__":
    main()
