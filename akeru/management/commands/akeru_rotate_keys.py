from django.core.management.base import BaseCommand, CommandError

from akeru.reconcile import keys
from akeru.models import AWSRole


class Command(BaseCommand):
    help = ("Rotate IAM-user access keys in this process and print what was done per user. Without names: "
            "every key older than AKERU_KEY_MAX_AGE_DAYS (--force: every key). Named users are rotated now. "
            "Each run also finishes interrupted rotations and deletes deactivated keys whose grace is over.")

    def add_arguments(self, parser):
        parser.add_argument("names", nargs="*", metavar="NAME",
                            help="IAM-user principals to rotate now (ACCOUNT/NAME when the name is used in several accounts)")
        parser.add_argument("--force", action="store_true", help="rotate every key, due or not")

    def handle(self, *args, **options):
        names = options["names"]
        if names:
            roles, problems = [], []
            for name in names:
                try:
                    roles.append(AWSRole.objects.resolve(name))
                except LookupError as exc:
                    problems.append(str(exc))
            if problems:
                raise CommandError("; ".join(problems))
            not_users = sorted(r.name for r in roles if not r.user)
            if not_users:
                raise CommandError(f"{', '.join(not_users)}: IAM roles have no access keys (only IAM users do)")
            force = True
        else:
            roles, force = list(keys.candidates()), options["force"]
        if not roles:
            self.stdout.write("no provisioned IAM users")
            return
        failed = 0
        for role, record, problem in keys.rotate_many(roles, force=force, trigger="akeru_rotate_keys"):
            if problem:
                failed += 1
                self.stdout.write(self.style.ERROR(f"{role.name}: {problem}"))
                continue
            self.stdout.write(f"{role.name}: {keys.describe_record(record, role)}")
            if record is not None and record.outcome == record.Outcome.FAILED:
                failed += 1
            for step in record.steps if record is not None else []:
                self.stdout.write(f"  {step}")
        if failed:
            raise CommandError(f"{failed} user(s) not rotated; the key in use stays in use")
