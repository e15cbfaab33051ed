"""``akeru_ledger_export``: the ledger as OCSF 1.1 API Activity (class 6003) JSON lines, for a SIEM."""

import json
import sys
from datetime import datetime, timedelta, timezone

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from akeru.models import AWSRole
from akeru.services import ledger

CHUNK = 2000


def parse_since(text):
    """``2026-12-01``, ``2026-12-01T08:00:00Z``, or a span back from now: ``90m``, ``12h``, ``7d``."""
    text = text.strip()
    units = {"m": "minutes", "h": "hours", "d": "days"}
    if text[:-1].isdigit() and text[-1:] in units:
        return datetime.now(timezone.utc) - timedelta(**{units[text[-1]]: int(text[:-1])})
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CommandError(f"--since {text!r}: give a date (2026-12-01), a time (2026-12-01T08:00:00Z) or a span "
                           "back from now (90m, 12h, 7d)") from None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


class Command(BaseCommand):
    help = ("Write the ledger as OCSF 1.1 API Activity events (class_uid 6003), one JSON object a line, enriched "
            "with the Akeru person, principal, grant and request (unmapped.akeru). Streamed: any size.")

    def add_arguments(self, parser):
        parser.add_argument("--since", help="only events from then on: a date, an ISO time, or 90m / 12h / 7d")
        parser.add_argument("--principal", metavar="NAME", help="only calls under this principal (NAME or ACCOUNT/NAME)")
        parser.add_argument("--person", metavar="USERNAME", help="only this person's calls")
        parser.add_argument("--out", metavar="FILE", help="write here instead of standard output")

    def handle(self, *args, **options):
        since = parse_since(options["since"]) if options["since"] else None
        principal = person = None
        if options["principal"]:
            try:
                principal = AWSRole.objects.resolve(options["principal"])
            except LookupError as exc:
                raise CommandError(str(exc)) from None
        if options["person"]:
            person = get_user_model().objects.filter(username=options["person"]).first()
            if person is None:
                raise CommandError(f"no person {options['person']!r}")
        events = ledger.export_events(since, principal, person)
        out = open(options["out"], "w", encoding="utf-8") if options["out"] else None  # noqa: SIM115
        stream = out or sys.stdout
        written = 0
        try:
            for event in events.iterator(chunk_size=CHUNK):
                stream.write(json.dumps(ledger.ocsf(event), separators=(",", ":")) + "\n")
                written += 1
        finally:
            if out is not None:
                out.close()
        self.stderr.write(f"{written} event(s) written{' to ' + options['out'] if options['out'] else ''}")
