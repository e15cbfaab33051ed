from django.core.management.base import BaseCommand, CommandError

from akeru import crypto, keys


class Command(BaseCommand):
    help = ("Re-encrypt every stored secret under the newest key of AKERU_ENCRYPTION_KEYS (run it after "
            "putting a new key first); prints how many changed. Afterwards the older keys can be removed.")

    def handle(self, *args, **options):
        try:
            changed, total, unreadable = keys.reencrypt_all()
        except crypto.SecretUnavailable as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"re-encrypted {changed} of {total} stored secret(s) under the newest key; "
                          f"{total - changed - len(unreadable)} already were")
        if unreadable:
            raise CommandError(
                f"{len(unreadable)} stored secret(s) cannot be decrypted with any configured key "
                f"(access keys {', '.join(unreadable)}): add the key they were encrypted with to "
                "AKERU_ENCRYPTION_KEYS, or rotate those users' keys (akeru_rotate_keys NAME)"
            )
