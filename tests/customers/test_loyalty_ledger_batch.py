"""``credits_write``, the batch ledger write every earning path goes through: one statement for
any number of credits, with the same results as writing them one at a time."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from customers.loyalty.services import Credit, credits_write
from customers.models import PointsEntry, PointsKind
from tests.factories import CustomerFactory
from tests.loyalty_support import assert_ledger_consistent, balance

pytestmark = pytest.mark.django_db

NOW = timezone.now()


def credit(customer_id: int, points: int, key: str) -> Credit:
    return Credit(
        customer_id=customer_id, kind=PointsKind.BONUS, points=points, key=key, expires_at=NOW + dt.timedelta(days=30)
    )


def test_several_credits_of_one_customer_run_their_balance_in_the_order_given():
    ada, bob = CustomerFactory(external_id="ada"), CustomerFactory(external_id="bob")
    credits_write([credit(ada.pk, 5, "seed")], at=NOW)

    entries = credits_write(
        [credit(ada.pk, 10, "a1"), credit(bob.pk, 7, "b1"), credit(ada.pk, 3, "a2"), credit(ada.pk, 20, "a3")], at=NOW
    )

    assert [(e.idempotency_key, e.points, e.balance_after) for e in entries] == [
        ("a1", 10, 15),
        ("b1", 7, 7),
        ("a2", 3, 18),
        ("a3", 20, 38),
    ]
    stored = dict(PointsEntry.objects.values_list("idempotency_key", "balance_after"))
    assert {e.idempotency_key: e.balance_after for e in entries} == {k: stored[k] for k in ("a1", "b1", "a2", "a3")}
    assert all(PointsEntry.objects.get(pk=e.pk).remaining == e.points for e in entries)
    assert (balance("ada"), balance("bob")) == (38, 7)
    assert_ledger_consistent("ada")
    assert_ledger_consistent("bob")


def test_known_keys_repeated_keys_missing_customers_and_empty_credits_are_skipped():
    ada = CustomerFactory(external_id="ada")
    credits_write([credit(ada.pk, 5, "old")], at=NOW)

    entries = credits_write(
        [
            credit(ada.pk, 50, "old"),  # already in the ledger
            credit(ada.pk, 10, "twice"),
            credit(ada.pk, 99, "twice"),  # the first of a repeated key wins
            credit(ada.pk + 10_000, 10, "nobody"),  # no such customer
            credit(ada.pk, 0, "nothing"),
        ],
        at=NOW,
    )

    assert [(e.idempotency_key, e.points, e.balance_after) for e in entries] == [("twice", 10, 15)]
    assert sorted(PointsEntry.objects.values_list("idempotency_key", flat=True)) == ["old", "twice"]
    assert balance("ada") == 15
    assert_ledger_consistent("ada")


def test_a_thousand_credits_take_a_fixed_number_of_statements():
    customers = CustomerFactory.create_batch(50)
    batch = [credit(customers[n % 50].pk, 1 + n % 7, f"k{n}") for n in range(1_000)]

    with CaptureQueriesContext(connection) as queries:
        entries = credits_write(batch, at=NOW)

    assert len(entries) == 1_000
    assert len(queries) == 2  # lock the customers, then write entries and balances together
    assert sum(balance(c.external_id) for c in customers) == sum(c.points for c in batch)
    for customer in customers[:5]:
        assert_ledger_consistent(customer.external_id)
