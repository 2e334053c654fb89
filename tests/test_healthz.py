"""GET /healthz reports the database, the broker and the workers, from a recorded heartbeat."""

import datetime as dt
import time

import pytest
from django.utils import timezone

from retention_crm.api.models import WorkerHeartbeat
from retention_crm.health import HEARTBEAT_STALE_SECONDS, worker_heartbeat_record

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_broadcasts(monkeypatch):
    """A broadcast ping in the request would cost a second: make one fail the test."""
    from retention_crm.celery import app

    def refuse(*args, **kwargs):
        raise AssertionError("/healthz must not ping the workers")

    monkeypatch.setattr(app.control, "ping", refuse)
    monkeypatch.setattr(app.control, "broadcast", refuse)


def test_healthy_without_worker_reports_the_worker_down(client, celery_broker_url, no_broadcasts):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "up", "broker": "up", "worker": "down"}


def test_a_recent_heartbeat_is_up_and_a_stale_one_down(client, celery_broker_url, no_broadcasts):
    worker_heartbeat_record(hostname="celery@a")
    assert client.get("/healthz").json()["worker"] == "up"
    stale = timezone.now() - dt.timedelta(seconds=HEARTBEAT_STALE_SECONDS + 1)
    WorkerHeartbeat.objects.update(seen_at=stale)
    assert client.get("/healthz").json()["worker"] == "down"
    worker_heartbeat_record(hostname="celery@b")  # another worker still beating
    assert client.get("/healthz").json()["worker"] == "up"


def test_a_heartbeat_is_one_row_per_worker_and_long_gone_workers_are_forgotten(celery_broker_url):
    worker_heartbeat_record(hostname="celery@old", at=timezone.now() - dt.timedelta(days=2))
    worker_heartbeat_record(hostname="celery@a")
    worker_heartbeat_record(hostname="celery@a")
    assert list(WorkerHeartbeat.objects.values_list("hostname", flat=True)) == ["celery@a"]


def test_it_answers_in_under_100_ms(client, celery_broker_url, no_broadcasts):
    worker_heartbeat_record(hostname="celery@a")
    client.get("/healthz")  # the first request opens the connections
    timings = []
    for _ in range(10):
        started = time.perf_counter()
        assert client.get("/healthz").status_code == 200
        timings.append(time.perf_counter() - started)
    assert sorted(timings)[len(timings) // 2] < 0.1, timings


def test_a_running_worker_records_its_heartbeat(client, celery_worker, no_broadcasts):
    deadline = time.monotonic() + 15
    while (state := client.get("/healthz").json()["worker"]) != "up" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert state == "up"
    assert WorkerHeartbeat.objects.filter(hostname=celery_worker.hostname).exists()


def test_broker_down_is_a_503(client, celery_broker_url, monkeypatch):
    from retention_crm.celery import app

    monkeypatch.setitem(app.conf, "broker_write_url", "redis://127.0.0.1:1/0")  # nothing listens on port 1
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["broker"] == "down"
