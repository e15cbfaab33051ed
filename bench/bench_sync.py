"""Sync cost: Akeru against the way akeru-cloud-access 0.0.2 deployed, on one moto_server.

    .venv/bin/python bench/bench_sync.py --roles 1000      # full run
    .venv/bin/python bench/bench_sync.py --roles 50        # quick run

Measured, in one run, against a fresh moto_server this script starts on a free 127.0.0.1 port:

* one principal, in this process (``akeru.reconcile.principal.sync``), averaged over ``--runs`` runs:
  - new role;
  - no-op, generation already applied and template unchanged (``principal.sync(pk)``);
  - no-op re-save: generation bumped, nothing else changed (full observe, no write);
  - forced sync (``principal.sync(pk, force=True)``);
  - changed template (a new template version uploaded before each run).
* ``--roles`` new roles through real Celery workers (``--workers`` processes x ``--concurrency``,
  a Redis-protocol server), enqueued with ``akeru.services.request_sync``; timed until every row
  is ``synced`` (the database is polled). Then the same roles re-saved unchanged (and, with
  ``--with-redelivered``, the same tasks redelivered with the generation already applied).
* the 0.0.2 way, written here as it worked: a synchronous loop per role — unconditional S3 GET of
  the template, get_role → create_role, get_policy → create_policy, else list_policy_versions
  (delete the oldest at 5) + create_policy_version(SetAsDefault) on every deploy, attach_role_policy.
* how long ``clients.iam()`` / ``clients.s3()`` take when first built in a thread, and after; and
  moto_server's CPU per request in the bulk phases (from /proc, see bench/_stack.py ServerCalls).

Calls: Akeru's own counter (``akeru.aws.clients.calls``) in this process; for the workers (other
processes) moto_server's request recorder, i.e. counted where they land (see bench/_stack.py).
Get*/List*/Head* are reads, every other IAM/S3 operation a write; STS AssumeRole is listed apart.
Figures, not tests: nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _stack import (  # noqa: E402,I001
    ACCOUNT_ID, BUCKET, PREFIX, REMOTE_ACCESS_ROLE, Stopwatch, bench_main, check_counts, fmt_ops, split_calls,
)
from devtools.procs import wait_for  # noqa: E402

TEMPLATE = "template-developer"  # the example template every bulk role uses
BENCH_TEMPLATE = "template-bench"  # the template whose versions the "changed template" runs upload


def bench_document(revision):
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "ReadInventory", "Effect": "Allow", "Action": ["ec2:Describe*", "s3:ListAllMyBuckets"],
             "Resource": "*"},
            {"Sid": "OwnBucket", "Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
             "Resource": f"arn:${{partition}}:s3:::${{account_id}}-${{name}}-r{revision}/*"},
        ],
    }


# --- 0.0.2, as it deployed -----------------------------------------------------------------


class Legacy:
    """0.0.2's deploy: synchronous, get-or-create, a new policy version on every deploy.

    Generous to 0.0.2: one IAM client (REMOTE_ACCESS_ROLE assumed once per pass) and one S3
    client are reused for a whole pass.
    """

    def __init__(self, stack):
        import boto3

        from akeru.domain import policy

        self.render = policy.render
        self.calls = Counter()
        session = boto3.session.Session()
        session.events.register("before-call", self._count)
        self.s3 = session.client("s3")
        sts = session.client("sts")
        creds = sts.assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT_ID}:role/{REMOTE_ACCESS_ROLE}",
                                RoleSessionName="akeru-0.0.2")["Credentials"]
        remote = boto3.session.Session(aws_access_key_id=creds["AccessKeyId"],
                                       aws_secret_access_key=creds["SecretAccessKey"],
                                       aws_session_token=creds["SessionToken"])
        remote.events.register("before-call", self._count)
        self.iam = remote.client("iam")
        self.trust = json.dumps(json.loads(stack.env["AKERU_DEFAULT_TRUST_POLICY"]))

    def _count(self, event_name=None, model=None, **_):
        if model is not None:
            self.calls[f"{event_name.split('.')[1]}.{model.name}"] += 1

    def deploy(self, name, template):
        body = self.s3.get_object(Bucket=BUCKET, Key=f"{PREFIX}/{template}.json")["Body"].read().decode()
        document = json.dumps(json.loads(self.render(body, {"account_id": ACCOUNT_ID, "name": name, "partition": "aws"})))
        iam = self.iam
        try:
            iam.get_role(RoleName=name)
        except iam.exceptions.NoSuchEntityException:
            iam.create_role(RoleName=name, AssumeRolePolicyDocument=self.trust, MaxSessionDuration=3600)
        arn = f"arn:aws:iam::{ACCOUNT_ID}:policy/{name}"
        try:
            iam.get_policy(PolicyArn=arn)
        except iam.exceptions.NoSuchEntityException:
            iam.create_policy(PolicyName=name, PolicyDocument=document)
        else:
            versions = iam.list_policy_versions(PolicyArn=arn)["Versions"]
            if len(versions) >= 5:
                oldest = min((v for v in versions if not v["IsDefaultVersion"]), key=lambda v: v["CreateDate"])
                iam.delete_policy_version(PolicyArn=arn, VersionId=oldest["VersionId"])
            iam.create_policy_version(PolicyArn=arn, PolicyDocument=document, SetAsDefault=True)
        iam.attach_role_policy(RoleName=name, PolicyArn=arn)


# --- measuring ------------------------------------------------------------------------------


class Result:
    def __init__(self, scenario, runs, seconds, calls, per_run=True, note="", moto_cpu=None):
        self.scenario, self.runs, self.seconds, self.calls, self.per_run, self.note, self.moto_cpu = (
            scenario, runs, seconds, calls, per_run, note, moto_cpu)

    @property
    def reads(self):
        return split_calls(self.calls)[0] / (self.runs if self.per_run else 1)

    @property
    def writes(self):
        return split_calls(self.calls)[1] / (self.runs if self.per_run else 1)

    @property
    def value(self):
        """Mean seconds per run (per-principal rows) or total seconds (bulk rows)."""
        return self.seconds / self.runs if self.per_run else self.seconds


def measure(stack, counter, act, runs, prepare=None):
    """Time ``act(i)`` over ``runs`` runs (``prepare(i)`` before each, untimed).

    Returns (total seconds, calls counted by ``counter``, calls seen by moto_server).
    """
    counted, seen, total = Counter(), Counter(), 0.0
    for i in range(runs):
        if prepare:
            prepare(i)
        before, mark = Counter(counter), stack.server_calls.mark()
        started = time.perf_counter()
        act(i)
        total += time.perf_counter() - started
        counted += Counter({k: v - before.get(k, 0) for k, v in counter.items() if v - before.get(k, 0)})
        seen += stack.server_calls.since(mark)
    return total, counted, seen


def wait_until_synced(stack, prefix, count, timeout, generation):
    """Poll the database until every ``prefix*`` row has applied ``generation`` or failed."""
    from akeru.models import AWSRole, Status

    rows = AWSRole.objects.filter(name__startswith=prefix)
    deadline = time.monotonic() + timeout
    last_print = 0.0
    while True:
        done = rows.filter(status=Status.SYNCED, observed_generation__gte=generation).count()
        failed = rows.filter(status=Status.FAILED).count()
        if done + failed >= count:
            return done, failed
        now = time.monotonic()
        if now > deadline:
            raise TimeoutError(f"{done}/{count} synced, {failed} failed after {timeout}s\n{stack.worker_log_tail()}")
        if now - last_print > 10:
            stack.log(f"  … {done}/{count} synced, {failed} failed")
            last_print = now
        for proc in stack.workers:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} died:\n{proc.tail(40)}")
        time.sleep(0.2)


def failures(prefix, limit=5):
    """'name: last_error' of failed rows (and of runs that failed or were retried) under ``prefix``."""
    from akeru.models import AWSRole, Status, SyncRun

    rows = [f"{n}: {e}" for n, e in AWSRole.objects.filter(name__startswith=prefix, status=Status.FAILED)
            .values_list("name", "last_error")[:limit]]
    runs = [f"{n} (gen {g}, {o}): {e}" for n, g, o, e in SyncRun.objects.filter(principal_name__startswith=prefix)
            .exclude(error="").values_list("principal_name", "generation", "outcome", "error")[:limit]]
    return rows + runs


def task_results():
    from django_celery_results.models import TaskResult

    return TaskResult.objects.filter(task_name="akeru.sync_principal").count()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--roles", type=int, default=1000, help="bulk role count (default 1000)")
    parser.add_argument("--runs", type=int, default=20, help="runs per single-principal scenario (default 20)")
    parser.add_argument("--workers", type=int, default=2, help="Celery worker processes (default 2)")
    parser.add_argument("--concurrency", type=int, default=2, help="pool size of each worker (default 2)")
    parser.add_argument("--with-redelivered", action="store_true",
                        help="also time --roles tasks redelivered with their generation already applied")
    bench_main("bench_sync", parser, run, report)


def run(stack, args):
    from django.db.models import F

    from akeru import services
    from akeru.reconcile import catalog, principal
    from akeru.aws import clients
    from akeru.models import AWSRole, Status, SyncRun
    from akeru.tasks import sync_principal

    out = {"clients": {}}
    # -- what a sync pays to get its clients (kept per thread since b9d8ee2) --------------------------
    clients.reset()  # nothing built yet in this thread
    for label, make in (("clients.iam()", clients.iam), ("clients.s3()", clients.s3)):
        with Stopwatch() as build:
            make()  # builds it (clients.iam() also assumes REMOTE_ACCESS_ROLE)
        with Stopwatch() as reuse:
            for _ in range(100):
                make()
        out["clients"][label] = (build.seconds, reuse.seconds / 100)

    calls = clients.calls
    stack.put_template(BENCH_TEMPLATE, bench_document(0))
    refresh = catalog.refresh_catalog()
    assert refresh.ok, refresh.error
    legacy = Legacy(stack)

    # -- one principal, in this process ----------------------------------------------------------
    runs = args.runs
    stack.log(f"single principal scenarios, {runs} runs each")
    fresh = {}

    def create_row(i):
        fresh[i] = AWSRole.objects.create(name=f"akeru-new-{i}", policy=TEMPLATE, generation=1).pk

    total, counted, seen = measure(stack, calls, lambda i: principal.sync(fresh[i]), runs, prepare=create_row)
    check_counts("new role", counted, seen)
    akeru = {"new": Result("new role", runs, total, counted)}
    assert AWSRole.objects.filter(name__startswith="akeru-new-", status=Status.SYNCED).count() == runs

    role = AWSRole.objects.create(name="akeru-one", policy=BENCH_TEMPLATE, generation=1)
    principal.sync(role.pk)
    principal.sync(role.pk)  # warm
    role.refresh_from_db()
    assert role.status == Status.SYNCED, role.last_error
    pk = role.pk

    total, counted, seen = measure(stack, calls, lambda i: principal.sync(pk), runs)
    check_counts("no-op", counted, seen)
    akeru["noop"] = Result("no-op: generation applied, template unchanged", runs, total, counted)

    def resave(i):
        AWSRole.objects.filter(pk=pk).update(generation=F("generation") + 1, status=Status.PENDING)

    total, counted, seen = measure(stack, calls, lambda i: principal.sync(pk), runs, prepare=resave)
    check_counts("re-save", counted, seen)
    akeru["resave"] = Result("no-op re-save (generation bumped)", runs, total, counted)

    total, counted, seen = measure(stack, calls, lambda i: principal.sync(pk, force=True), runs)
    check_counts("forced", counted, seen)
    akeru["forced"] = Result("forced sync, nothing changed", runs, total, counted)

    total, counted, seen = measure(stack, calls, lambda i: principal.sync(pk), runs,
                                   prepare=lambda i: stack.put_template(BENCH_TEMPLATE, bench_document(i + 1)))
    check_counts("changed template", counted, seen)
    akeru["changed"] = Result("changed template", runs, total, counted)
    role.refresh_from_db()
    assert role.status == Status.SYNCED and role.observed_generation == role.generation, role.last_error
    versions = legacy.iam.list_policy_versions(PolicyArn=f"arn:aws:iam::{ACCOUNT_ID}:policy/akeru-one")["Versions"]
    out["akeru versions"] = len(versions)

    # The same single-principal work, 0.0.2's way.
    stack.put_template(BENCH_TEMPLATE, bench_document(0))
    total, counted, seen = measure(stack, legacy.calls, lambda i: legacy.deploy(f"legacy-new-{i}", TEMPLATE), runs)
    check_counts("0.0.2 new role", counted, seen)
    old = {"new": Result("new role", runs, total, counted)}
    legacy.deploy("legacy-one", BENCH_TEMPLATE)
    total, counted, seen = measure(stack, legacy.calls, lambda i: legacy.deploy("legacy-one", BENCH_TEMPLATE), runs)
    check_counts("0.0.2 redeploy", counted, seen)
    old["noop"] = old["resave"] = old["forced"] = Result("redeploy, nothing changed", runs, total, counted)
    total, counted, seen = measure(stack, legacy.calls, lambda i: legacy.deploy("legacy-one", BENCH_TEMPLATE), runs,
                                   prepare=lambda i: stack.put_template(BENCH_TEMPLATE, bench_document(100 + i)))
    old["changed"] = Result("changed template", runs, total, counted)

    # -- bulk: new roles through real Celery workers -----------------------------------------------
    n = args.roles
    stack.start_workers(args.workers, args.concurrency)
    timeout = max(300, n * 0.6)
    AWSRole.objects.bulk_create([AWSRole(name=f"akeru-{i:05d}", policy=TEMPLATE) for i in range(n)])
    pks = list(AWSRole.objects.filter(name__startswith="akeru-0").values_list("pk", flat=True))
    assert len(pks) == n
    stack.log(f"{n} new roles through the workers")
    mark = stack.server_calls.mark()
    with Stopwatch() as sw:
        services.request_sync(pks, trigger="bench")
        enqueued = time.perf_counter() - sw.started
        done, failed = wait_until_synced(stack, "akeru-0", n, timeout, generation=1)
    seen = stack.server_calls.since(mark)
    retries = SyncRun.objects.filter(principal_name__startswith="akeru-0", outcome=SyncRun.Outcome.RETRYING).count()
    akeru["bulk_new"] = Result(f"{n} new roles", 1, sw.seconds, seen, per_run=False,
                               moto_cpu=stack.server_calls.cpu_since(mark),
                               note=f"{done} synced, {failed} failed, {retries} retried; enqueue took {enqueued:.2f}s"
                               + "".join(f"\n           ! {f}" for f in failures("akeru-0")))
    stack.log(f"  {akeru['bulk_new'].note}; {sw.seconds:.1f}s")

    stack.log(f"{n} unchanged re-saves through the workers")
    mark = stack.server_calls.mark()
    with Stopwatch() as sw:
        services.request_sync(pks, trigger="bench re-save")
        done, failed = wait_until_synced(stack, "akeru-0", n, timeout, generation=2)
    seen = stack.server_calls.since(mark)
    applied = SyncRun.objects.filter(principal_name__startswith="akeru-0", generation=2,
                                     outcome=SyncRun.Outcome.APPLIED)
    changes = [f"{r.principal_name}: {r.summary()}" for r in applied[:5]]
    akeru["bulk_resave"] = Result(f"{n} unchanged re-saves", 1, sw.seconds, seen, per_run=False,
                                  moto_cpu=stack.server_calls.cpu_since(mark),
                                  note=f"{done} synced, {failed} failed, {applied.count()} runs applied a change"
                                  + "".join(f"\n           ! {c}" for c in changes))
    stack.log(f"  {akeru['bulk_resave'].note}; {sw.seconds:.1f}s")

    if args.with_redelivered:
        stack.log(f"{n} redelivered tasks, generation already applied")
        before = task_results()
        mark = stack.server_calls.mark()
        with Stopwatch() as sw:
            for pk_ in pks:
                # Akeru's tasks store no results; the benchmark asks for them to know when all ran.
                sync_principal.apply_async(args=(pk_,), ignore_result=False)
            wait_for(lambda: task_results() - before >= n, timeout, 0.2, "redelivered tasks to finish")
        seen = stack.server_calls.since(mark)
        akeru["bulk_noop"] = Result(f"{n} redelivered, already applied", 1, sw.seconds, seen, per_run=False,
                                    moto_cpu=stack.server_calls.cpu_since(mark))
        stack.log(f"  {sw.seconds:.1f}s")
    stack.stop_workers()

    # -- bulk: 0.0.2's synchronous loop --------------------------------------------------------
    stack.log(f"{n} new roles, 0.0.2's loop")
    legacy = Legacy(stack)  # a new pass: assume the role again
    mark = stack.server_calls.mark()
    with Stopwatch() as sw:
        for i in range(n):
            legacy.deploy(f"legacy-{i:05d}", TEMPLATE)
    old["bulk_new"] = Result(f"{n} new roles", 1, sw.seconds, stack.server_calls.since(mark), per_run=False,
                             moto_cpu=stack.server_calls.cpu_since(mark))
    stack.log(f"  {sw.seconds:.1f}s")
    stack.log(f"{n} unchanged redeploys, 0.0.2's loop")
    legacy = Legacy(stack)
    mark = stack.server_calls.mark()
    with Stopwatch() as sw:
        for i in range(n):
            legacy.deploy(f"legacy-{i:05d}", TEMPLATE)
    old["bulk_resave"] = old["bulk_noop"] = Result(f"{n} unchanged redeploys", 1, sw.seconds,
                                                   stack.server_calls.since(mark), per_run=False,
                                                   moto_cpu=stack.server_calls.cpu_since(mark))
    stack.log(f"  {sw.seconds:.1f}s")
    out["legacy versions"] = len(legacy.iam.list_policy_versions(
        PolicyArn=f"arn:aws:iam::{ACCOUNT_ID}:policy/legacy-00000")["Versions"])
    out["akeru bulk versions"] = len(legacy.iam.list_policy_versions(
        PolicyArn=f"arn:aws:iam::{ACCOUNT_ID}:policy/akeru-00000")["Versions"])
    return akeru, old, out


ROWS = (
    ("new", "new role (one, in-process)"),
    ("noop", "no-op sync: generation applied, template same"),
    ("resave", "no-op re-save: generation bumped"),
    ("forced", "forced sync, nothing changed"),
    ("changed", "changed template"),
    ("bulk_new", "{n} new roles (Akeru: Celery workers)"),
    ("bulk_resave", "{n} unchanged re-saves"),
    ("bulk_noop", "{n} redelivered tasks, already applied"),
)


def report(results, args):
    akeru, old, out = results
    n = args.roles

    def cell(r):
        unit = f"{r.value * 1000:8.1f} ms" if r.per_run else f"{r.value:8.2f} s "
        return f"{r.reads:6.1f} /{r.writes:5.1f} {unit}"

    print()
    print(f"Per-principal rows: mean of {args.runs} runs, in this process. Bulk rows: totals; Akeru through "
          f"{args.workers} worker processes x concurrency {args.concurrency}, 0.0.2 a synchronous loop.")
    print("Calls are IAM+S3 'reads / writes' (Get/List/Head = read); STS is listed below the table.")
    print("Ratio = 0.0.2 / Akeru (calls, time); above 1 means Akeru makes fewer calls / is faster.")
    print()
    header = f"{'scenario':<48} {'Akeru r / w   time':>26}   {'0.0.2 r / w   time':>26}   {'calls x':>7} {'time x':>7}"
    print(header)
    print("-" * len(header))
    for key, label in ROWS:
        if key not in akeru:
            continue
        a, b = akeru[key], old[key]
        a_calls, b_calls = a.reads + a.writes, b.reads + b.writes
        calls_ratio = f"{b_calls / a_calls:7.1f}" if a_calls else "    inf"
        print(f"{label.format(n=n):<48} {cell(a):>26}   {cell(b):>26}   {calls_ratio} {b.value / a.value:7.1f}")
    print()
    print("Operations per scenario (totals over all runs; Akeru in-process rows: its own counter, "
          "bulk rows: moto_server's request record):")
    for key, label in ROWS:
        if key not in akeru:
            continue
        print(f"  {label.format(n=n)}")
        print(f"    Akeru: {fmt_ops(akeru[key].calls)}")
        if akeru[key].note:
            print(f"           {akeru[key].note}")
        print(f"    0.0.2: {fmt_ops(old[key].calls)}")
    print()
    print(f"Policy versions after the runs: Akeru single role {out['akeru versions']}, Akeru bulk role "
          f"{out['akeru bulk versions']}, 0.0.2 bulk role {out['legacy versions']} (IAM keeps at most 5).")
    broken = sum(r.calls.get("unparsed.lines", 0) for part in (akeru, old) for r in part.values())
    if broken:
        print(f"! {broken} lines of moto's request record could not be parsed (counts may be short by that much)")
    print("moto_server's CPU per request it served (bulk rows; all requests incl. STS, recorder included):")
    for key, label in ROWS:
        if key in akeru and akeru[key].moto_cpu is not None:
            cells = []
            for who, r in (("Akeru", akeru[key]), ("0.0.2", old[key])):
                requests = sum(n_ for k, n_ in r.calls.items() if k.split(".")[0] in ("iam", "s3", "sts"))
                cells.append(f"{who} {r.moto_cpu:.1f} s CPU / {requests} = {r.moto_cpu / requests * 1000:.1f} ms, "
                             f"{r.moto_cpu / r.seconds:.0%} of the wall time")
            print(f"    {label.format(n=n):<40} " + "; ".join(cells))
    print("Akeru's clients, first call (builds it) / mean of 100 later calls in the same thread: " + ", ".join(
        f"{label} {out['clients'][label][0] * 1000:.0f} ms / {out['clients'][label][1] * 1e6:.1f} us"
        for label in ("clients.iam()", "clients.s3()")))
    goal = akeru["noop"]
    print(f"Goal 'no-op sync: <=3 read calls, 0 writes': generation-applied no-op {goal.reads:.0f} read / "
          f"{goal.writes:.0f} write; re-save {akeru['resave'].reads:.0f} read / {akeru['resave'].writes:.0f} write.")


if __name__ == "__main__":
    main()
