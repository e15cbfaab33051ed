"""gunicorn's settings for Akeru's web: ``gunicorn -c python:worker.gunicorn_conf worker.wsgi:application``.

With ``AKERU_LOG_FORMAT=json`` gunicorn's own lines (its start, its workers, the access log) go through
the same JSON handler as Django's and Akeru's (``akeru.logs.logging_config``); with ``text`` gunicorn
keeps its own format. An unknown format is refused when the app loads (``worker.settings``).
"""

import os

from akeru.logs import logging_config

_format = os.environ.get("AKERU_LOG_FORMAT", "text")
if _format == "json":
    logconfig_dict = logging_config("json", os.environ.get("AKERU_LOG_LEVEL", "INFO"))
