"""Drift scan: one account snapshot (Akeru) against observing every principal one by one.

    .venv/bin/python bench/bench_drift.py --principals 1000     # full run
    .venv/bin/python bench/bench_drift.py --principals 100      # quick run

Against a fresh moto_server this script starts on a free 127.0.0.1 port:

1. Set-up (not measured): ``--principals`` managed principals of mixed kinds (plain roles, EC2
   roles, Lambda roles, IAM users) are built in IAM with Akeru's own planner and executor — the
   plan a first sync makes for a name IAM does not hold — and their rows are written as a sync
   records them (status synced, observed_generation = generation, applied_name/user/ec2,
   template_etag = the catalog's ETag, arn). No observe calls, so set-up takes seconds, and IAM
   holds exactly what Akeru would have created.
2. About ``--drift`` (3 %) of them are then changed behind Akeru's back: a foreign managed policy
   attached, an inline policy added, the trust policy changed, a user removed from its group.
3. Timed, in this process, in one run:
   - ``akeru.reconcile.reconcile_all(mode="report")``: the whole-account snapshot
     (GetAccountAuthorizationDetails, paginated) + plan() per principal + recording drift;
   - the same principals one by one: ``akeru.reconcile.principal.observe_desired`` (what a sync's observe
     costs: get_role / list_attached_role_policies / list_role_policies / list_policy_versions /
     get_policy_version, get_instance_profile for EC2 roles only, or the user and group
     equivalents) + ``planner.plan``, first with a cold policy-version cache, then warm;
   - the snapshot scan once more.
   IAM calls are counted with ``akeru.aws.clients.calls`` (and checked against moto_server's request
   record); each scan's set of drifted principals is compared with the set that was drifted, and
   moto_server's CPU during each scan is read from /proc.

Note: moto ignores GetAccountAuthorizationDetails paging (MaxItems) and answers in one page; the
script also prints how many pages real IAM would need for this account. Figures, not tests.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from math import ceil
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _stack import Stopwatch, bench_main, check_counts, fmt_ops  # noqa: E402

# kind -> (template, share of principals)
KINDS = (
    ("role", "template-developer", 0.25),
    ("role", "template-readonly", 0.15),
    ("ec2", "template-ec2-app", 0.2),
    ("lambda", "template-lambda-basic", 0.2),
    ("user", "template-readonly", 0.2),
)
FOREIGN = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
OTHER_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::210987654321:root"}, "Action": "sts:AssumeRole"}],
}


def build_principals(stack, count, threads):
    """Create ``count`` principals in IAM (Akeru's plan for a new name) and their synced rows."""
    from django.utils import timezone as dj_timezone

    from akeru.domain import planner, types
    from akeru.reconcile import principal
    from akeru.aws import clients
    from akeru.aws.execute import execute
    from akeru.models import AWSRole, PolicyTemplate, Status

    templates = {t.name: t for t in PolicyTemplate.objects.all()}
    rows = []
    weights = [share for *_, share in KINDS]
    picks = random.Random(7).choices(range(len(KINDS)), weights=weights, k=count)
    for i, k in enumerate(picks):
        kind, template, _ = KINDS[k]
        rows.append(AWSRole(name=f"p{i:04d}-{kind}", policy=template, user=kind == "user", ec2=kind == "ec2",
                            aws_lambda=kind == "lambda", generation=1))
    iam = clients.iam()

    def create(row):
        template = templates[row.policy]
        desired = principal.build_desired(row, template.body)
        execute(iam, planner.plan(desired, types.ObservedPrincipal(name=row.name, is_user=row.user)))
        row.status, row.observed_generation = Status.SYNCED, row.generation
        row.applied_name, row.applied_user, row.applied_ec2 = row.name, row.user, desired.kind is types.Kind.EC2
        row.template_etag, row.arn, row.last_synced_at = template.etag, desired.arn, dj_timezone.now()
        return row

    with ThreadPoolExecutor(threads) as pool:
        rows = list(pool.map(create, rows))
    AWSRole.objects.bulk_create(rows)
    return rows


def inject_drift(stack, rows, count):
    """Change ``count`` principals behind Akeru's back; returns {name: what was done}."""
    iam = stack.boto("iam")
    foreign = iam.create_policy(PolicyName="bench-foreign-admin", PolicyDocument=json.dumps(FOREIGN))["Policy"]["Arn"]
    rng = random.Random(11)
    roles = [r for r in rows if not r.user]
    users = [r for r in rows if r.user]
    rng.shuffle(roles)
    rng.shuffle(users)
    drifted = {}
    changes = ("foreign policy", "inline policy", "trust policy", "group membership")
    for j in range(count):
        change = changes[j % len(changes)]
        if change == "trust policy" or (change != "group membership" and j % 8 < 4):
            row = roles.pop()
        else:
            row = users.pop()
        name = row.name
        if change == "foreign policy":
            if row.user:
                iam.attach_user_policy(UserName=name, PolicyArn=foreign)
            else:
                iam.attach_role_policy(RoleName=name, PolicyArn=foreign)
        elif change == "inline policy":
            if row.user:
                iam.put_user_policy(UserName=name, PolicyName="hand-made", PolicyDocument=json.dumps(FOREIGN))
            else:
                iam.put_role_policy(RoleName=name, PolicyName="hand-made", PolicyDocument=json.dumps(FOREIGN))
        elif change == "trust policy":
            iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(OTHER_TRUST))
        else:
            iam.remove_user_from_group(GroupName=name, UserName=name)
        drifted[name] = f"{change} ({'user' if row.user else 'role'})"
    return drifted


def iam_counter():
    from akeru.aws import clients

    return Counter({k: v for k, v in clients.calls.items() if k.startswith("iam.")})


def snapshot_scan(stack):
    """reconcile_all(mode="report"): returns (seconds, calls, drifted names, run, snapshot seconds,
    entity counts, moto_server CPU seconds). ``observe.snapshot`` is wrapped (timed, not changed)
    for the duration."""
    from akeru import reconcile
    from akeru.aws import observe
    from akeru.models import AWSRole, Status

    original, timed = observe.snapshot, {}

    def snapshot(iam):
        started = time.perf_counter()
        snap = original(iam)
        timed["seconds"] = time.perf_counter() - started
        timed["entities"] = {k: len(snap[k]) for k in ("roles", "users", "groups", "policies", "instance_profiles")}
        return snap

    before, mark = iam_counter(), stack.server_calls.mark()
    observe.snapshot = snapshot
    try:
        with Stopwatch() as sw:
            run = reconcile.reconcile_all(mode="report")
    finally:
        observe.snapshot = original
    calls = iam_counter() - before
    check_counts("snapshot scan", calls, stack.server_calls.since(mark), services=("iam",))
    if not run.ok:
        raise RuntimeError(run.error)
    drifted = set(AWSRole.objects.filter(status=Status.DRIFTED).values_list("name", flat=True))
    return sw.seconds, calls, drifted, run, timed["seconds"], timed["entities"], stack.server_calls.cpu_since(mark)


def scan_rows():
    """The rows reconcile_all scans (same filters), with their template bodies."""
    from akeru.models import AWSRole, PolicyTemplate, Status

    templates = {t.name: t for t in PolicyTemplate.objects.all()}
    rows = []
    for role in AWSRole.objects.exclude(status__in=[Status.DELETING, Status.PENDING, Status.SYNCING]):
        if role.observed_generation < role.generation or role.applied_name != role.name:
            continue
        template = templates.get(role.policy)
        if template is not None and template.usable:
            rows.append((role, template.body))
    return rows


def one_by_one_scan(stack, cold):
    """observe_desired + plan for every principal: returns (seconds, calls, drifted names, moto_server
    CPU seconds)."""
    from akeru.domain import planner
    from akeru.reconcile import principal
    from akeru.aws import clients, observe

    if cold:
        observe._version_documents.clear()
    before, mark = iam_counter(), stack.server_calls.mark()
    drifted = set()
    with Stopwatch() as sw:
        iam = clients.iam()
        for role, body in scan_rows():
            desired = principal.build_desired(role, body)
            # The instance profile is read as principal.sync decides: for an EC2 role, one that was, or a new name.
            observed = principal.observe_desired(iam, role, desired)
            if planner.plan(desired, observed):
                drifted.add(role.name)
    calls = iam_counter() - before
    check_counts("one-by-one scan", calls, stack.server_calls.since(mark), services=("iam",))
    return sw.seconds, calls, drifted, stack.server_calls.cpu_since(mark)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--principals", type=int, default=1000, help="managed principals (default 1000)")
    parser.add_argument("--drift", type=float, default=0.03, help="share of principals drifted (default 0.03)")
    parser.add_argument("--threads", type=int, default=4, help="threads building IAM during set-up (default 4)")
    bench_main("bench_drift", parser, run, report)


def run(stack, args):
    from akeru.reconcile import catalog
    from akeru.aws import clients

    refresh = catalog.refresh_catalog()
    assert refresh.ok, refresh.error
    clients.iam()  # assume REMOTE_ACCESS_ROLE once, outside every measurement

    stack.log(f"building {args.principals} principals in IAM (set-up, not measured)")
    with Stopwatch() as sw:
        rows = build_principals(stack, args.principals, args.threads)
    kinds = Counter("user" if r.user else "EC2 role" if r.ec2 else "Lambda role" if r.aws_lambda else "role" for r in rows)
    stack.log(f"  {len(rows)} principals in {sw.seconds:.1f}s: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))
    drift_count = max(4, round(args.principals * args.drift))
    injected = inject_drift(stack, rows, drift_count)
    stack.log(f"drifted {len(injected)}: " + ", ".join(f"{n} {c}" for c, n in sorted(Counter(
        v.split(" (")[0] for v in injected.values()).items())))

    out = {"kinds": kinds, "injected": injected}
    stack.log("scan 1: reconcile_all(mode='report')")
    out["akeru1"] = snapshot_scan(stack)
    stack.log(f"  {out['akeru1'][0]:.2f}s, {out['akeru1'][3].summary()}")
    stack.log("one by one, cold policy-version cache")
    out["cold"] = one_by_one_scan(stack, cold=True)
    stack.log(f"  {out['cold'][0]:.2f}s")
    stack.log("one by one, warm policy-version cache")
    out["warm"] = one_by_one_scan(stack, cold=False)
    stack.log(f"  {out['warm'][0]:.2f}s")
    stack.log("scan 2: reconcile_all(mode='report')")
    out["akeru2"] = snapshot_scan(stack)
    stack.log(f"  {out['akeru2'][0]:.2f}s, {out['akeru2'][3].summary()}")
    return out


def report(out, args):
    injected = set(out["injected"])
    n = args.principals
    print()
    print(f"{n} managed principals (" + ", ".join(f"{c} {k}" for k, c in sorted(out["kinds"].items()))
          + f"), {len(injected)} drifted behind Akeru's back.")
    print("IAM then held: " + ", ".join(f"{c} {k}" for k, c in out["akeru1"][5].items())
          + " (roles include REMOTE_ACCESS_ROLE; policies include the foreign one)")
    print("time/best: the row's seconds divided by the faster of the two snapshot scans.")
    header = f"{'scan':<52} {'IAM calls':>9} {'seconds':>8} {'drifted':>8} {'same set':>9} {'time/best':>9}"
    print(header)
    print("-" * len(header))
    best = min(out["akeru1"][0], out["akeru2"][0])
    for key, label in (("akeru1", "Akeru reconcile_all(report), 1st"), ("akeru2", "Akeru reconcile_all(report), 2nd"),
                       ("cold", "one by one: observe_desired + plan, cold cache"),
                       ("warm", "one by one: observe_desired + plan, warm cache")):
        seconds, calls, drifted = out[key][:3]
        same = "yes" if drifted == injected else f"NO ({len(drifted ^ injected)} differ)"
        ratio = seconds / best
        print(f"{label:<52} {sum(calls.values()):>9} {seconds:>8.2f} {len(drifted):>8} {same:>9} {ratio:>9.1f}")
    print()
    gaad = out["akeru1"][1].get("iam.GetAccountAuthorizationDetails", 0)
    others = sum(out["akeru1"][1].values()) - gaad
    print(f"Akeru's read part: {gaad} GetAccountAuthorizationDetails page(s), {others} other IAM call(s) "
          f"({fmt_ops(out['akeru1'][1])}).")
    for key, label in (("akeru1", "1st"), ("akeru2", "2nd")):
        total, snap_seconds = out[key][0], out[key][4]
        print(f"  {label} scan: snapshot (GAAD call + parsing) {snap_seconds:.2f}s, the rest of reconcile_all "
              f"(plan per principal, drift events, orphans) {total - snap_seconds:.2f}s.")
    items = sum(out["akeru1"][5][k] for k in ("roles", "users", "groups", "policies"))
    pages = ceil(items / 1000)
    print(f"  moto answers GAAD in one page whatever its size. Real IAM pages it: ~{items} items here, so "
          f"at least ~{pages} pages at the MaxItems=1000 Akeru asks for (~{ceil(items / 100)} at IAM's default "
          f"of 100); IAM may also return fewer items than asked.")
    for key, label in (("cold", "cold"), ("warm", "warm")):
        calls = out[key][1]
        print(f"One by one ({label}): {sum(calls.values()) / n:.1f} IAM calls per principal: {fmt_ops(calls)}")
    print("moto_server's CPU (recorder included): " + "; ".join(
        f"{label} {out[key][-1]:.2f} s = {out[key][-1] / out[key][0]:.0%} of the wall time"
        + (f", {out[key][-1] / sum(out[key][1].values()) * 1000:.1f} ms per call" if key in ("cold", "warm") else "")
        for key, label in (("akeru1", "snapshot scan 1"), ("cold", "one by one cold"), ("warm", "one by one warm"))))
    worst = max(out["akeru1"][0], out["akeru2"][0])
    warm = out["warm"][0]
    calls_ok = sum(out["akeru1"][1].values()) <= 2
    print(f"Goals: read part <=2 IAM calls: {'met' if calls_ok else 'NOT met'} on moto "
          f"({sum(out['akeru1'][1].values())}), {'met' if pages <= 2 else 'NOT met'} on real IAM for this account "
          f"(~{pages} pages); >=20x faster than one by one: "
          f"{warm / worst:.1f}x-{out['cold'][0] / best:.1f}x "
          f"({'met' if warm / worst >= 20 else 'NOT met'} against the warm one-by-one scan).")
    missing = injected - out["akeru1"][2]
    extra = out["akeru1"][2] - injected
    if missing or extra:
        print(f"! snapshot scan missed {sorted(missing)} and flagged {sorted(extra)}")


if __name__ == "__main__":
    main()
