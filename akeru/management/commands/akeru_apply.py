"""``akeru_apply PATH [--prune] [--force] [--commit SHA]``: apply access-as-code files in one transaction, all
or nothing (docs/access-as-code.md). Exit status 1: invalid files or a refused prune, nothing applied."""

from django.core.management.base import BaseCommand

from akeru.services import ascode

from ._ascode import report_invalid, report_warnings


class Command(BaseCommand):
    help = ("Apply the akeru/v1 files under PATH in one transaction (all or nothing); principals whose desired "
            "state changed are synced. Without --prune nothing absent from the files is deleted.")

    def add_arguments(self, parser):
        parser.add_argument("path", metavar="PATH", help="a directory of .yaml files (or one file)")
        parser.add_argument("--prune", action="store_true", help="delete what the files do not name (at most "
                                                                 "AKERU_APPLY_MAX_DELETE objects without --force)")
        parser.add_argument("--force", action="store_true", help="prune more than AKERU_APPLY_MAX_DELETE objects")
        parser.add_argument("--commit", metavar="SHA", default="", help="the revision of the files, recorded in "
                            "the audit trail and on each object (default: PATH/COMMIT when present)")

    def handle(self, *args, **options):
        try:
            result = ascode.apply(options["path"], prune=options["prune"], force=options["force"],
                                  commit=options["commit"])
        except ascode.Invalid as exc:
            report_invalid(self, exc)
        report_warnings(self, result.warnings)
        self.stdout.write(result.render(), ending="")
        self.stdout.write("Applied." if result.applied else "Nothing to apply.")
