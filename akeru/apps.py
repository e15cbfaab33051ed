from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class AkeruConfig(AppConfig):
    default = True  # "akeru" in INSTALLED_APPS means this one, not AdminConfig below
    name = "akeru"
    verbose_name = "Akeru"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.db.models.signals import post_migrate

        from . import checks  # noqa: F401  (registers the system checks)
        from . import tokens
        from .services import webhooks
        from .schedule import install_default_schedule
        from .web import context, signin  # noqa: F401  (signin audits sign-in lockouts)

        post_migrate.connect(install_default_schedule, sender=self)
        tokens.connect()  # sign-in times for minting; revoking tokens on deactivation or a password change
        context.connect()  # each request's id (and user) on the log lines it causes
        webhooks.connect()  # every audit event written queues its webhook deliveries in the same transaction


class AdminConfig(admin_apps.AdminConfig):
    """``django.contrib.admin`` with Akeru's site (a second factor when ``AKERU_ADMIN_REQUIRE_MFA``;
    sign-in lockouts cleared with an audit event). A host project lists it instead of
    ``django.contrib.admin``."""

    default = False
    default_site = "akeru.web.signin.AdminSite"  # not in akeru.admin: see akeru/admin/README.md

    def ready(self):
        super().ready()  # autodiscovers every app's admin module, django-axes' among them
        from .admin import lockouts

        lockouts.audit_unlocks(self.module.site)
