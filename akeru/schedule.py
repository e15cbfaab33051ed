"""Default periodic tasks, created after migrate in django-celery-beat's database (editable in the admin).

Each entry carries ``expires`` so a backlog (workers down for an hour) does not pile up: a run
that waited longer than its own interval is dropped, the next one will do the same work.
"""

from django.db import connections
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from .settings.accessor import akeru_settings, result_expires

BACKEND_CLEANUP = "celery.backend_cleanup"  # the entry Celery's beat adds while result_expires is set

DEFAULTS = (
    # (name, task, interval setting)
    ("akeru: refresh template catalog", "akeru.refresh_templates", "AKERU_TEMPLATE_REFRESH_INTERVAL"),
    ("akeru: reconcile drift", "akeru.reconcile_all", "AKERU_DRIFT_INTERVAL"),
    ("akeru: re-enqueue stale pending", "akeru.requeue_stale", "AKERU_REQUEUE_INTERVAL"),
    ("akeru: purge old history", "akeru.purge_history", "AKERU_PURGE_INTERVAL"),
    ("akeru: rotate access keys", "akeru.rotate_access_keys", "AKERU_KEY_ROTATION_INTERVAL"),
    ("akeru: expire access requests", "akeru.expire_access_requests", "AKERU_REQUEST_SWEEP_INTERVAL"),
    ("akeru: send pending request emails", "akeru.send_pending_notifications", "AKERU_REQUEST_SWEEP_INTERVAL"),
    ("akeru: send due webhook deliveries", "akeru.send_due_webhooks", "AKERU_WEBHOOK_SWEEP_INTERVAL"),
    ("akeru: remind, escalate and close access reviews", "akeru.sweep_reviews", "AKERU_REVIEW_SWEEP_INTERVAL"),
    ("akeru: flag and end idle grants", "akeru.flag_idle_grants", "AKERU_GRANT_IDLE_INTERVAL"),
    ("akeru: send due Slack messages", "akeru.send_due_slack", "AKERU_SLACK_SWEEP_INTERVAL"),
    ("akeru: remind and escalate access requests", "akeru.remind_access_requests", "AKERU_REQUEST_SWEEP_INTERVAL"),
    ("akeru: read CloudTrail into the ledger", "akeru.read_trails", "AKERU_LEDGER_INTERVAL"),
    ("akeru: apply access as code", "akeru.apply_code", "AKERU_APPLY_INTERVAL"),  # a no-op while AKERU_APPLY_DIRECTORY is empty
    ("akeru: right-size templates (proposals)", "akeru.rightsize", "AKERU_RIGHTSIZE_INTERVAL"),
)


def install_default_schedule(using="default", **kwargs):
    if PeriodicTask._meta.db_table not in connections[using].introspection.table_names():
        return  # a partial migrate (e.g. ``migrate akeru 0001``) before django-celery-beat's tables exist
    if not result_expires(akeru_settings.AKERU_TASK_RESULT_DAYS):
        # "Keep every task result": the cleanup django-celery-beat stored while result_expires was set
        # would go on deleting them.
        PeriodicTask.objects.using(using).filter(name=BACKEND_CLEANUP).delete()
    for name, task, setting in DEFAULTS:
        if PeriodicTask.objects.using(using).filter(name=name).exists():
            continue  # an operator may have edited it: leave it alone
        seconds = int(getattr(akeru_settings, setting))
        interval, _ = IntervalSchedule.objects.using(using).get_or_create(every=seconds, period=IntervalSchedule.SECONDS)
        PeriodicTask.objects.using(using).create(name=name, task=task, interval=interval, expire_seconds=seconds)
