"""Shared fixtures. The suite runs on PostgreSQL (and Redis where Celery is involved), never SQLite."""

import pytest
from django.conf import settings


def pytest_configure(config: pytest.Config) -> None:
    engine = settings.DATABASES["default"]["ENGINE"]
    if "postgresql" not in engine:
        raise pytest.UsageError(
            f"The tests run on PostgreSQL; DATABASE_URL points at {engine}. Use `make test`."
        )


@pytest.fixture
def store_tz(settings):
    """The store's time zone as a ZoneInfo, for building tz-aware times in tests."""
    import zoneinfo

    return zoneinfo.ZoneInfo(settings.TIME_ZONE)
