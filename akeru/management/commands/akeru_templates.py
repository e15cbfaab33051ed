from django.core.management.base import BaseCommand, CommandError

from akeru.reconcile import catalog
from akeru.domain.scope import parameterised_note
from akeru.models import PolicyTemplate


class Command(BaseCommand):
    help = "Refresh the template catalog from S3 now and print it with every problem found."

    def handle(self, *args, **options):
        run, resynced = catalog.refresh_catalog_and_resync(trigger="akeru_templates")
        templates = list(PolicyTemplate.objects.all())
        for t in templates:
            if t.usable:
                state = self.style.SUCCESS("ok      ")
            elif not t.present:
                state = self.style.WARNING("gone    ")
            else:
                state = self.style.ERROR("invalid ")
            self.stdout.write(f"{state} {t.name:<40} etag={t.etag or '-'} size={t.size}")
            if not t.usable:
                self.stdout.write(f"         {t.error or 'no longer in the bucket'}")
            elif t.warning:
                self.stdout.write(self.style.WARNING(f"         warning: {t.warning}"))
            if t.usable and t.parameters:
                self.stdout.write(f"         {parameterised_note(t.parameters)}")
        if not run.ok:
            raise CommandError(f"catalog refresh failed: {run.error}")
        bad = sum(1 for t in templates if t.present and not t.valid)
        self.stdout.write(f"{run.found} template(s) in the bucket, {bad} invalid, changed: {', '.join(run.changed) or 'none'}"
                          f"; {resynced} principal(s) queued to re-sync")
