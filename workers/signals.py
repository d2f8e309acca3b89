"""Celery signal handlers: models per pool process (none on a webhook worker), the sweep
thread and the Prometheus endpoint (``FACEDIT_WORKER_METRICS_PORT``) per worker.

The worker imports this module when it starts (``include`` in workers/celery_app.py), before
its pool processes fork, so every process has the handlers connected."""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import worker_process_init, worker_process_shutdown, worker_ready
from celery.signals import worker_shutdown as worker_shutdown_signal

from shared.core.config import get_settings
from workers.runtime import close_process, init_process
from workers.sweep import Sweeper

log = logging.getLogger(__name__)
_sweeper: Sweeper | None = None
_metrics_server: Any = None


@worker_process_init.connect
def _load_models(**_: Any) -> None:
    from celery.utils.log import current_process_index

    if _sweeper is not None:  # a pool process forked after the sweep thread started
        _sweeper.forget_connections()
    try:
        init_process(current_process_index(base=0))
    except Exception:  # noqa: BLE001 - logged in init_process; tasks report it per message
        pass


@worker_process_shutdown.connect
def _close_runtime(**_: Any) -> None:
    close_process()


@worker_ready.connect
def _start_sweeper(sender: Any = None, **_: Any) -> None:
    """``sender``: the worker's consumer; the sweep sends its messages with its app."""
    global _sweeper
    settings = get_settings()
    _sweeper = Sweeper(sender.app, settings)
    _sweeper.start()
    log.info("sweep thread started (every %.1f s)", settings.sweep_interval_seconds)


@worker_ready.connect
def _serve_metrics(**_: Any) -> None:
    """The main process serves the pool's summed metrics (workers/metrics.py)."""
    global _metrics_server
    from workers.metrics import serve

    _metrics_server = serve(get_settings().worker_metrics_port)


@worker_shutdown_signal.connect
def _stop_sweeper(**_: Any) -> None:
    if _sweeper is not None:
        _sweeper.stop()


@worker_shutdown_signal.connect
def _stop_metrics(**_: Any) -> None:
    if _metrics_server is not None:
        _metrics_server.shutdown()
        _metrics_server.server_close()
