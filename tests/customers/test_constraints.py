"""The database itself guards the invariants, whatever code path writes."""

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from customers.models import Consent, PointsEntry
from tests.factories import (
    CartItemFactory,
    CustomerFactory,
    NpsResponseFactory,
    ProductFactory,
    PurchaseFactory,
    PurchaseItemFactory,
)

pytestmark = pytest.mark.django_db


def violates(factory, **fields) -> bool:
    try:
        with transaction.atomic():
            factory(**fields)
    except IntegrityError:
        return True
    return False


@pytest.mark.parametrize(
    ("factory", "fields"),
    [
        (CustomerFactory, {"external_id": ""}),
        (CustomerFactory, {"phone": "015112345678"}),
        (CustomerFactory, {"points_balance": -1}),
        (CustomerFactory, {"total_spent": Decimal("-0.01")}),
        (PurchaseFactory, {"total": Decimal("-0.01")}),
        (PurchaseFactory, {"status": "shipped"}),
        (PurchaseFactory, {"external_id": ""}),
        (PurchaseItemFactory, {"quantity": 0}),
        (PurchaseItemFactory, {"unit_price": Decimal("-1")}),
        (CartItemFactory, {"quantity": 0}),
        (NpsResponseFactory, {"score": 11}),
        (ProductFactory, {"replenishment_days": 0}),
    ],
    ids=lambda value: value.__name__ if isinstance(value, type) else str(value),
)
def test_invalid_rows_are_refused_by_the_database(factory, fields):
    assert violates(factory, **fields)


def test_valid_rows_pass_the_same_constraints():
    assert not violates(CustomerFactory, phone="+15551234567", points_balance=0)
    assert not violates(PurchaseFactory, total=Decimal("0.00"))
    assert not violates(NpsResponseFactory, score=0)
    assert not violates(NpsResponseFactory, score=10)


def test_external_ids_are_unique():
    PurchaseFactory(external_id="o-1")
    assert violates(PurchaseFactory, external_id="o-1")
    CustomerFactory(external_id="c-1")
    assert violates(CustomerFactory, external_id="c-1")


def test_one_consent_row_per_channel():
    customer = CustomerFactory()
    Consent.objects.create(customer=customer, channel="email", granted=True, source="api")
    with pytest.raises(IntegrityError), transaction.atomic():
        Consent.objects.create(customer=customer, channel="email", granted=False, source="api")


def test_points_idempotency_key_is_unique_and_lots_never_negative():
    customer = CustomerFactory()
    PointsEntry.objects.create(customer=customer, kind="earn", points=10, remaining=10, idempotency_key="k-1")
    with pytest.raises(IntegrityError), transaction.atomic():
        PointsEntry.objects.create(customer=customer, kind="earn", points=10, idempotency_key="k-1")
    with pytest.raises(IntegrityError), transaction.atomic():
        PointsEntry.objects.create(customer=customer, kind="earn", points=10, remaining=-1, idempotency_key="k-2")
    with pytest.raises(IntegrityError), transaction.atomic():
        PointsEntry.objects.create(customer=customer, kind="gift", points=10, idempotency_key="k-3")
