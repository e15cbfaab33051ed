"""``akeru_plan PATH [--prune]``: what applying access-as-code files would change. Exit status 0: no change,
2: changes, 1: the files are invalid (docs/access-as-code.md)."""

import sys

from django.core.management.base import BaseCommand

from akeru.services import ascode
from akeru.settings.accessor import akeru_settings

from ._ascode import report_invalid, report_warnings


class Command(BaseCommand):
    help = ("Show what applying the akeru/v1 files under PATH would create, change (before → after) and delete. "
            "Exit status 0: no change, 2: changes, 1: invalid files (every problem with its file and line).")

    def add_arguments(self, parser):
        parser.add_argument("path", metavar="PATH", help="a directory of .yaml files (or one file)")
        parser.add_argument("--prune", action="store_true", help="plan the deletion of what the files do not name")

    def handle(self, *args, **options):
        try:
            result = ascode.plan(options["path"], prune=options["prune"])
        except ascode.Invalid as exc:
            report_invalid(self, exc)
        report_warnings(self, result.warnings)
        self.stdout.write(result.render(), ending="")
        limit = akeru_settings.AKERU_APPLY_MAX_DELETE
        if result.deletions > limit:
            self.stderr.write(f"warning: {ascode.too_many_deletions(result.deletions, limit)}")
        if result:
            sys.exit(2)
