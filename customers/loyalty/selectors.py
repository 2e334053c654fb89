"""Loyalty reads: points expiring soon (for one customer or, set-based, for all), a customer's
loyalty summary and history, and the ledger checks behind ``loyalty_verify``."""

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, TypedDict

from django.db.models import BigIntegerField, F, Min, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from customers.loyalty.services import TRAILING_SPEND_WINDOW, Program, Tier, loyalty_program_get
from customers.models import Customer, PointsEntry, Purchase, PurchaseStatus, TierChange

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

DEFAULT_EXPIRING_DAYS = 30


class ExpiringRow(TypedDict):
    customer_id: int
    points: int
    earliest_expiry: dt.datetime


def points_expiring_within(*, days: int, now: dt.datetime | None = None) -> QuerySet[PointsEntry, ExpiringRow]:
    """Per customer, the points of lots expiring in ``(now, now + days]``: rows of
    ``customer_id``, ``points`` and ``earliest_expiry``, one per customer with such points.

    A lazy grouped queryset over all customers, meant to be used inside one SQL statement, e.g.
    ``Customer.objects.filter(pk__in=points_expiring_within(days=14).values("customer_id"))`` or
    ``.filter(customer_id=OuterRef("pk")).values("points")`` as a Subquery. It reads the open-lots
    index; lots already past expiry are left to the expiry pass.
    """
    now = now or timezone.now()
    # Ordered by customer so .first() works on it; an __in lookup drops the ordering again.
    rows: QuerySet[PointsEntry, ExpiringRow] = (
        PointsEntry.objects.filter(remaining__gt=0, expires_at__gt=now, expires_at__lte=now + dt.timedelta(days=days))
        .order_by()
        .values("customer_id")
        .annotate(points=Sum("remaining"), earliest_expiry=Min("expires_at"))
        .order_by("customer_id")
    )
    return rows


@dataclass(frozen=True)
class Expiring:
    days: int
    points: int
    earliest_expiry: dt.datetime | None


def customer_points_expiring(*, customer: Customer, days: int, now: dt.datetime | None = None) -> Expiring:
    row = points_expiring_within(days=days, now=now).filter(customer_id=customer.pk).first()
    if row is None:
        return Expiring(days=days, points=0, earliest_expiry=None)
    return Expiring(days=days, points=row["points"], earliest_expiry=row["earliest_expiry"])


def customer_trailing_spend(*, customer: Customer, now: dt.datetime | None = None) -> Decimal:
    """Completed spend in the trailing 365 days: what tiers are measured by."""
    now = now or timezone.now()
    total = Purchase.objects.filter(
        customer=customer,
        status=PurchaseStatus.COMPLETED,
        placed_at__gt=now - TRAILING_SPEND_WINDOW,
        placed_at__lte=now,
    ).aggregate(total=Sum("total"))["total"]
    return total or Decimal("0.00")


@dataclass(frozen=True)
class LoyaltySummary:
    customer: Customer
    balance: int
    balance_value: Decimal
    tier: Tier
    next_tier: Tier | None
    trailing_spend: Decimal
    spend_to_next_tier: Decimal | None
    progress: float  # 0..1 of the way from the current tier's threshold to the next one
    expiring: Expiring


def customer_loyalty(
    *, customer: Customer, expiring_days: int = DEFAULT_EXPIRING_DAYS, now: dt.datetime | None = None
) -> LoyaltySummary:
    """Balance, tier and progress to the next one, and points expiring soon, for one customer."""
    now = now or timezone.now()
    program: Program = loyalty_program_get()
    tier = program.tier(customer.tier) or Tier(
        code=customer.tier, name=customer.tier.title(), threshold=Decimal(0), multiplier=Decimal(1)
    )
    spend = customer_trailing_spend(customer=customer, now=now)
    next_tier = program.next_tier(customer.tier)
    if next_tier is None:
        to_next, progress = None, 1.0
    else:
        to_next = max(next_tier.threshold - spend, Decimal("0.00"))
        span = next_tier.threshold - tier.threshold
        progress = float(min(max((spend - tier.threshold) / span, Decimal(0)), Decimal(1))) if span > 0 else 1.0
    return LoyaltySummary(
        customer=customer,
        balance=customer.points_balance,
        balance_value=program.discount_for(customer.points_balance),
        tier=tier,
        next_tier=next_tier,
        trailing_spend=spend,
        spend_to_next_tier=to_next,
        progress=round(progress, 4),
        expiring=customer_points_expiring(customer=customer, days=expiring_days, now=now),
    )


def points_history(*, customer: Customer) -> QuerySet[PointsEntry]:
    """The customer's ledger, newest first."""
    return customer.points_entries.select_related("purchase").order_by("-created_at", "-id")


def tier_history(*, customer: Customer) -> QuerySet[TierChange]:
    return customer.tier_changes.order_by("-changed_at", "-id")


class LedgerSums(TypedDict):
    ledger_sum: int
    lots_sum: int


def loyalty_mismatches() -> "QuerySet[WithAnnotations[Customer, LedgerSums]]":
    """Customers whose cached balance differs from the ledger's sum, or whose open lots do not add
    up to the balance: the invariants ``loyalty_verify`` checks. Empty when all is well.

    One statement over all customers (two correlated sums through the ledger's customer index).
    """
    ledger = PointsEntry.objects.filter(customer=OuterRef("pk")).order_by().values("customer")
    ledger_sum = Subquery(ledger.annotate(s=Sum("points")).values("s"), output_field=BigIntegerField())
    lots_sum = Subquery(
        ledger.filter(remaining__gt=0).annotate(s=Sum("remaining")).values("s"), output_field=BigIntegerField()
    )
    return (
        Customer.objects.annotate(
            ledger_sum=Coalesce(ledger_sum, Value(0)),
            lots_sum=Coalesce(lots_sum, Value(0)),
        )
        .filter(~Q(points_balance=F("ledger_sum")) | ~Q(points_balance=F("lots_sum")))
        .order_by("pk")
    )


def lots_overdrawn() -> QuerySet[PointsEntry]:
    """Lots holding more than they added, or entries that are not lots holding points."""
    return PointsEntry.objects.filter(Q(remaining__gt=F("points")) | Q(remaining__gt=0, points__lte=0))
