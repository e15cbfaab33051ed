from django.core.management.base import BaseCommand, CommandError

from akeru import services
from akeru.aws.errors import Retryable
from akeru.domain.types import Action
from akeru.models import AWSRole
from akeru.reconcile import principal


class Command(BaseCommand):
    help = "Sync principals with IAM: enqueue (default), or run here and print the plan (--now)."

    def add_arguments(self, parser):
        parser.add_argument("names", nargs="*", metavar="NAME",
                            help="a principal's name, or ACCOUNT/NAME when the name is used in several accounts")
        parser.add_argument("--all", action="store_true", help="every principal")
        parser.add_argument("--now", action="store_true", help="run in this process and print the plan")

    def handle(self, *names, **options):
        names = options["names"]
        if not names and not options["all"]:
            raise CommandError("name one or more principals, or pass --all")
        if options["all"]:
            roles = AWSRole.objects.all()
        else:
            found, problems = [], []
            for name in names:
                try:
                    found.append(AWSRole.objects.resolve(name).pk)
                except LookupError as exc:
                    problems.append(str(exc))
            if problems:
                raise CommandError("; ".join(problems))
            roles = AWSRole.objects.filter(pk__in=found)
        if not options["now"]:
            n = services.sync_now(roles.values_list("pk", flat=True), trigger="akeru_sync")
            self.stdout.write(f"queued {n} sync(s)")
            return
        failed = 0
        for role in roles:
            try:
                run = principal.sync(role.pk, force=True, trigger="akeru_sync --now")
            except Retryable as exc:
                failed += 1
                self.stdout.write(self.style.WARNING(f"{role.name}: not synced, retryable error: {exc}"))
                continue
            if run is None:
                continue
            self.stdout.write(f"{role.name}: {run.outcome}")
            for action in run.actions:
                self.stdout.write(f"  {Action(**action)}")
            if run.error:
                failed += 1
                self.stdout.write(self.style.ERROR(f"  error: {run.error}"))
        if failed:
            raise CommandError(f"{failed} principal(s) not synced")
