"""What ``akeru_plan`` and ``akeru_apply`` share: printing the files' problems (each with file and line)
and the plan."""

from django.core.management.base import CommandError


def report_invalid(command, exc):
    """Print every problem of ``exc`` (an ``ascode.Invalid``) and stop with exit status 1."""
    for problem in exc.problems:
        command.stderr.write(str(problem))
    errors = sum(1 for p in exc.problems if not p.warning)
    raise CommandError(f"{errors} problem(s) in the files; {exc}")


def report_warnings(command, warnings):
    for problem in warnings:
        command.stderr.write(str(problem))
