"""Segment flow (SPEC §5): how many customers moved from each RFM segment as of ``a`` to each as of ``b``.

Both sides are the history RFM's own as-of scores (``rfm.scored_sql``), so a cell's customers are
exactly those ``GET /metrics/rfm`` puts in that segment at each date. Every customer scored at
``a`` is scored at ``b`` too (a purchase before ``a`` is one before ``b``), so the flow is the
customers scored at ``b`` left-joined to their scores at ``a``; the unmatched ones, with no
completed purchase before ``a``, come from ``NONE``. Rows therefore sum to the counts at ``a``
(``NONE``: the customers new since) and columns to the counts at ``b``.
"""

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import connection
from django.utils import timezone

from customers.models import Customer
from metrics import rfm
from metrics.periods import parse_moment, shift_days
from metrics.retention import CustomerIds
from retention_crm.errors import ApplicationError
from retention_crm.money import money

NONE = "none"
FROM_SEGMENTS: tuple[str, ...] = (NONE, *rfm.SEGMENTS)
DEFAULT_FLOW_DAYS = 90  # a quarter: the span a marketer compares by default


@dataclass(frozen=True)
class FlowDates:
    start: dt.datetime  # a
    end: dt.datetime  # b


@dataclass(frozen=True)
class SegmentFlow:
    start: dt.datetime
    end: dt.datetime
    # {segment at a (or NONE): {segment at b: customers}}, every cell present, zeros included.
    flow: dict[str, dict[str, int]]

    def row_totals(self) -> dict[str, int]:
        return {source: sum(cells.values()) for source, cells in self.flow.items()}

    def column_totals(self) -> dict[str, int]:
        return {target: sum(cells[target] for cells in self.flow.values()) for target in rfm.SEGMENTS}

    @property
    def customers(self) -> int:
        return sum(self.row_totals().values())

    def as_dict(self) -> dict[str, Any]:
        return {"from": self.start, "to": self.end, "flow": self.flow}


def parse_flow_dates(start: Any, end: Any) -> FlowDates:
    """``from`` and ``to``: dates (midnight, store time) or ISO datetimes, ``from`` before ``to``,
    neither in the future. ``to`` defaults to now (to the minute: repeated asks within a minute name
    the same flow, which a worker computes once on a large shop), ``from`` to ``DEFAULT_FLOW_DAYS``
    before ``to``."""
    now = timezone.now()
    end_at = now.replace(second=0, microsecond=0) if end in (None, "") else parse_moment(end, "to")
    start_at = shift_days(end_at, -DEFAULT_FLOW_DAYS) if start in (None, "") else parse_moment(start, "from")
    if end_at > now:
        # Scores as of a moment still to come would change as purchases arrive: not a figure yet.
        raise ApplicationError(
            "to must not be in the future.", code="invalid", fields={"to": ["must not be in the future"]}
        )
    if start_at >= end_at:
        raise ApplicationError("from must be before to.", code="invalid", fields={"from": ["must be before to"]})
    return FlowDates(start=start_at, end=end_at)


def _pairs_sql(
    *, start: dt.datetime, end: dt.datetime, customer_ids: CustomerIds | None
) -> tuple[str, tuple[Any, ...]]:
    """SELECT id, external_id, from_segment, to_segment for every customer scored at ``end``."""
    at_end, end_params = rfm.scored_sql(as_of=end, customer_ids=customer_ids)
    at_start, start_params = rfm.scored_sql(as_of=start, customer_ids=customer_ids)
    sql = (
        f"SELECT b.id, b.external_id, COALESCE(a.segment, '{NONE}') AS from_segment, b.segment AS to_segment "
        f"FROM ({at_end}) b LEFT JOIN ({at_start}) a ON a.id = b.id"
    )
    return sql, (*end_params, *start_params)


def segment_flow(*, start: dt.datetime, end: dt.datetime, customer_ids: CustomerIds | None = None) -> SegmentFlow:
    """Customers per (segment as of ``start``, segment as of ``end``), in one grouped statement
    (plus the two purchase-existence checks that pick each side's source)."""
    pairs, params = _pairs_sql(start=start, end=end, customer_ids=customer_ids)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT from_segment, to_segment, COUNT(*) FROM ({pairs}) pairs GROUP BY from_segment, to_segment",
            params,
        )
        found = {(source, target): n for source, target, n in cursor.fetchall()}
    flow = {source: {target: found.get((source, target), 0) for target in rfm.SEGMENTS} for source in FROM_SEGMENTS}
    return SegmentFlow(start=start, end=end, flow=flow)


@dataclass(frozen=True)
class FlowCustomer:
    """A customer of one cell, with their figures as they stand now (for the list, not the flow)."""

    customer_id: int
    external_id: str
    total_spent: Decimal
    last_purchase_at: dt.datetime | None
    points_balance: int

    @property
    def total_spent_text(self) -> str:
        return money(self.total_spent)


def flow_cell_page(
    *, start: dt.datetime, end: dt.datetime, from_segment: str, to_segment: str, offset: int, limit: int
) -> list[FlowCustomer]:
    """One page of the customers in one cell of the flow, ordered by external_id."""
    if from_segment not in FROM_SEGMENTS or to_segment not in rfm.SEGMENTS:
        raise ApplicationError(
            "Unknown segment.", code="invalid", fields={"segment": [f"one of {', '.join(FROM_SEGMENTS)}"]}
        )
    pairs, params = _pairs_sql(start=start, end=end, customer_ids=None)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT cu.id, cu.external_id, cu.total_spent, cu.last_purchase_at, cu.points_balance "
            f"FROM ({pairs}) pairs JOIN {Customer._meta.db_table} cu ON cu.id = pairs.id "
            "WHERE pairs.from_segment = %s AND pairs.to_segment = %s "
            "ORDER BY pairs.external_id LIMIT %s OFFSET %s",
            (*params, from_segment, to_segment, limit, offset),
        )
        return [FlowCustomer(*row) for row in cursor.fetchall()]
