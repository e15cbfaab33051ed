from django.apps import AppConfig


class AkeruConfig(AppConfig):
    name = "akeru"
    verbose_name = "Akeru"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.db.models.signals import post_migrate

        from . import checks  # noqa: F401  (registers the system checks)
        from . import tokens
        from .schedule import install_default_schedule

        post_migrate.connect(install_default_schedule, sender=self)
        tokens.connect()  # sign-in times for minting; revoking tokens on deactivation or a password change
