"""A worker's own metrics server, on ``AKERU_WORKER_METRICS_PORT`` (workers run on other hosts than
the web, so each serves its own counters; Prometheus scrapes every worker).

With a pool of threads (or ``solo``) every count is in the one process: the default registry is
served. A forking pool (``prefork``) counts in its child processes: prometheus-client's multiprocess
mode (``PROMETHEUS_MULTIPROC_DIR``, set before the worker starts) gathers their files, and a child
that exits is marked dead. A port that cannot be opened is logged, naming the setting and the port;
the worker goes on working, without metrics. No Celery here: ``akeru.tasks`` connects the signals.
"""

import logging
import os

from prometheus_client import REGISTRY, CollectorRegistry, multiprocess, start_http_server

log = logging.getLogger(__name__)

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_mode():
    return bool(os.environ.get(MULTIPROC_DIR))


def registry(forking=False):
    """What a worker serves: its own registry, or (forking, or multiprocess mode asked for) the
    children's counts gathered from ``PROMETHEUS_MULTIPROC_DIR``."""
    if not (forking or multiprocess_mode()):
        return REGISTRY
    gathered = CollectorRegistry()
    multiprocess.MultiProcessCollector(gathered)
    return gathered


def start(port, address="0.0.0.0", forking=False):
    """Serve this worker's metrics on ``address``:``port`` (``0``/unset: off). Returns the server, or
    None when off or impossible (said in the log; the worker works on)."""
    if not port:
        return None
    if forking and not multiprocess_mode():
        log.error("AKERU_WORKER_METRICS_PORT=%s: this worker's pool forks (prefork), so its counts live in its "
                  "child processes: set %s to an empty directory, writable by the worker, before it starts "
                  "(prometheus-client's multiprocess mode), or use the threads pool. This worker serves no "
                  "metrics; it goes on working.", port, MULTIPROC_DIR)
        return None
    try:
        server, _thread = start_http_server(int(port), addr=address, registry=registry(forking))
    except OSError as exc:
        log.error("AKERU_WORKER_METRICS_PORT=%s: cannot listen on %s port %s (%s; is another worker or process "
                  "on this host using it?). Give each worker on a host its own port. This worker serves no "
                  "metrics; it goes on working.", port, address, port, exc.strerror or exc)
        return None
    log.info("worker metrics at http://%s:%s/metrics%s", address, port,
             " (multiprocess mode)" if forking or multiprocess_mode() else "")
    return server


def child_exited(pid):
    """A forked child is gone: its live gauges are dropped (prometheus-client's ``mark_process_dead``)."""
    if multiprocess_mode():
        multiprocess.mark_process_dead(pid)
