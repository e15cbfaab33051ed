"""``/healthz``: 200 when the database and the broker answer, 503 (naming what failed) otherwise.

For load balancers and container healthchecks: no login, no session, no AWS call. The broker check
connects and pings with the broker's own timeouts (``CELERY_BROKER_TRANSPORT_OPTIONS``), so a broker
that accepts connections and never answers makes this answer 503, not hang.
"""

import logging

from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from ..outbox import broker

log = logging.getLogger(__name__)


def _database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


CHECKS = {"database": _database, "broker": broker.ensure_reachable}


@never_cache
@require_safe
def healthz(request):
    results = {}
    for name, check in CHECKS.items():
        try:
            check()
        except Exception as exc:  # noqa: BLE001 - any failure means "not healthy"; the reason is logged
            log.warning("healthz: %s unreachable: %s: %s", name, type(exc).__name__, exc)
            results[name] = "unreachable"
        else:
            results[name] = "ok"
    healthy = all(value == "ok" for value in results.values())
    return JsonResponse({"status": "ok" if healthy else "unavailable", **results}, status=200 if healthy else 503)
