"""``akeru_export [--out DIR]``: today's desired state as access-as-code files (docs/access-as-code.md)."""

from django.core.management.base import BaseCommand

from akeru.services import ascode


class Command(BaseCommand):
    help = ("Write today's accounts, principals, grants, request policies, approval rules and Slack routes as "
            "akeru/v1 files (one per kind, stable order: a second export of an unchanged database is "
            "byte-identical). Never a secret.")

    def add_arguments(self, parser):
        parser.add_argument("--out", metavar="DIR", help="write the files here (created when missing); without it, "
                                                         "every file to standard output")

    def handle(self, *args, **options):
        if options["out"]:
            for path in ascode.export(options["out"]):
                self.stdout.write(f"wrote {path}")
            return
        for text in ascode.export_files().values():
            self.stdout.write(text, ending="")
