"""Rollups: small tables the purchase triggers keep exact, so interactive reads never scan purchases.

``DayChain`` (metrics/models.py) holds, per pair of store-local days (d, n), how many customers
bought on d and next on n. For a store-local midnight t (its date T) and window W:

- active(t) = the pairs with T - W <= day < T <= next_day (each customer's last day before T);
- when the period [s, e) (dates S, E) is no longer than W, "lost" (active at s, not at e) = the
  pairs with S - W <= day < E - W and next_day >= E: the last purchase before e lies in the start
  window and nothing follows it before e.

The purchase trigger (metrics/rollup_triggers_sql.py) keeps the day totals' deltas and appends the
other changes to the pending table; ``rollups_fold`` turns those into the deltas (a task right after
writes commit, and the minute's compaction), ``rollups_compact`` folds the deltas into the rollups.
A read that finds changes pending folds them first, so every read is exact: as of its snapshot, or,
when writes commit while it folds, as of the fold's.
"""

import datetime as dt
import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper
from django.utils import timezone

from metrics.cohort_rollups import cohort_cells, cohort_cells_compact, cohort_cells_rebuild
from metrics.models import CHAIN_FIRST_DAY, RollupState
from metrics.rollup_fold import FOLD_LOCK, FOLD_WAIT_SECONDS, PENDING_CHECK, read_folded, rollups_fold
from metrics.rollup_sql import (
    REPEAT_MAX_PERIOD_DAYS,
    ROLLUP_TABLES,
    fold_sql,
    rebuild_sql,
    singles_rebuild_sql,
    totals_rebuild_sql,
)
from metrics.rollup_triggers_sql import ROLLUP_TRIGGERS

logger = logging.getLogger(__name__)

FIRST_DAY = dt.date.fromisoformat(CHAIN_FIRST_DAY)

COMPACT_LOCK = 72_101  # pg_try_advisory_xact_lock key: one compaction at a time


@dataclass(frozen=True)
class RebuildResult:
    pairs: int
    time_zone: str


def rollups_rebuild() -> RebuildResult:
    """Recompute the rollups from every purchase in the store's current TIME_ZONE.

    Purchase writes wait meanwhile (a SHARE lock: reads go on), so no change slips between the
    recomputation and the triggers taking over again."""
    zone = settings.TIME_ZONE
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [FOLD_LOCK])
        cursor.execute("LOCK TABLE customers_purchase IN SHARE MODE")
        for table in ROLLUP_TABLES:
            cursor.execute(f"DELETE FROM {table}")
        cursor.execute(rebuild_sql(), {"zone": zone})
        pairs = cursor.rowcount
        cursor.execute(totals_rebuild_sql(), {"zone": zone})
        cursor.execute(singles_rebuild_sql(), {"zone": zone})
        cohort_cells_rebuild(cursor, zone)
        cursor.execute(
            "INSERT INTO metrics_rollupstate (id, time_zone, built_at) VALUES (%s, %s, %s)"
            " ON CONFLICT (id) DO UPDATE SET time_zone = EXCLUDED.time_zone, built_at = EXCLUDED.built_at",
            [RollupState.SINGLETON_ID, zone, timezone.now()],
        )
    logger.info("metrics.rollups_rebuilt", extra={"pairs": pairs, "time_zone": zone})
    return RebuildResult(pairs=pairs, time_zone=zone)


_FOLDS = (
    fold_sql("metrics_daychaindelta", "metrics_daychain", "day, next_day", "customers"),
    fold_sql("metrics_daytotaldelta", "metrics_daytotal", "day", "orders, revenue"),
    fold_sql("metrics_daysingledelta", "metrics_daysingle", "day, gap_before, gap_after", "customers"),
)


def rollups_compact() -> int | None:
    """Fold the pending changes, then the committed deltas into the chain; returns how many delta
    rows it folded, or None when another compaction holds the lock. Deltas of writers still in
    flight stay for the next run."""
    rollups_fold()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [COMPACT_LOCK])
        if not cursor.fetchone()[0]:
            return None
        folded = 0
        for fold in _FOLDS:
            cursor.execute(fold)
            folded += cursor.fetchone()[0]
        cursor.execute("DELETE FROM metrics_daychain WHERE customers = 0")
        cursor.execute("DELETE FROM metrics_daysingle WHERE customers = 0")
        folded += cohort_cells_compact(cursor)
    return int(folded)


def rollups_current() -> bool:
    """Whether the rollups are built and in the store's time zone (else every read is live)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT time_zone FROM metrics_rollupstate WHERE id = %s", [RollupState.SINGLETON_ID])
        row = cursor.fetchone()
    return row is not None and row[0] == settings.TIME_ZONE


def rollups_triggers_disable(cursor: CursorWrapper) -> None:
    """For loaders that write purchases in bulk and call ``rollups_rebuild`` afterwards."""
    for name in ROLLUP_TRIGGERS:
        cursor.execute(f"ALTER TABLE customers_purchase DISABLE TRIGGER {name}")


def rollups_triggers_enable(cursor: CursorWrapper) -> None:
    for name in ROLLUP_TRIGGERS:
        cursor.execute(f"ALTER TABLE customers_purchase ENABLE TRIGGER {name}")


# --- Reads --------------------------------------------------------------------------------------------

_CHAIN = (
    "(SELECT day, next_day, customers FROM metrics_daychain"
    " UNION ALL SELECT day, next_day, customers FROM metrics_daychaindelta)"
)


_TOTALS = (
    "(SELECT day, orders, revenue FROM metrics_daytotal"
    " UNION ALL SELECT day, orders, revenue FROM metrics_daytotaldelta)"
)
_SINGLES = (
    "(SELECT day, gap_before, gap_after, customers FROM metrics_daysingle"
    " UNION ALL SELECT day, gap_before, gap_after, customers FROM metrics_daysingledelta)"
)


# Each rollup's rows, its deltas folded in: what the rebuild check compares with a recomputation.
_ROLLUP_ROWS = {
    "day chain": f"SELECT day, next_day, sum(customers) FROM {_CHAIN} r GROUP BY 1, 2 HAVING sum(customers) <> 0",
    "day totals": f"SELECT day, sum(orders), sum(revenue) FROM {_TOTALS} r GROUP BY 1"
    " HAVING sum(orders) <> 0 OR sum(revenue) <> 0",
    "single-order days": f"SELECT day, gap_before, gap_after, sum(customers) FROM {_SINGLES} r"
    " GROUP BY 1, 2, 3 HAVING sum(customers) <> 0",
}


def chain_pairs() -> list[tuple[dt.date, dt.date, int]]:
    """Every (day, next_day, customers) of the chain with its pending deltas folded in, in order."""
    rollups_fold(wait_seconds=FOLD_WAIT_SECONDS)
    with connection.cursor() as cursor:
        cursor.execute(f"{_ROLLUP_ROWS['day chain']} ORDER BY 1, 2")
        pairs: list[tuple[dt.date, dt.date, int]] = cursor.fetchall()
        return pairs


def rollup_rows() -> dict[str, list[tuple[Any, ...]]]:
    """Every rollup's rows with their pending deltas folded in, in order, by rollup name: what
    ``metrics_rollups_rebuild --check`` and the tests compare with a recomputation."""
    rollups_fold(wait_seconds=FOLD_WAIT_SECONDS)
    rows: dict[str, list[tuple[Any, ...]]] = {}
    with connection.cursor() as cursor:
        for name, sql in _ROLLUP_ROWS.items():
            cursor.execute(f"{sql} ORDER BY 1, 2, 3")
            rows[name] = cursor.fetchall()
    rows["cohort cells"] = cohort_cells()
    return rows


@dataclass(frozen=True)
class ChainCounts:
    active_start: int
    active_end: int
    lost: int
    new_customers: int


def chain_counts(*, start_day: dt.date, end_day: dt.date, window_days: int) -> ChainCounts | None:
    """active(start), active(end), for a period no longer than the window the lost, and the new
    customers (the chain's first pair ends in the period: the first completed purchase day): one
    statement, or None when the rollups are not in the store's zone."""
    window = dt.timedelta(days=window_days)
    s_from, e_from = start_day - window, end_day - window

    def read() -> tuple[tuple[Any, ...], bool]:
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {PENDING_CHECK}, (SELECT time_zone FROM metrics_rollupstate WHERE id = %s),"
                " coalesce(sum(customers) FILTER (WHERE day >= %s AND day < %s AND next_day >= %s), 0),"
                " coalesce(sum(customers) FILTER (WHERE day >= %s AND day < %s AND next_day >= %s), 0),"
                " coalesce(sum(customers) FILTER (WHERE day >= %s AND day < %s AND next_day >= %s), 0),"
                " coalesce(sum(customers) FILTER (WHERE day = %s AND next_day >= %s AND next_day < %s), 0)"
                f" FROM {_CHAIN} chain WHERE (day >= %s AND day < %s) OR day = %s",
                [
                    RollupState.SINGLETON_ID,
                    *(s_from, start_day, start_day),
                    *(e_from, end_day, end_day),
                    *(s_from, e_from, end_day),
                    *(FIRST_DAY, start_day, end_day),
                    min(s_from, e_from),
                    end_day,
                    FIRST_DAY,
                ],
            )
            pending, *row = cursor.fetchone()
        return tuple(row), pending

    row = read_folded(read)
    if row is None or row[0] != settings.TIME_ZONE:
        return None
    _zone, active_start, active_end, lost, new = row
    return ChainCounts(
        active_start=int(active_start), active_end=int(active_end), lost=int(lost), new_customers=int(new)
    )


@dataclass(frozen=True)
class PeriodCounts:
    buyers: int  # customers with a completed purchase in the period
    single_buyers: int | None  # of those, with exactly one order (None: period too long for the rollup)
    orders: int
    revenue: Decimal
    active_end: int
    buyers_before_end: int  # customers whose first completed purchase is before the end
    revenue_before_end: Decimal


def period_counts(*, start_day: dt.date, end_day: dt.date, window_days: int) -> PeriodCounts | None:
    """The summary's counts for the store-local days [start_day, end_day) from the chain, the day
    totals and the single-order days, in one statement; None when the rollups are not in the store's
    zone. Every completed purchase before the end is one of a customer whose first is before the end,
    so their spend is the revenue of all days before it."""
    e_from = end_day - dt.timedelta(days=window_days)
    fits = (end_day - start_day).days <= REPEAT_MAX_PERIOD_DAYS

    def read() -> tuple[tuple[Any, ...], bool]:
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {PENDING_CHECK}, (SELECT time_zone FROM metrics_rollupstate WHERE id = %(state)s),"
                " chain.*, totals.*,"
                " CASE WHEN %(fits)s THEN (SELECT coalesce(sum(customers), 0) FROM " + _SINGLES + " single"
                "   WHERE day >= %(s)s AND day < %(e)s AND gap_before > day - %(s)s AND gap_after >= %(e)s - day) END"
                " FROM (SELECT"
                "  coalesce(sum(customers) FILTER (WHERE day >= %(s)s AND next_day >= %(e)s), 0),"
                "  coalesce(sum(customers) FILTER (WHERE day >= %(e_from)s AND next_day >= %(e)s), 0),"
                "  coalesce(sum(customers) FILTER (WHERE day = %(first)s AND next_day < %(e)s), 0)"
                f"  FROM {_CHAIN} c WHERE (day >= least(%(s)s, %(e_from)s) AND day < %(e)s) OR day = %(first)s) chain,"
                " (SELECT coalesce(sum(orders) FILTER (WHERE day >= %(s)s), 0),"
                "  coalesce(sum(revenue) FILTER (WHERE day >= %(s)s), 0), coalesce(sum(revenue), 0)"
                f"  FROM {_TOTALS} t WHERE day < %(e)s) totals",
                {
                    "state": RollupState.SINGLETON_ID,
                    "fits": fits,
                    "s": start_day,
                    "e": end_day,
                    "e_from": e_from,
                    "first": FIRST_DAY,
                },
            )
            pending, *row = cursor.fetchone()
        return tuple(row), pending

    row = read_folded(read)
    if row is None or row[0] != settings.TIME_ZONE:
        return None
    _zone, buyers, active_end, buyers_before, orders, revenue, revenue_before, singles = row
    return PeriodCounts(
        buyers=int(buyers),
        single_buyers=None if singles is None else int(singles),
        orders=int(orders),
        revenue=Decimal(revenue),
        active_end=int(active_end),
        buyers_before_end=int(buyers_before),
        revenue_before_end=Decimal(revenue_before),
    )


def completed_orders_between(*, first_day: dt.date, end_day: dt.date) -> int | None:
    """Completed purchases placed on the store-local days [first_day, end_day): what a live read
    of that range scans (the dashboard's choice between computing now and in a worker). None when
    the rollups are not in the store's zone."""
    if not rollups_current():
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT coalesce(sum(orders), 0) FROM {_TOTALS} t WHERE day >= %s AND day < %s", [first_day, end_day]
        )
        return int(cursor.fetchone()[0])
