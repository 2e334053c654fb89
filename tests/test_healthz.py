"""GET /healthz reports the database, the broker and the workers."""

import time

import pytest

pytestmark = pytest.mark.django_db


def test_healthy_without_worker_reports_the_worker_down(client, celery_broker_url):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "up", "broker": "up", "worker": "down"}


def test_a_running_worker_answers_the_ping(client, celery_worker):
    # The worker's control channel may come up a moment after its task consumer.
    deadline = time.monotonic() + 15
    while (state := client.get("/healthz").json()["worker"]) != "up" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert state == "up"


def test_broker_down_is_a_503(client, celery_broker_url, monkeypatch):
    from retention_crm.celery import app

    monkeypatch.setitem(app.conf, "broker_write_url", "redis://127.0.0.1:1/0")  # nothing listens on port 1
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["broker"] == "down"
