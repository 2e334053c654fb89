"""Purchase histories for the metrics tests, written through the purchase services."""

import datetime as dt
import itertools
from collections.abc import Callable
from decimal import Decimal

import pytest
from django.conf import settings

from customers.models import Customer, Purchase
from customers.services import PurchaseInput, customer_stats_refresh, purchase_record
from metrics.periods import local_midnight
from tests.api.conftest import api, make_client  # noqa: F401  (the API fixtures, shared)

_orders = itertools.count(1)


def noon(day: dt.date) -> dt.datetime:
    return local_midnight(day).replace(hour=12)


def buy(customer: str, placed_at: dt.datetime, total: str = "50.00", status: str = "completed") -> Purchase:
    """One purchase through purchase_record, which keeps the customer's stats current."""
    purchase, _ = purchase_record(
        data=PurchaseInput.clean(
            {
                "external_id": f"order-{next(_orders):08d}",
                "customer": customer,
                "placed_at": placed_at,
                "total": total,
                "status": status,
            }
        )
    )
    return purchase


def bulk_history(history: list[tuple[str, dt.datetime, Decimal]]) -> None:
    """Many purchases at once (property tests): rows in the given order, then the stats service."""
    names = sorted({name for name, _, _ in history})
    Customer.objects.bulk_create([Customer(external_id=name) for name in names], ignore_conflicts=True)
    ids = dict(Customer.objects.filter(external_id__in=names).values_list("external_id", "pk"))
    Purchase.objects.bulk_create(
        [
            Purchase(
                external_id=f"bulk-{next(_orders):08d}",
                customer_id=ids[name],
                placed_at=placed_at,
                total=total,
                currency=settings.STORE_CURRENCY,
                status="completed",
                content_digest="test",
            )
            for name, placed_at, total in history
        ]
    )
    customer_stats_refresh(customer_ids=ids.values())


@pytest.fixture
def history() -> Callable[..., Purchase]:
    return buy
