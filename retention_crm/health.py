"""GET /healthz: is the database reachable, the broker reachable, a worker alive?

The answer is 200 while the web process can do its job (database and broker up) and 503
otherwise; the worker's state is reported but does not fail the web's health check, so a load
balancer does not take the web down because the workers are being restarted.

The worker's state comes from a recorded heartbeat, never from a broadcast ping in the request
(which cost a second a call): every worker's consumer writes its row in ``api_workerheartbeat``
every HEARTBEAT_INTERVAL_SECONDS while it is connected to the broker, and the worker is ``up``
while the newest row is younger than HEARTBEAT_STALE_SECONDS. The whole check is two round trips.
"""

import datetime as dt
import logging
import threading

from celery import bootsteps
from django.db import close_old_connections, connection
from django.db.models import Max
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from retention_crm.celery import app as celery_app

logger = logging.getLogger(__name__)

BROKER_TIMEOUT_SECONDS = 2
HEARTBEAT_INTERVAL_SECONDS = 10
# Three missed beats: a worker restarting or reconnecting for a moment is not "down".
HEARTBEAT_STALE_SECONDS = 3 * HEARTBEAT_INTERVAL_SECONDS + 5
# Rows of workers gone this long are dropped (each container start is a new hostname).
HEARTBEAT_FORGET_AFTER = dt.timedelta(days=1)


# --- The worker's side ------------------------------------------------------------------------------


def worker_heartbeat_record(*, hostname: str, at: dt.datetime | None = None) -> None:
    """Upsert this worker's row (one statement) and forget workers long gone."""
    from retention_crm.api.models import WorkerHeartbeat

    at = at or timezone.now()
    WorkerHeartbeat.objects.bulk_create(
        [WorkerHeartbeat(hostname=hostname[:255], seen_at=at)],
        update_conflicts=True,
        unique_fields=["hostname"],
        update_fields=["seen_at"],
    )
    WorkerHeartbeat.objects.filter(seen_at__lt=at - HEARTBEAT_FORGET_AFTER).delete()


class WorkerHeartbeatStep(bootsteps.StartStopStep):
    """A consumer bootstep: started once the worker consumes from the broker, stopped when it
    stops or loses the broker (Celery restarts the consumer's steps then), so a worker that
    cannot take tasks stops beating. A thread of its own: a slow database never blocks the
    consumer's event loop."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, parent, **kwargs) -> None:
        super().__init__(parent, **kwargs)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, parent) -> None:
        hostname = parent.hostname
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(hostname, self._stop), name="heartbeat", daemon=True)
        self._thread.start()

    def stop(self, parent) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=HEARTBEAT_INTERVAL_SECONDS)
            self._thread = None

    shutdown = stop

    @staticmethod
    def _run(hostname: str, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    close_old_connections()
                    worker_heartbeat_record(hostname=hostname)
                except Exception:
                    logger.warning("worker.heartbeat_failed", extra={"hostname": hostname}, exc_info=True)
                stop.wait(HEARTBEAT_INTERVAL_SECONDS)
        finally:
            connection.close()


def install_worker_heartbeat() -> None:
    """Adds the heartbeat to every worker this Celery app starts (called from the api app's ready())."""
    celery_app.steps["consumer"].add(WorkerHeartbeatStep)


# --- The web's side -----------------------------------------------------------------------------------


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except Exception:
        return False


def _broker_ok() -> bool:
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_SECONDS)
            # Kombu's Redis transport connects lazily: only a round trip proves the broker is there.
            client = getattr(conn.default_channel, "client", None)
            if client is not None and hasattr(client, "ping"):
                client.ping()
        return True
    except Exception:
        return False


def _worker_state(database: bool) -> str:
    if not database:
        return "unknown"
    from retention_crm.api.models import WorkerHeartbeat

    try:
        newest = WorkerHeartbeat.objects.aggregate(newest=Max("seen_at"))["newest"]
    except Exception:
        return "unknown"
    if newest is None:
        return "down"
    age = (timezone.now() - newest).total_seconds()
    return "up" if age <= HEARTBEAT_STALE_SECONDS else "down"


@never_cache
@require_GET
def healthz(request):
    database = _database_ok()
    broker = _broker_ok()
    body = {
        "status": "ok" if database and broker else "error",
        "database": "up" if database else "down",
        "broker": "up" if broker else "down",
        "worker": _worker_state(database),
    }
    return JsonResponse(body, status=200 if database and broker else 503)
