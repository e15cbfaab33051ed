"""The periodic apply of access as code: one commit of a checked-out directory, applied on a schedule.

``apply_directory`` (the beat's ``akeru.apply_code``, every ``AKERU_APPLY_INTERVAL``) reads
``AKERU_APPLY_DIRECTORY``, which is either a directory with a ``COMMIT`` file (a commit id: what a deploy tool
copied there) or a git worktree at a revision (its commit is ``git rev-parse HEAD``, run here; git needs no
network for it). A worktree whose files differ from that commit — a checkout in progress, an edit by hand — is
not one commit: refused. Then:

- the commit and the files (their paths and bytes, one digest) are those of the last successful apply: nothing
  is read or applied, that run's ``checked_at`` moves (the status shows the directory is still watched);
- otherwise ``ascode.apply`` applies them in one transaction, all or nothing, with ``AKERU_APPLY_PRUNE``: files
  that fail validation are refused with every problem (file and line), more deletions than
  ``AKERU_APPLY_MAX_DELETE`` are refused unless forced (a half-written checkout must not prune everything),
  and each refusal is audited ("code refused") and counted; every change is audited with its file and commit.
  Drift — objects edited in the admin since they were applied — is reported on the run and counted
  (``akeru_code_drift_total``); the apply puts the files' values back.

Each run is a ``CodeApplyRun`` row: the admin's index shows the last one, its list every one with its report.
"""

import hashlib
import logging
import os
import re
import subprocess
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from ..domain.ascode import CHANGE, CREATE, DELETE, Problem
from ..metrics.instruments import CODE_APPLIES, CODE_DRIFT
from ..models import CodeApplyRun
from ..settings.accessor import akeru_settings
from . import ascode

log = logging.getLogger(__name__)

COMMIT_ID = re.compile(r"[0-9a-f]{7,64}")
GIT_TIMEOUT = 30  # seconds; rev-parse and status read the local repository only
REPORT_MAX = 20000  # characters of a plan or of the problems kept on a run
Outcome = CodeApplyRun.Outcome


class Unreadable(Exception):
    """The directory, or which single commit it holds, cannot be read: nothing is applied."""


# --- which commit, which files ------------------------------------------------------------------------


def _git(directory, *argv):
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}
    try:
        return subprocess.run(["git", *argv], cwd=directory, capture_output=True, text=True, timeout=GIT_TIMEOUT,
                              env=env, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Unreadable(f"git {argv[0]} in {directory} failed: {exc}") from None


def checkout_commit(directory):
    """The commit ``directory`` holds: its ``COMMIT`` file, or the HEAD of its git worktree (whose files must be
    exactly that commit's)."""
    path = Path(directory)
    if not path.is_dir():
        raise Unreadable(f"{directory} is not a directory")
    if (path / ascode.COMMIT_FILE).is_file():
        try:
            commit = ascode.commit_of(path).lower()
        except (OSError, UnicodeDecodeError) as exc:
            raise Unreadable(f"{path / ascode.COMMIT_FILE} cannot be read: {exc}") from None
        if not COMMIT_ID.fullmatch(commit):
            raise Unreadable(f"{path / ascode.COMMIT_FILE} does not hold a commit id (7 to 64 hexadecimal digits): "
                             f"{commit[:80]!r}")
        return commit
    head = _git(path, "rev-parse", "--verify", "HEAD")
    if head.returncode:
        why = head.stderr.strip().splitlines()[-1] if head.stderr.strip() else "git rev-parse failed"
        raise Unreadable(f"{directory} has no {ascode.COMMIT_FILE} file and is not a git worktree at a commit: {why}")
    commit = head.stdout.strip().lower()
    status = _git(path, "status", "--porcelain", "--untracked-files=all", "--", ".")
    if status.returncode:
        raise Unreadable(f"git status in {directory} failed: {status.stderr.strip()[:300]}")
    differ = [line[3:] for line in status.stdout.splitlines() if line.strip()]
    if differ:
        shown = ", ".join(differ[:5]) + (f" and {len(differ) - 5} more" if len(differ) > 5 else "")
        raise Unreadable(f"the worktree's files differ from its commit {commit[:12]} ({len(differ)} changed or not "
                         f"committed: {shown}): a checkout in progress? Nothing applied.")
    return commit


def files_digest(directory):
    """SHA-256 over the path and bytes of every file the apply reads in ``directory``."""
    digest = hashlib.sha256()
    root = Path(directory)
    for path in ascode.source_files(root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


# --- one run ----------------------------------------------------------------------------------------------


def last_successful(directory):
    return CodeApplyRun.objects.filter(directory=directory, outcome__in=CodeApplyRun.SUCCESSFUL).first()


def apply_directory(directory=None, trigger="schedule", force=False):
    """Apply ``directory`` (by default ``AKERU_APPLY_DIRECTORY``) once, as the module says; returns its
    ``CodeApplyRun`` (the last successful one when nothing changed), or None when no directory is set.
    ``force`` applies even when nothing changed, and more deletions than ``AKERU_APPLY_MAX_DELETE``."""
    directory = str(directory or akeru_settings.AKERU_APPLY_DIRECTORY or "")
    if not directory:
        return None
    run = CodeApplyRun(directory=directory, trigger=trigger, prune=bool(akeru_settings.AKERU_APPLY_PRUNE))
    try:
        run.commit = checkout_commit(directory)
        run.files_digest = files_digest(directory)
    except (Unreadable, OSError) as exc:
        return _unreadable(run, str(exc))
    last = last_successful(directory)
    if not force and last and (last.commit, last.files_digest, last.prune) == (run.commit, run.files_digest,
                                                                                run.prune):
        CodeApplyRun.objects.filter(pk=last.pk).update(checked_at=timezone.now())
        CODE_APPLIES.labels("skipped").inc()
        return last
    try:
        plan = ascode.apply(directory, prune=run.prune, force=force, commit=run.commit)
    except ascode.Invalid as exc:  # audited and counted by the apply; nothing applied
        return _end(run, Outcome(exc.outcome), error=str(exc), report=problems_text(exc.problems))
    run.created, run.changed, run.deleted = (plan.count(op) for op in (CREATE, CHANGE, DELETE))
    run.drifted = len(plan.drifted)
    if run.drifted:
        CODE_DRIFT.inc(run.drifted)
    return _end(run, Outcome.APPLIED if plan.applied else Outcome.UNCHANGED, report=plan.render())


def problems_text(problems):
    return "".join(f"{problem}\n" for problem in problems)


def _unreadable(run, error):
    """Nothing read: the run, its audit (as the apply audits a refusal) and the metric say why."""
    with transaction.atomic():
        ascode.record_refusal(run.directory, run.commit,
                              ascode.Invalid([Problem(run.directory, 0, error)], error, outcome="unreadable"))
        _end(run, Outcome.UNREADABLE, error=error)
    CODE_APPLIES.labels("unreadable").inc()
    return run


def _end(run, outcome, error="", report=""):
    run.outcome, run.ok, run.error = outcome, outcome in CodeApplyRun.SUCCESSFUL, error
    run.report = report[:REPORT_MAX]
    run.finished_at = timezone.now()
    run.save()
    (log.info if run.ok else log.warning)("periodic apply of %s at %s: %s%s", run.directory,
                                          run.commit[:12] or "?", outcome, f": {error}" if error else "")
    return run
