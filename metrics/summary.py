"""The period's commercial figures (SPEC §5): repeat purchase rate, frequency, AOV, ARPU, ARPPU, CLV, NPS."""

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db.models import Count, DecimalField, Q, Sum, Value
from django.db.models.functions import Coalesce

from customers.models import Customer, NpsResponse
from metrics.periods import DEFAULT_WINDOW_DAYS, local_day_of_midnight, shift_days
from metrics.retention import CustomerIds, completed_purchases
from metrics.rollups import period_counts

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
PROMOTER_MIN_SCORE = 9
DETRACTOR_MAX_SCORE = 6


def _money(value: Decimal | None) -> Decimal:
    return (value or ZERO).quantize(CENT, rounding=ROUND_HALF_UP)


def _ratio(numerator: Decimal, denominator: int) -> Decimal | None:
    return _money(numerator / denominator) if denominator else None


@dataclass(frozen=True)
class Nps:
    answers: int
    promoters: int
    passives: int
    detractors: int

    @property
    def score(self) -> float | None:
        """% promoters minus % detractors, from -100 to 100; None without answers."""
        if not self.answers:
            return None
        return 100 * (self.promoters - self.detractors) / self.answers


@dataclass(frozen=True)
class Summary:
    start: dt.datetime
    end: dt.datetime
    window_days: int
    purchasing_customers: int
    repeat_customers: int
    orders: int
    revenue: Decimal
    customers_end: int
    clv_customers: int
    clv_spend: Decimal
    nps: Nps

    @property
    def repeat_purchase_rate(self) -> float | None:
        return self.repeat_customers / self.purchasing_customers if self.purchasing_customers else None

    @property
    def purchase_frequency(self) -> float | None:
        return self.orders / self.purchasing_customers if self.purchasing_customers else None

    @property
    def aov(self) -> Decimal | None:
        return _ratio(self.revenue, self.orders)

    @property
    def arpu(self) -> Decimal | None:
        return _ratio(self.revenue, self.customers_end)

    @property
    def arppu(self) -> Decimal | None:
        """Revenue per paying customer: over the period's distinct purchasing customers, not the active ones."""
        return _ratio(self.revenue, self.purchasing_customers)

    @property
    def clv(self) -> Decimal | None:
        return _ratio(self.clv_spend, self.clv_customers)

    def as_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "window_days": self.window_days,
            "purchasing_customers": self.purchasing_customers,
            "repeat_customers": self.repeat_customers,
            "orders": self.orders,
            "revenue": self.revenue,
            "customers_end": self.customers_end,
            "repeat_purchase_rate": self.repeat_purchase_rate,
            "purchase_frequency": self.purchase_frequency,
            "aov": self.aov,
            "arpu": self.arpu,
            "arppu": self.arppu,
            "clv": self.clv,
            "clv_customers": self.clv_customers,
            "nps": self.nps.score,
            "nps_answers": self.nps.answers,
            "promoters": self.nps.promoters,
            "passives": self.nps.passives,
            "detractors": self.nps.detractors,
        }


MONEY: "DecimalField[Decimal, Decimal]" = DecimalField(max_digits=16, decimal_places=2)


def nps(*, start: dt.datetime, end: dt.datetime, customer_ids: CustomerIds | None = None) -> Nps:
    """Answers given in ``[start, end)``: promoters score 9-10, detractors 0-6. One query."""
    answers = NpsResponse.objects.filter(answered_at__gte=start, answered_at__lt=end)
    if customer_ids is not None:
        answers = answers.filter(customer_id__in=customer_ids)
    counts = answers.aggregate(
        answers=Count("pk"),
        promoters=Count("pk", filter=Q(score__gte=PROMOTER_MIN_SCORE)),
        detractors=Count("pk", filter=Q(score__lte=DETRACTOR_MAX_SCORE)),
    )
    return Nps(
        answers=counts["answers"],
        promoters=counts["promoters"],
        passives=counts["answers"] - counts["promoters"] - counts["detractors"],
        detractors=counts["detractors"],
    )


def summary(
    *,
    start: dt.datetime,
    end: dt.datetime,
    window_days: int = DEFAULT_WINDOW_DAYS,
    customer_ids: CustomerIds | None = None,
) -> Summary:
    """Figures over ``[start, end)``: read off the rollups when they can answer (the whole shop,
    store-local midnights), else computed from the purchases (``summary_live``, the reference)."""
    if customer_ids is None:
        fast = summary_from_rollups(start=start, end=end, window_days=window_days)
        if fast is not None:
            return fast
    return summary_live(start=start, end=end, window_days=window_days, customer_ids=customer_ids)


def repeat_customers_live(*, start: dt.datetime, end: dt.datetime) -> int:
    """Customers with two or more completed orders in ``[start, end)``: a scan of the period's purchases."""
    in_period = completed_purchases().filter(placed_at__gte=start, placed_at__lt=end)
    per_customer = in_period.values("customer_id").annotate(order_count=Count("pk"))
    repeat: int = per_customer.aggregate(repeat=Count("customer_id", filter=Q(order_count__gte=2)))["repeat"]
    return repeat


def summary_from_rollups(
    *, start: dt.datetime, end: dt.datetime, window_days: int, scan: bool = True
) -> Summary | None:
    """``summary`` from the day chain, the day totals and the single-order days in two statements
    (with NPS), or None when the rollups cannot answer. A period longer than
    ``REPEAT_MAX_PERIOD_DAYS`` reads its repeat customers from the purchases, or with ``scan``
    off answers None (the dashboard then computes it in a worker)."""
    start_day, end_day = local_day_of_midnight(start), local_day_of_midnight(end)
    if start_day is None or end_day is None or start_day > end_day:
        return None
    counts = period_counts(start_day=start_day, end_day=end_day, window_days=window_days)
    if counts is None or (counts.single_buyers is None and not scan):
        return None
    if counts.single_buyers is None:
        repeat = repeat_customers_live(start=start, end=end)
    else:
        repeat = counts.buyers - counts.single_buyers
    return Summary(
        start=start,
        end=end,
        window_days=window_days,
        purchasing_customers=counts.buyers,
        repeat_customers=repeat,
        orders=counts.orders,
        revenue=_money(counts.revenue),
        customers_end=counts.active_end,
        clv_customers=counts.buyers_before_end,
        clv_spend=_money(counts.revenue_before_end),
        nps=nps(start=start, end=end),
    )


def summary_live(
    *,
    start: dt.datetime,
    end: dt.datetime,
    window_days: int = DEFAULT_WINDOW_DAYS,
    customer_ids: CustomerIds | None = None,
) -> Summary:
    """Figures over ``[start, end)`` from the purchases, in four queries (period orders, active at
    end, CLV, NPS)."""
    in_period = completed_purchases(customer_ids).filter(placed_at__gte=start, placed_at__lt=end)
    per_customer = in_period.values("customer_id").annotate(order_count=Count("pk"), spent=Sum("total"))
    period = per_customer.aggregate(
        customers=Count("customer_id"),
        repeat=Count("customer_id", filter=Q(order_count__gte=2)),
        orders=Coalesce(Sum("order_count"), 0),
        revenue=Coalesce(Sum("spent"), Value(ZERO), output_field=MONEY),
    )

    customers_end = (
        completed_purchases(customer_ids)
        .filter(placed_at__gte=shift_days(end, -window_days), placed_at__lt=end)
        .aggregate(n=Count("customer_id", distinct=True))["n"]
    )

    # Historical CLV: every customer who had bought before `end`, with what they had spent by then.
    # The kept-current total_spent is right unless they bought again later, so subtract only
    # what was bought at or after `end` (few rows for a recent `end`) instead of summing all history.
    buyers = Customer.objects.filter(first_purchase_at__lt=end)
    later = completed_purchases(customer_ids).filter(placed_at__gte=end, customer__first_purchase_at__lt=end)
    if customer_ids is not None:
        buyers = buyers.filter(pk__in=customer_ids)
    spend_later = later.aggregate(s=Coalesce(Sum("total"), Value(ZERO), output_field=MONEY))["s"]
    clv = buyers.aggregate(n=Count("pk"), spent=Coalesce(Sum("total_spent"), Value(ZERO), output_field=MONEY))

    return Summary(
        start=start,
        end=end,
        window_days=window_days,
        purchasing_customers=period["customers"],
        repeat_customers=period["repeat"],
        orders=period["orders"],
        revenue=_money(period["revenue"]),
        customers_end=customers_end,
        clv_customers=clv["n"],
        clv_spend=_money(clv["spent"] - spend_later),
        nps=nps(start=start, end=end, customer_ids=customer_ids),
    )
