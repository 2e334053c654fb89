"""GET /healthz: is the database reachable, the broker reachable, a worker answering?

The answer is 200 while the web process can do its job (database and broker up) and 503
otherwise; the worker's state is reported but does not fail the web's health check, so a load
balancer does not take the web down because the workers are being restarted.
"""

from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from retention_crm.celery import app as celery_app

BROKER_TIMEOUT_SECONDS = 2
WORKER_PING_TIMEOUT_SECONDS = 1.0
# Transports that carry broadcast messages, which a worker ping needs.
BROADCAST_TRANSPORTS = {"redis", "rediss", "amqp", "amqps", "pyamqp"}


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


def _worker_state() -> str:
    transport = celery_app.conf.broker_url.split("://", 1)[0]
    if transport not in BROADCAST_TRANSPORTS:
        return "unknown"
    try:
        replies = celery_app.control.ping(timeout=WORKER_PING_TIMEOUT_SECONDS)
    except Exception:
        return "down"
    return "up" if replies else "down"


@never_cache
@require_GET
def healthz(request):
    database = _database_ok()
    broker = _broker_ok()
    body = {
        "status": "ok" if database and broker else "error",
        "database": "up" if database else "down",
        "broker": "up" if broker else "down",
        "worker": _worker_state(),
    }
    return JsonResponse(body, status=200 if database and broker else 503)
