from django.core.management.base import BaseCommand, CommandError

from akeru.models import AWSRole
from akeru.reconcile import rightsize


class Command(BaseCommand):
    help = ("Right-size now: for every principal (or the one --principal names), the actions its template grants "
            "against those used over the window; record a proposal where something would be removed, and print the "
            "report. Nothing is applied: an operator applies a proposal in the admin.")

    def add_arguments(self, parser):
        parser.add_argument("--principal", metavar="NAME", help="only this principal (NAME or ACCOUNT/NAME)")
        parser.add_argument("--window-days", type=int, metavar="DAYS",
                            help="days of use to look at (default AKERU_RIGHTSIZE_WINDOW_DAYS)")

    def handle(self, *args, **options):
        principals = None
        if options["principal"]:
            try:
                principals = [AWSRole.objects.resolve(options["principal"])]
            except LookupError as exc:
                raise CommandError(str(exc)) from None
        if options["window_days"] is not None and options["window_days"] < 1:
            raise CommandError("--window-days is at least 1")
        found = rightsize.run(principals, days=options["window_days"])
        self.stdout.write(f"window {found.window_start:%Y-%m-%d %H:%M} → {found.window_end:%Y-%m-%d %H:%M} UTC")
        for item in found.outcomes:
            self.stdout.write(self._describe(item))
        counts = found.counts()
        self.stdout.write(", ".join(f"{n} {outcome.replace('_', ' ')}" for outcome, n in sorted(counts.items()))
                          or "no principal to right-size")
        if counts.get(rightsize.FAILED):
            raise CommandError(f"{counts[rightsize.FAILED]} principal(s) could not be right-sized (see above)")

    def _describe(self, item):
        principal = item.principal
        head = f"{principal.get_account().account_id}/{principal.name} ({principal.policy}): {item.outcome.replace('_', ' ')}"
        if item.proposal is not None:
            head += f" — proposal #{item.proposal.pk}"
        lines = [head]
        if item.trim is not None:
            lines.append(f"  granted {len(item.trim.granted)}, used {len(item.trim.used)}, "
                         f"removed {len(item.trim.removed)}")
            for decision in item.trim.decisions:
                mark = "keep  " if decision.kept else "remove"
                lines.append(f"  {mark} {decision.entry}: {decision.explain}")
        lines += [f"  note: {note}" for note in item.notes]
        return "\n".join(lines)
