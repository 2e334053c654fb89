"""RFM counts and pages served from the nightly scores, without recomputing a quintile per request.

The nightly refresh (``metrics.churn_risk.customer_scores_refresh``) writes, in the one statement
that writes ``CustomerScore``:

* ``RfmSegmentCount``: customers per segment (all eight, zeros included) and the scores' as_of;
* ``RfmPagePosition``: each scored customer's place by external_id among all scored customers and
  within its segment, and its last completed purchase before the as_of.

A read is then one statement: the eight counts, and the page as a range of a position index joined
to the page's score and customer rows by primary key. One statement is one snapshot, so the counts
and the page always belong to the same night, also while a refresh commits. The positions are
ranked in the database's own collation, the same ``ORDER BY external_id`` the live page uses.
"""

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import connection

from customers.models import Customer
from metrics.models import CustomerScore, RfmPagePosition, RfmSegmentCount
from metrics.rfm import SEGMENTS, RfmRow

COUNTS = RfmSegmentCount._meta.db_table
POSITIONS = RfmPagePosition._meta.db_table
CENT = Decimal("0.01")


def store_sql(source: str, *, computed_at: dt.datetime) -> tuple[str, tuple[Any, ...]]:
    """The rest of a ``WITH`` whose CTE ``source`` holds the scored rows (id, external_id, last_at,
    segment): CTEs replacing the positions, then the final INSERT of the counts.

    The delete touches only customers not in ``source`` and the upsert only those in it, so the two
    never write one row twice in the statement. The upsert leaves a row whose place is unchanged
    alone (the usual night when new external ids sort last): no dead tuple, no index write. The
    counts are taken from ``source``, the rows whose places are stored.
    """
    sql = f"""
        , rfm_gone AS (
            DELETE FROM {POSITIONS} old
            WHERE NOT EXISTS (SELECT 1 FROM {source} s WHERE s.id = old.customer_id)
        ), rfm_placed AS (
            INSERT INTO {POSITIONS} (customer_id, rfm_segment, position, segment_position, last_purchase_at)
            SELECT s.id, s.segment,
                   ROW_NUMBER() OVER (ORDER BY s.external_id),
                   ROW_NUMBER() OVER (PARTITION BY s.segment ORDER BY s.external_id),
                   s.last_at
            FROM {source} s
            ON CONFLICT (customer_id) DO UPDATE SET
                rfm_segment = EXCLUDED.rfm_segment, position = EXCLUDED.position,
                segment_position = EXCLUDED.segment_position, last_purchase_at = EXCLUDED.last_purchase_at
            WHERE ({POSITIONS}.rfm_segment, {POSITIONS}.position, {POSITIONS}.segment_position,
                   {POSITIONS}.last_purchase_at)
                  IS DISTINCT FROM (EXCLUDED.rfm_segment, EXCLUDED.position, EXCLUDED.segment_position,
                                    EXCLUDED.last_purchase_at)
        )
        INSERT INTO {COUNTS} (segment, customers, computed_at)
        SELECT g.segment, COALESCE(n.customers, 0), %s
        FROM unnest(%s::varchar[]) AS g(segment)
        LEFT JOIN (SELECT s.segment, COUNT(*) AS customers FROM {source} s GROUP BY s.segment) n
             ON n.segment = g.segment
        ON CONFLICT (segment) DO UPDATE SET customers = EXCLUDED.customers, computed_at = EXCLUDED.computed_at
    """
    return sql, (computed_at, list(SEGMENTS))


@dataclass(frozen=True)
class StoredRfm:
    """Counts and one page, both as of the stored scores' ``as_of``."""

    as_of: dt.datetime
    counts: dict[str, int]
    rows: list[RfmRow]


def _page_sql(segment: str | None) -> str:
    """The page as a range of one position index: ``place > offset`` in order, at any depth."""
    place, where = ("segment_position", "pos.rfm_segment = %s AND ") if segment else ("position", "")
    return f"""
        SELECT pos.{place} AS place, cu.external_id, pos.last_purchase_at, sc.recency_days, sc.frequency,
               sc.monetary, sc.r_score, sc.f_score, sc.m_score, sc.rfm_segment
        FROM {POSITIONS} pos
        JOIN {CustomerScore._meta.db_table} sc ON sc.customer_id = pos.customer_id
        JOIN {Customer._meta.db_table} cu ON cu.id = pos.customer_id
        WHERE {where}pos.{place} > %s
        ORDER BY pos.{place}
        LIMIT %s
    """


def stored_rfm(
    *, offset: int, limit: int, segment: str | None = None, as_of: dt.datetime | None = None
) -> StoredRfm | None:
    """The stored counts and page (ordered by external_id, optionally one segment), in one query.

    ``as_of`` None takes the latest scores; a given ``as_of`` is served only when it is exactly the
    stored scores' as_of. None when there is nothing stored to serve (no refresh yet, or another
    moment): the caller computes live.
    """
    moment, moment_params = ("WHERE computed_at = %s", (as_of,)) if as_of is not None else ("", ())
    page_params = (segment, offset, limit) if segment else (offset, limit)
    sql = f"""
        SELECT c.computed_at, c.segments, c.customers, p.*
        FROM (SELECT MAX(computed_at) AS computed_at, array_agg(segment) AS segments,
                     array_agg(customers) AS customers
              FROM {COUNTS} {moment}) c
        LEFT JOIN LATERAL ({_page_sql(segment)}) p ON c.computed_at IS NOT NULL
        ORDER BY p.place
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, (*moment_params, *page_params))
        rows = cursor.fetchall()
    computed_at, segments, customers = rows[0][:3]
    if computed_at is None:
        return None
    found = dict(zip(segments, customers, strict=True))
    return StoredRfm(
        as_of=computed_at,
        counts={name: found.get(name, 0) for name in SEGMENTS},
        rows=[_row(row[4:]) for row in rows if row[3] is not None],
    )


def _row(values: tuple[Any, ...]) -> RfmRow:
    external_id, last, recency, frequency, monetary, r, f, m, segment = values
    return RfmRow(
        external_id=external_id,
        last_purchase_at=last,
        recency_days=recency,
        frequency=frequency,
        monetary=Decimal(monetary).quantize(CENT),
        r=r,
        f=f,
        m=m,
        segment=segment,
    )


def stored_counts() -> tuple[dict[str, int], dt.datetime] | None:
    """The stored customers per segment and their as_of (eight rows), or None before any refresh."""
    rows = list(RfmSegmentCount.objects.values_list("segment", "customers", "computed_at"))
    if not rows:
        return None
    found = {segment: customers for segment, customers, _ in rows}
    return {name: found.get(name, 0) for name in SEGMENTS}, max(at for _, _, at in rows)
