"""Helpers shared by the loyalty tests: set the program's numbers, record purchases, read the ledger."""

import datetime as dt
from decimal import Decimal
from typing import Any

from django.db.models import Sum
from django.utils import timezone

from customers.loyalty.services import DEFAULT_TIERS, loyalty_program_ensure
from customers.models import Customer, LoyaltyProgram, LoyaltyTier, PointsEntry, Purchase
from customers.services import PurchaseInput, purchase_record

# Numbers easy to reason about in tests: 1 point per 1.00, a point is worth 0.01, 30 % max share,
# a year to expire, bonuses off unless a test turns one on.
PLAIN_PROGRAM = {
    "earn_rate": Decimal("1"),
    "point_value": Decimal("0.01"),
    "max_redeem_share": Decimal("0.30"),
    "expiry_days": 365,
    "welcome_bonus": 0,
    "birthday_bonus": 0,
    "referral_bonus": 0,
    "review_bonus": 0,
}


def program_set(tiers: list[tuple[str, str, str, str]] | None = None, **fields: Any) -> LoyaltyProgram:
    """Set the program's numbers (PLAIN_PROGRAM overridden by ``fields``) and, if given, its tiers
    as (code, name, threshold, multiplier)."""
    program = loyalty_program_ensure()
    LoyaltyProgram.objects.filter(pk=program.pk).update(**{**PLAIN_PROGRAM, **fields})
    if tiers is not None or not LoyaltyTier.objects.exists():
        LoyaltyTier.objects.all().delete()
        rows = tiers or [(code, name, str(threshold), str(mult)) for code, name, threshold, mult in DEFAULT_TIERS]
        LoyaltyTier.objects.bulk_create(
            [
                LoyaltyTier(program=program, code=code, name=name, threshold=Decimal(threshold), multiplier=Decimal(m))
                for code, name, threshold, m in rows
            ]
        )
    program.refresh_from_db()
    return program


_counter = iter(range(1, 10**9))


def buy(
    customer: str,
    total: str,
    *,
    placed_at: dt.datetime | None = None,
    external_id: str | None = None,
    status: str = "completed",
) -> Purchase:
    purchase, _ = purchase_record(
        data=PurchaseInput.clean(
            {
                "external_id": external_id or f"order-{customer}-{next(_counter)}",
                "customer": customer,
                "placed_at": placed_at or timezone.now(),
                "total": total,
                "status": status,
            }
        )
    )
    return purchase


def balance(external_id: str) -> int:
    return Customer.objects.get(external_id=external_id).points_balance


def ledger_sum(external_id: str) -> int:
    return PointsEntry.objects.filter(customer__external_id=external_id).aggregate(s=Sum("points"))["s"] or 0


def lots_sum(external_id: str) -> int:
    return (
        PointsEntry.objects.filter(customer__external_id=external_id, remaining__gt=0).aggregate(s=Sum("remaining"))[
            "s"
        ]
        or 0
    )


def assert_ledger_consistent(external_id: str) -> None:
    """The invariants: cached balance == ledger sum == what the open lots hold, never negative."""
    cached = balance(external_id)
    assert cached >= 0
    assert cached == ledger_sum(external_id), (cached, ledger_sum(external_id))
    assert cached == lots_sum(external_id), (cached, lots_sum(external_id))
