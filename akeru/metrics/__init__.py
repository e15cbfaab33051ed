"""Akeru's Prometheus instruments (``instruments``) and the worker's metrics server (``serving``).
Only ``prometheus_client`` is imported here; see README.md."""
