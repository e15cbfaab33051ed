from django.core.management.base import BaseCommand, CommandError

from akeru import reconcile
from akeru.models import DriftEvent


class Command(BaseCommand):
    help = "Scan the whole account for drift now (one GetAccountAuthorizationDetails snapshot) and print a summary."

    def add_arguments(self, parser):
        parser.add_argument("--mode", choices=["repair", "report"], help="default: AKERU_DRIFT_MODE")

    def handle(self, *args, **options):
        run = reconcile.reconcile_all(mode=options["mode"], repair_inline=True)
        if not run.ok:
            raise CommandError(run.summary())
        for event in DriftEvent.objects.filter(detected_at__gte=run.started_at).select_related("principal"):
            self.stdout.write(f"  drifted: {event.principal.name}: {event.describe()}")
        self.stdout.write(run.summary())
