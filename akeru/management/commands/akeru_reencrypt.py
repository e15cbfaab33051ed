from django.core.management.base import BaseCommand, CommandError

from akeru import crypto, mfa
from akeru.reconcile import keys


class Command(BaseCommand):
    help = ("Re-encrypt every stored secret (IAM-user secret access keys, TOTP device keys) under the newest key "
            "of AKERU_ENCRYPTION_KEYS (run it after putting a new key first); prints how many changed. "
            "Afterwards the older keys can be removed.")

    def handle(self, *args, **options):
        try:
            changed, total, unreadable = keys.reencrypt_all()
            devices_changed, devices, unreadable_devices = mfa.reencrypt_all()
        except crypto.SecretUnavailable as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"re-encrypted {changed} of {total} stored secret(s) under the newest key; "
                          f"{total - changed - len(unreadable)} already were")
        self.stdout.write(f"re-encrypted {devices_changed} of {devices} TOTP device key(s) under the newest key; "
                          f"{devices - devices_changed - len(unreadable_devices)} already were")
        problems = []
        if unreadable:
            problems.append(
                f"{len(unreadable)} stored secret(s) cannot be decrypted with any configured key "
                f"(access keys {', '.join(unreadable)}): add the key they were encrypted with to "
                "AKERU_ENCRYPTION_KEYS, or rotate those users' keys (akeru_rotate_keys NAME)")
        if unreadable_devices:
            problems.append(
                f"{len(unreadable_devices)} TOTP device key(s) cannot be decrypted with any configured key "
                f"(devices of {', '.join(unreadable_devices)}): add the key they were encrypted with to "
                "AKERU_ENCRYPTION_KEYS, or delete those devices in the admin (the people enrol again)")
        if problems:
            raise CommandError("; ".join(problems))
