from django.core.management.base import BaseCommand, CommandError

from akeru import reconcile
from akeru.models import Account, DriftEvent


class Command(BaseCommand):
    help = ("Scan for drift now: one GetAccountAuthorizationDetails snapshot per enabled account (or the one "
            "--account names), and print a summary per account.")

    def add_arguments(self, parser):
        parser.add_argument("--mode", choices=["repair", "report"], help="default: AKERU_DRIFT_MODE")
        parser.add_argument("--account", metavar="ID", help="scan only this account (12-digit id or display name)")

    def handle(self, *args, **options):
        if options["account"]:
            account = Account.objects.by_reference(options["account"]).first()
            if account is None:
                raise CommandError(f"no account {options['account']!r} (give its 12-digit id or its display name)")
            if not account.enabled:
                raise CommandError(f"{account} is disabled; enable it to scan it")
            runs = reconcile.Scans([reconcile.reconcile_account(account, options["mode"], repair_inline=True)])
        else:
            runs = reconcile.reconcile_all(mode=options["mode"], repair_inline=True)
        for run in runs:
            for event in DriftEvent.objects.filter(detected_at__gte=run.started_at, principal__account=run.account
                                                   ).select_related("principal"):
                self.stdout.write(f"  drifted: {event.principal.name}: {event.describe()}")
        self.stdout.write(runs.summary())
        if not runs.ok:
            raise CommandError(f"scan failed: {runs.error}")
