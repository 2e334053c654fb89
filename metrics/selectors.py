"""Reads of the stored metrics for other apps: the customer 360, audiences, the dashboard."""

import datetime as dt
from dataclasses import dataclass

from django.db.models import QuerySet

from customers.models import Customer
from metrics.models import CustomerScore, DailySnapshot
from metrics.rfm import SEGMENTS
from metrics.rfm_stored import stored_counts
from retention_crm.errors import ApplicationError


@dataclass(frozen=True)
class CustomerScores:
    rfm_segment: str
    rfm_score: str
    recency_days: int
    frequency: int
    churn_risk: float
    p_alive: float | None
    churn_model: str
    computed_at: dt.datetime


def customer_scores(customer: Customer) -> CustomerScores | None:
    """The customer's latest nightly scores; None before their first completed purchase is scored.

    One query, or none when the caller fetched ``select_related("score")``.
    """
    try:
        score = customer.score
    except CustomerScore.DoesNotExist:
        return None
    return CustomerScores(
        rfm_segment=score.rfm_segment,
        rfm_score=f"{score.r_score}{score.f_score}{score.m_score}",
        recency_days=score.recency_days,
        frequency=score.frequency,
        churn_risk=score.churn_risk,
        p_alive=score.p_alive,
        churn_model=score.churn_model,
        computed_at=score.computed_at,
    )


def customers_with_churn_risk_at_least(
    threshold: float, queryset: QuerySet[Customer] | None = None
) -> QuerySet[Customer]:
    """Customers whose stored churn risk is >= ``threshold`` (0..1): the churn_risk audience."""
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 <= threshold <= 1:
        raise ApplicationError(
            "threshold must be a number from 0 to 1.", code="invalid", fields={"threshold": ["must be from 0 to 1"]}
        )
    queryset = Customer.objects.all() if queryset is None else queryset
    return queryset.filter(score__churn_risk__gte=threshold)


def customers_in_rfm_segment(segment: str, queryset: QuerySet[Customer] | None = None) -> QuerySet[Customer]:
    """Customers whose stored RFM segment is ``segment`` (the campaigns' audience filter)."""
    if segment not in SEGMENTS:
        raise ApplicationError(
            f"Unknown RFM segment {segment!r}.", code="invalid", fields={"segment": [f"one of {', '.join(SEGMENTS)}"]}
        )
    queryset = Customer.objects.all() if queryset is None else queryset
    return queryset.filter(score__rfm_segment=segment)


@dataclass(frozen=True)
class StoredSegments:
    counts: dict[str, int]
    computed_at: dt.datetime | None


def stored_segment_sizes() -> StoredSegments:
    """Customers per segment as of the latest nightly scores: the counts the refresh stored with
    them (eight rows, one query), never a count over the score rows. Before the first refresh:
    zeros and ``computed_at`` None."""
    stored = stored_counts()
    if stored is None:
        return StoredSegments(counts=dict.fromkeys(SEGMENTS, 0), computed_at=None)
    counts, computed_at = stored
    return StoredSegments(counts=counts, computed_at=computed_at)


def snapshot_series(*, since: dt.date) -> list[DailySnapshot]:
    """Daily snapshots from ``since`` on, oldest first."""
    return list(DailySnapshot.objects.filter(date__gte=since).order_by("date"))
