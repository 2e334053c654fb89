"""Fixtures for the campaigns tests: customers with consent, campaigns through the service, a fixed clock."""

import datetime as dt
import zoneinfo
from collections.abc import Callable
from typing import Any

import pytest

from campaigns.channels import development
from campaigns.models import Campaign, ContactPolicy
from campaigns.services import campaign_create
from customers.models import Consent, Customer
from tests.api.conftest import api, make_client  # noqa: F401 (the API tests' fixtures, shared)
from tests.factories import CustomerFactory

UTC = dt.UTC
# Noon UTC on a weekday: outside the default quiet hours (21:00-09:00) for UTC customers.
NOON = dt.datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def now() -> dt.datetime:
    return NOON


@pytest.fixture(autouse=True)
def _locmem_channels(settings) -> None:
    """Every channel delivers into memory unless a test says otherwise."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.CAMPAIGN_CHANNELS = {
        "email": {"BACKEND": "email"},
        "sms": {"BACKEND": "locmem"},
        "push": {"BACKEND": "locmem"},
        "webhook": {"BACKEND": "locmem"},
    }
    development.outbox.clear()


@pytest.fixture
def make_customer(db) -> Callable[..., Customer]:
    """A customer who has granted the given channels (email by default)."""

    def make(*, channels: tuple[str, ...] = ("email",), **fields: Any) -> Customer:
        customer = CustomerFactory(**fields)
        for channel in channels:
            Consent.objects.create(customer=customer, channel=channel, granted=True, source="api")
        return customer

    return make


@pytest.fixture
def make_campaign(db) -> Callable[..., Campaign]:
    def make(trigger: str = "reactivation", **fields: Any) -> Campaign:
        data = {
            "name": f"{trigger} campaign",
            "trigger": trigger,
            "channel": "email",
            "status": "active",
            "subject": "Hello {{ customer.first_name }}",
            "body": "Hi {{ customer.first_name }}, we miss you.",
            "holdout_percent": 0,
            **fields,
        }
        return campaign_create(data=data)

    return make


@pytest.fixture
def policy(db) -> ContactPolicy:
    policy, _ = ContactPolicy.objects.get_or_create(pk=1)
    return policy


def tz(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)


@pytest.fixture
def sink():
    """A provider on a local port; the webhook channel posts to it."""
    from tests.campaigns.sink import start_sink

    server = start_sink()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture
def webhook_to_sink(settings, sink):
    settings.CAMPAIGN_CHANNELS = {
        **settings.CAMPAIGN_CHANNELS,
        "webhook": {"BACKEND": "http", "URL": sink.url, "TOKEN": "provider-token", "TIMEOUT": 5},
    }
    return sink
