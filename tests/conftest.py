"""Shared fixtures. The suite runs on PostgreSQL (and Redis where Celery is involved), never SQLite."""

import os
import re

import pytest
from django.conf import settings


def pytest_configure(config: pytest.Config) -> None:
    engine = settings.DATABASES["default"]["ENGINE"]
    if "postgresql" not in engine:
        raise pytest.UsageError(f"The tests run on PostgreSQL; DATABASE_URL points at {engine}. Use `make test`.")
    # One Redis database per parallel test process, so they never consume each other's tasks.
    # Celery gives the CELERY_BROKER_URL environment variable precedence over its settings.
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker and settings.CELERY_BROKER_URL.startswith("redis://"):
        database = 1 + int(worker.removeprefix("gw"))
        url = re.sub(r"(/\d*)?$", f"/{database}", settings.CELERY_BROKER_URL, count=1)
        settings.CELERY_BROKER_URL = os.environ["CELERY_BROKER_URL"] = url


@pytest.fixture
def store_tz(settings):
    """The store's time zone as a ZoneInfo, for building tz-aware times in tests."""
    import zoneinfo

    return zoneinfo.ZoneInfo(settings.TIME_ZONE)


@pytest.fixture(scope="session")
def celery_broker_url() -> str:
    from retention_crm.celery import app

    url = app.conf.broker_url
    if not url.startswith("redis://"):
        raise pytest.UsageError(f"Celery tests run on Redis; CELERY_BROKER_URL is {url}. Use `make test`.")
    assert url == settings.CELERY_BROKER_URL, "the Celery app read its configuration too early"
    return url


@pytest.fixture
def celery_worker(celery_broker_url: str, transactional_db):
    """A real Celery worker, in a thread of this process, consuming from Redis."""
    from celery.contrib.testing.worker import start_worker

    from retention_crm.celery import app

    with app.connection_for_write() as connection:
        for queue in app.conf.task_queues:
            queue(connection.channel()).purge()
    with start_worker(app, pool="threads", concurrency=2, perform_ping_check=False, shutdown_timeout=30) as worker:
        yield worker
