"""The Celery app: `celery -A worker worker` and `celery -A worker beat`."""

import os

from celery import Celery
from celery.signals import celeryd_after_setup
from django.conf import settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "worker.settings")

app = Celery("worker")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@celeryd_after_setup.connect
def _no_banner_in_json(sender, instance, conf, **kwargs):
    """With AKERU_LOG_FORMAT=json every line is a JSON object: the worker's start-up banner (a picture
    printed before its output goes to the log) is left out, as ``celery worker --quiet`` does."""
    if getattr(settings, "AKERU_LOG_FORMAT", "text") == "json":
        instance.quiet = True
