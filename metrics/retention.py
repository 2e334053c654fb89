"""Customer Retention Rate and churn for a period, exactly as SPEC §5 defines them.

``active(t)`` is the set of customers with a completed purchase in ``[t - W, t)``. One scan of the
completed purchases in the two windows flags each customer as active at start and/or at end; the
"new" customers (first completed purchase in the period) come from the kept-current
``first_purchase_at`` stat instead of from a scan of all history.
"""

import datetime as dt
from dataclasses import dataclass
from typing import Any, TypeAlias

from django.db.models import Case, Count, Exists, IntegerField, Max, Model, OuterRef, Q, QuerySet, Value, When

from customers.models import Customer, Purchase, PurchaseStatus
from metrics.periods import DEFAULT_WINDOW_DAYS, local_day_of_midnight, shift_days
from metrics.rollups import chain_counts

# A restriction to some customers: a queryset of customer primary keys, e.g.
# ``Message.objects.filter(campaign=c, status="held_out").values("customer_id")``. It is used as a
# subquery, so the restriction never leaves the database.
CustomerIds: TypeAlias = QuerySet[Model, Any]


@dataclass(frozen=True)
class Retention:
    start: dt.datetime
    end: dt.datetime
    window_days: int
    customers_start: int
    customers_end: int
    new_customers: int
    retained: int
    reactivated: int
    lost: int

    @property
    def crr(self) -> float | None:
        """|active(end) - new| / S: the retained plus the reactivated, over S."""
        if not self.customers_start:
            return None
        return (self.retained + self.reactivated) / self.customers_start

    @property
    def churn_rate(self) -> float | None:
        return self.lost / self.customers_start if self.customers_start else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "window_days": self.window_days,
            "customers_start": self.customers_start,
            "customers_end": self.customers_end,
            "new_customers": self.new_customers,
            "retained": self.retained,
            "reactivated": self.reactivated,
            "lost": self.lost,
            "crr": self.crr,
            "churn_rate": self.churn_rate,
        }


def completed_purchases(customer_ids: CustomerIds | None = None) -> QuerySet[Purchase]:
    purchases = Purchase.objects.filter(status=PurchaseStatus.COMPLETED)
    if customer_ids is not None:
        purchases = purchases.filter(customer_id__in=customer_ids)
    return purchases.order_by()


def _flag(condition: Q) -> Max:
    """1 if any of the customer's rows meets the condition (the ORM's portable spelling of bool_or)."""
    return Max(Case(When(condition, then=Value(1)), default=Value(0), output_field=IntegerField()))


def retention(
    *,
    start: dt.datetime,
    end: dt.datetime,
    window_days: int = DEFAULT_WINDOW_DAYS,
    customer_ids: CustomerIds | None = None,
) -> Retention:
    """The SPEC §5 retention table for ``[start, end)``.

    ``customer_ids`` restricts every count to those customers (a campaign's treated or control
    group); without it the whole shop counts. Read off the day-chain rollup when it can answer
    (the whole shop, store-local midnights, a period no longer than the window), else computed
    from the purchases (``retention_live``, the reference the rollup is tested against).
    """
    if customer_ids is None:
        fast = retention_from_rollups(start=start, end=end, window_days=window_days)
        if fast is not None:
            return fast
    return retention_live(start=start, end=end, window_days=window_days, customer_ids=customer_ids)


def _new_customers(start: dt.datetime, end: dt.datetime, customer_ids: CustomerIds | None) -> QuerySet[Customer]:
    new = Customer.objects.filter(first_purchase_at__gte=start, first_purchase_at__lt=end)
    return new if customer_ids is None else new.filter(pk__in=customer_ids)


def retention_from_rollups(*, start: dt.datetime, end: dt.datetime, window_days: int) -> Retention | None:
    """``retention`` from the day chain in one indexed read, or None when the rollup cannot answer."""
    start_day, end_day = local_day_of_midnight(start), local_day_of_midnight(end)
    if start_day is None or end_day is None or shift_days(end, -window_days) > start:
        return None
    counts = chain_counts(start_day=start_day, end_day=end_day, window_days=window_days)
    if counts is None:
        return None
    # Every new customer bought in [start, end), inside the end window: all are active at end.
    new_customers = counts.new_customers
    retained = counts.active_start - counts.lost
    return Retention(
        start=start,
        end=end,
        window_days=window_days,
        customers_start=counts.active_start,
        customers_end=counts.active_end,
        new_customers=new_customers,
        retained=retained,
        reactivated=counts.active_end - retained - new_customers,
        lost=counts.lost,
    )


def retention_live(
    *,
    start: dt.datetime,
    end: dt.datetime,
    window_days: int = DEFAULT_WINDOW_DAYS,
    customer_ids: CustomerIds | None = None,
) -> Retention:
    """The retention table computed from the purchases, in two or three queries."""
    start_from = shift_days(start, -window_days)
    end_from = shift_days(end, -window_days)
    at_start = Q(placed_at__gte=start_from, placed_at__lt=start)
    at_end = Q(placed_at__gte=end_from, placed_at__lt=end)
    # When the windows touch or overlap, one range scan of the purchases-by-time index covers both.
    scanned = Q(placed_at__gte=start_from, placed_at__lt=end) if end_from <= start else at_start | at_end

    per_customer = (
        completed_purchases(customer_ids)
        .filter(scanned)
        .values("customer_id")
        .annotate(in_start=_flag(at_start), in_end=_flag(at_end))
    )
    # Aggregating over aggregates makes Django wrap the per-customer query in a subquery: one statement.
    counts = per_customer.aggregate(
        customers_start=Count("customer_id", filter=Q(in_start=1)),
        customers_end=Count("customer_id", filter=Q(in_end=1)),
        retained=Count("customer_id", filter=Q(in_start=1, in_end=1)),
        lost=Count("customer_id", filter=Q(in_start=1, in_end=0)),
        end_only=Count("customer_id", filter=Q(in_start=0, in_end=1)),
    )

    new = _new_customers(start, end, customer_ids)
    if end_from <= start:
        # Every new customer bought in [start, end), inside the end window: all are active at end.
        new_customers = new_active = new.count()
    else:
        active_at_end = completed_purchases().filter(at_end, customer_id=OuterRef("pk"))
        new_counts = new.aggregate(total=Count("pk"), active=Count("pk", filter=Exists(active_at_end)))
        new_customers, new_active = new_counts["total"], new_counts["active"]

    return Retention(
        start=start,
        end=end,
        window_days=window_days,
        customers_start=counts["customers_start"],
        customers_end=counts["customers_end"],
        new_customers=new_customers,
        retained=counts["retained"],
        # Active at end but not at start: either new in the period or back after a gap.
        reactivated=counts["end_only"] - new_active,
        lost=counts["lost"],
    )
