"""RFM: recency, frequency and monetary value per customer as of a moment, scored 1-5 by quintile.

Scores are ``NTILE(5)`` over every customer with a completed purchase before ``as_of``, 5 best:
R orders by the last purchase time (most recent = 5), F by order count, M by spend. NTILE splits
ties arbitrarily, so each ordering ends with the other measures and then ``external_id``: the
same history gives the same scores whatever order it was inserted in.

Segments come from R and FM = round-half-up((F + M) / 2) through ``SEGMENT_GRID``, a documented
map (docs/METRICS.md) written once here and turned into SQL by ``segment_sql``.
"""

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import Count, F, Max, Sum

from customers.models import Customer, Purchase, PurchaseStatus
from metrics.models import RfmSegment
from metrics.periods import store_tz
from metrics.retention import CustomerIds

QUINTILES = 5
S = RfmSegment
# Rows: R score 5 (bought most recently) down to 1. Columns: FM score 1 to 5.
SEGMENT_GRID: dict[int, tuple[str, str, str, str, str]] = {
    5: (S.NEW, S.POTENTIAL_LOYALIST, S.POTENTIAL_LOYALIST, S.CHAMPIONS, S.CHAMPIONS),
    4: (S.NEW, S.POTENTIAL_LOYALIST, S.POTENTIAL_LOYALIST, S.LOYAL, S.CHAMPIONS),
    3: (S.HIBERNATING, S.HIBERNATING, S.POTENTIAL_LOYALIST, S.LOYAL, S.LOYAL),
    2: (S.LOST, S.HIBERNATING, S.AT_RISK, S.AT_RISK, S.CANNOT_LOSE),
    1: (S.LOST, S.LOST, S.AT_RISK, S.CANNOT_LOSE, S.CANNOT_LOSE),
}
SEGMENTS: tuple[str, ...] = tuple(S.values)


def fm_score(f: int, m: int) -> int:
    return (f + m + 1) // 2


def segment_of(r: int, f: int, m: int) -> str:
    return SEGMENT_GRID[r][fm_score(f, m) - 1]


def segment_sql(r: str = "r", f: str = "f", m: str = "m") -> str:
    """The grid as one SQL CASE over integer score columns (integer division on both databases)."""
    whens = " ".join(
        f"WHEN {r_score * 10 + fm} THEN '{SEGMENT_GRID[r_score][fm - 1]}'"
        for r_score in SEGMENT_GRID
        for fm in range(1, QUINTILES + 1)
    )
    return f"CASE {r} * 10 + ({f} + {m} + 1) / 2 {whens} END"


def stats_serve(as_of: dt.datetime) -> bool:
    """True when no completed purchase is placed at or after ``as_of``: then the kept-current
    customer stats are exactly the history before ``as_of`` and no purchase needs re-reading."""
    return not Purchase.objects.filter(status=PurchaseStatus.COMPLETED, placed_at__gte=as_of).exists()


def _source_sql(*, as_of: dt.datetime, customer_ids: CustomerIds | None) -> tuple[str, tuple[Any, ...]]:
    """id, external_id, last_at, frequency, monetary of every customer with a completed purchase
    before ``as_of``: from the customer stats when they serve, else aggregated from purchases."""
    if stats_serve(as_of):
        customers = Customer.objects.filter(first_purchase_at__lt=as_of)
        if customer_ids is not None:
            customers = customers.filter(pk__in=customer_ids)
        source = customers.annotate(
            last_at=F("last_purchase_at"), frequency=F("orders_count"), monetary=F("total_spent")
        ).values("id", "external_id", "last_at", "frequency", "monetary")
        sql, params = source.query.sql_with_params()
        return sql, tuple(params)
    purchases = Purchase.objects.filter(status=PurchaseStatus.COMPLETED, placed_at__lt=as_of)
    if customer_ids is not None:
        purchases = purchases.filter(customer_id__in=customer_ids)
    per_customer = (
        purchases.order_by()
        .values("customer_id")
        # COUNT(*), not of the id: the customer index carries status and total, so it alone answers.
        .annotate(last_at=Max("placed_at"), frequency=Count("*"), monetary=Sum("total"))
    )
    sql, params = per_customer.query.sql_with_params()
    # Aggregate the purchases first and join the customers' external ids after: joining first
    # would carry every purchase row through the join (twice as slow at 10M purchases).
    table = Customer._meta.db_table
    columns = "c.id, c.external_id, p.last_at, p.frequency, p.monetary"
    return f"SELECT {columns} FROM ({sql}) p JOIN {table} c ON c.id = p.customer_id", tuple(params)


def scored_sql(*, as_of: dt.datetime, customer_ids: CustomerIds | None = None) -> tuple[str, tuple[Any, ...]]:
    """SELECT id, external_id, last_at, frequency, monetary, r, f, m, segment for every scored customer.

    Plain SQL around the ORM's source query: window results can be neither grouped nor filtered
    in the SELECT that computes them, and the segment needs all three.
    """
    source, params = _source_sql(as_of=as_of, customer_ids=customer_ids)
    scored = (
        f"SELECT src.*, "
        f"NTILE({QUINTILES}) OVER (ORDER BY src.last_at, src.external_id) AS r, "
        f"NTILE({QUINTILES}) OVER (ORDER BY src.frequency, src.monetary, src.external_id) AS f, "
        f"NTILE({QUINTILES}) OVER (ORDER BY src.monetary, src.frequency, src.external_id) AS m "
        f"FROM ({source}) src"
    )
    return f"SELECT s.*, {segment_sql('s.r', 's.f', 's.m')} AS segment FROM ({scored}) s", params


@dataclass(frozen=True)
class RfmRow:
    external_id: str
    last_purchase_at: dt.datetime
    recency_days: int
    frequency: int
    monetary: Decimal
    r: int
    f: int
    m: int
    segment: str

    @property
    def score(self) -> str:
        return f"{self.r}{self.f}{self.m}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "customer": self.external_id,
            "last_purchase_at": self.last_purchase_at,
            "recency_days": self.recency_days,
            "frequency": self.frequency,
            "monetary": self.monetary,
            "r": self.r,
            "f": self.f,
            "m": self.m,
            "score": self.score,
            "segment": self.segment,
        }


def recency_days(last: dt.datetime, as_of: dt.datetime) -> int:
    """Whole store-calendar days from the day of the last purchase to the day of ``as_of``."""
    tz = store_tz()
    return (as_of.astimezone(tz).date() - last.astimezone(tz).date()).days


def segment_counts(*, as_of: dt.datetime, customer_ids: CustomerIds | None = None) -> dict[str, int]:
    """Customers per segment (every segment present, zeros included), in two queries."""
    sql, params = scored_sql(as_of=as_of, customer_ids=customer_ids)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT segment, COUNT(*) FROM ({sql}) scored GROUP BY segment", params)
        found = dict(cursor.fetchall())
    return {segment: found.get(segment, 0) for segment in SEGMENTS}


def scored_page(
    *,
    as_of: dt.datetime,
    offset: int,
    limit: int,
    segment: str | None = None,
    customer_ids: CustomerIds | None = None,
) -> list[RfmRow]:
    """One page of per-customer scores, ordered by external_id, optionally one segment only."""
    sql, params = scored_sql(as_of=as_of, customer_ids=customer_ids)
    where, extra = ("WHERE segment = %s", (segment,)) if segment else ("", ())
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT * FROM ({sql}) scored {where} ORDER BY external_id LIMIT %s OFFSET %s",
            (*params, *extra, limit, offset),
        )
        rows = cursor.fetchall()
    return [
        RfmRow(
            external_id=external_id,
            last_purchase_at=last,
            recency_days=recency_days(last, as_of),
            frequency=frequency,
            monetary=Decimal(monetary).quantize(Decimal("0.01")),
            r=r,
            f=f,
            m=m,
            segment=segment_name,
        )
        for _, external_id, last, frequency, monetary, r, f, m, segment_name in rows
    ]
