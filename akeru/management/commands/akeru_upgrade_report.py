from django.core.management.base import BaseCommand

from akeru import upgrade


class Command(BaseCommand):
    help = ("What the upgrade from akeru-cloud-access 0.0.2 carried over, what Akeru adopted in IAM, "
            "and what needs an operator. Reads the database only.")

    def handle(self, *args, **options):
        for title, lines in upgrade.report():
            self.stdout.write(self.style.MIGRATE_HEADING(title))
            for line in lines:
                self.stdout.write(f"  {line}")
