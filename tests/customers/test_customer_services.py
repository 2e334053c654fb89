"""customer_upsert and consent_set: the rules for customer records and their consents."""

import datetime as dt
import zoneinfo

import pytest
from django.utils import timezone

from customers.models import Consent, ConsentEvent, Customer
from customers.services import consent_set, customer_upsert
from retention_crm.errors import ApplicationError, Conflict
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def test_upsert_creates_then_updates_only_the_given_fields():
    customer, created = customer_upsert(
        external_id="c-1", data={"email": "a@example.com", "first_name": "Ann", "tags": ["vip", "vip", "b2b"]}
    )
    assert created
    assert customer.tags == ["vip", "b2b"]

    customer, created = customer_upsert(external_id="c-1", data={"last_name": "Lee"})
    assert not created
    assert (customer.email, customer.first_name, customer.last_name) == ("a@example.com", "Ann", "Lee")
    assert Customer.objects.count() == 1


def test_upsert_is_idempotent():
    data = {"email": "a@example.com", "phone": "+44 20 7946 0958", "birth_date": "1990-05-17"}
    first, _ = customer_upsert(external_id="c-1", data=data)
    second, created = customer_upsert(external_id="c-1", data=data)
    assert not created
    assert (first.pk, first.phone, first.birth_date) == (second.pk, second.phone, second.birth_date)
    assert second.phone == "+442079460958"


def test_birthday_month_and_day_are_derived_by_the_database():
    customer, _ = customer_upsert(external_id="c-1", data={"birth_date": "2000-02-29"})
    assert (customer.birth_month, customer.birth_day) == (2, 29)


def test_timezone_defaults_to_the_store_and_must_be_iana(settings):
    customer, _ = customer_upsert(external_id="c-1", data={})
    assert customer.timezone == settings.TIME_ZONE
    with pytest.raises(ApplicationError) as error:
        customer_upsert(external_id="c-2", data={"timezone": "Mars/Olympus"})
    assert "timezone" in error.value.fields


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"phone": "0151 1234"}, "phone"),
        ({"birth_date": "1990-13-01"}, "birth_date"),
        ({"birth_date": "2999-01-01"}, "birth_date"),
        ({"tags": "vip"}, "tags"),
        ({"attributes": [1, 2]}, "attributes"),
        ({"created_at": "yesterday"}, "created_at"),
        ({"consents": {"fax": True}}, "consents"),
        ({"consents": {"email": "yes"}}, "consents"),
        ({"referred_by": "nobody"}, "referred_by"),
        ({"shoe_size": 42}, "shoe_size"),
    ],
)
def test_bad_fields_are_refused_and_nothing_is_written(data, field):
    with pytest.raises(ApplicationError) as error:
        customer_upsert(external_id="c-1", data=data)
    assert field in error.value.fields
    assert error.value.status == 400
    assert not Customer.objects.exists()


@pytest.mark.parametrize("external_id", ["", "   ", "x" * 65, "tab\tid", 17])
def test_external_id_must_be_1_to_64_printable_characters(external_id):
    with pytest.raises(ApplicationError):
        customer_upsert(external_id=external_id, data={})


def test_naive_created_at_is_read_in_the_store_time_zone(settings):
    settings.TIME_ZONE = "Europe/Berlin"
    customer, _ = customer_upsert(external_id="c-1", data={"created_at": "2026-07-01T12:00:00"})
    assert customer.created_at == dt.datetime(2026, 7, 1, 10, 0, tzinfo=dt.UTC)


def test_referrer_is_set_once_and_never_self():
    customer_upsert(external_id="ref-1", data={})
    customer_upsert(external_id="ref-2", data={})
    customer, _ = customer_upsert(external_id="new", data={"referred_by": "ref-1"})
    customer, _ = customer_upsert(external_id="new", data={"referred_by": "ref-2"})
    assert customer.referred_by.external_id == "ref-1"
    with pytest.raises(ApplicationError):
        customer_upsert(external_id="new", data={"referred_by": "new"})


def test_erased_customer_takes_no_new_personal_data():
    customer = CustomerFactory(erased_at=timezone.now(), email="")
    with pytest.raises(Conflict):
        customer_upsert(external_id=customer.external_id, data={"email": "back@example.com"})
    customer.refresh_from_db()
    assert customer.email == ""


def test_consents_from_upsert_record_history_once_per_change():
    customer, _ = customer_upsert(external_id="c-1", data={"consents": {"email": True, "sms": False}})
    customer_upsert(external_id="c-1", data={"consents": {"email": True}})  # a repeat: no new history
    customer_upsert(external_id="c-1", data={"consents": {"email": False}})

    assert dict(Consent.objects.filter(customer=customer).values_list("channel", "granted")) == {
        "email": False,
        "sms": False,
    }
    history = list(
        ConsentEvent.objects.filter(customer=customer, channel="email").order_by("id").values_list("granted", flat=True)
    )
    assert history == [True, False]


def test_consent_set_keeps_source_and_time():
    customer = CustomerFactory()
    at = dt.datetime(2026, 3, 1, 9, 30, tzinfo=zoneinfo.ZoneInfo("UTC"))
    consent_set(customer=customer, channel="push", granted=True, source="import", at=at)
    event = ConsentEvent.objects.get(customer=customer)
    assert (event.channel, event.granted, event.source, event.recorded_at) == ("push", True, "import", at)


@pytest.mark.parametrize(
    ("channel", "source"), [("fax", "api"), ("email", "carrier pigeon")], ids=["channel", "source"]
)
def test_consent_set_refuses_unknown_channel_or_source(channel, source):
    customer = CustomerFactory()
    with pytest.raises(ApplicationError):
        consent_set(customer=customer, channel=channel, granted=True, source=source)
    assert not ConsentEvent.objects.exists()


def test_erased_customer_cannot_grant_consent_but_can_revoke():
    customer = CustomerFactory(erased_at=timezone.now())
    with pytest.raises(Conflict):
        consent_set(customer=customer, channel="email", granted=True, source="api")
    consent_set(customer=customer, channel="email", granted=False, source="api")
    assert Consent.objects.get(customer=customer).granted is False
