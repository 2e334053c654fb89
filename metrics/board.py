"""The lifecycle board: customers by RFM segment, the most spend at risk first, from the nightly scores.

Spend at risk = the customer's completed spend (as scored) x their churn risk: what the shop
stands to lose if they do not come back, so the first names in a column are the ones a campaign
should reach first. Every read is a range of ``score_segment_spend_at_risk_idx`` (metrics
migration 0009) joined to the customers by primary key, never a sort over a segment, so a
column's first page costs the same at ten customers or ten million. Pages go on by key (the last
row's spend at risk and id), not by offset, so a deep page is as cheap as the first.
"""

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import connection

from customers.models import Customer
from metrics.models import CustomerScore
from metrics.rfm import SEGMENTS
from metrics.rfm_stored import stored_counts
from retention_crm.money import money

SPEND_AT_RISK_INDEX = "score_segment_spend_at_risk_idx"
# The index's expression, exactly: the planner matches an expression index by its expression.
SPEND_AT_RISK_SQL = "(sc.monetary::double precision * sc.churn_risk)"
COLUMN_CUSTOMERS = 8  # shown per column on the board
PAGE_CUSTOMERS = 50  # per page of one segment
CENT = Decimal("0.01")


@dataclass(frozen=True)
class BoardCustomer:
    customer_id: int
    external_id: str
    spend_at_risk: float
    total_spent: Decimal
    last_purchase_at: dt.datetime | None
    points_balance: int
    churn_risk: float

    @property
    def spend_at_risk_text(self) -> str:
        return money(Decimal(str(self.spend_at_risk)).quantize(CENT))

    @property
    def total_spent_text(self) -> str:
        return money(self.total_spent)

    @property
    def after(self) -> str:
        """The key of the next page after this row: its spend at risk (round-trip exact) and id."""
        return f"{self.spend_at_risk!r}:{self.customer_id}"


@dataclass(frozen=True)
class BoardColumn:
    segment: str
    customers: int
    first: list[BoardCustomer]


@dataclass(frozen=True)
class Board:
    as_of: dt.datetime | None  # None before the first nightly refresh: nothing to show
    columns: list[BoardColumn]


def _rows_sql(where: str) -> str:
    """The rows of one segment in board order (the index range, backwards), with the customer's
    figures; ``where`` adds the key condition of a later page."""
    return f"""
        SELECT sc.customer_id, cu.external_id, {SPEND_AT_RISK_SQL} AS spend_at_risk, cu.total_spent,
               cu.last_purchase_at, cu.points_balance, sc.churn_risk
        FROM {CustomerScore._meta.db_table} sc
        JOIN {Customer._meta.db_table} cu ON cu.id = sc.customer_id
        WHERE sc.rfm_segment = %s {where}
        ORDER BY {SPEND_AT_RISK_SQL} DESC, sc.customer_id DESC
        LIMIT %s
    """


def _customer(row: tuple[Any, ...]) -> BoardCustomer:
    customer_id, external_id, at_risk, spent, last, points, risk = row
    return BoardCustomer(customer_id, external_id, at_risk, Decimal(spent).quantize(CENT), last, points, risk)


def board_columns(*, per_column: int = COLUMN_CUSTOMERS) -> Board:
    """Each segment's stored count and its first ``per_column`` customers: one query per segment,
    each one short index range (plus the eight stored counts)."""
    stored = stored_counts()
    if stored is None:
        return Board(as_of=None, columns=[BoardColumn(segment, 0, []) for segment in SEGMENTS])
    counts, as_of = stored
    columns = []
    with connection.cursor() as cursor:
        for segment in SEGMENTS:  # eight segments, not customers: a fixed number of statements
            cursor.execute(*_page_statement(segment, None, per_column))
            columns.append(BoardColumn(segment, counts[segment], [_customer(row) for row in cursor.fetchall()]))
    return Board(as_of=as_of, columns=columns)


def parse_after(value: str | None) -> tuple[float, int] | None:
    """The page key ``"<spend at risk>:<customer id>"`` from a link, or None (first page) when
    absent; a malformed one raises ValueError."""
    if not value:
        return None
    at_risk, _, customer_id = value.rpartition(":")
    return float(at_risk), int(customer_id)


def _page_statement(segment: str, after: tuple[float, int] | None, limit: int) -> tuple[str, tuple[Any, ...]]:
    if segment not in SEGMENTS:
        raise ValueError(f"unknown segment {segment!r}")
    if after is None:
        return _rows_sql(""), (segment, limit)
    # A row comparison the index range answers directly (scanned backwards for the order).
    return _rows_sql(f"AND ({SPEND_AT_RISK_SQL}, sc.customer_id) < (%s, %s)"), (segment, *after, limit)


def board_page(*, segment: str, after: tuple[float, int] | None, limit: int = PAGE_CUSTOMERS) -> list[BoardCustomer]:
    """One page of a segment in board order, starting after the key ``after`` (None: the first)."""
    sql, params = _page_statement(segment, after, limit)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [_customer(row) for row in cursor.fetchall()]


def board_page_plan(*, segment: str, after: tuple[float, int] | None) -> str:
    """EXPLAIN of ``board_page``'s statement: the tests check that it reads the index, not the segment."""
    sql, params = _page_statement(segment, after, PAGE_CUSTOMERS)
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(line for (line,) in cursor.fetchall())
