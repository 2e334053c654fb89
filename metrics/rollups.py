"""Rollups: small tables the purchase triggers keep exact, so interactive reads never scan purchases.

``DayChain`` (metrics/models.py) holds, per pair of store-local days (d, n), how many customers
bought on d and next on n. For a store-local midnight t (its date T) and window W:

- active(t) = the pairs with T - W <= day < T <= next_day (each customer's last day before T);
- when the period [s, e) (dates S, E) is no longer than W, "lost" (active at s, not at e) = the
  pairs with S - W <= day < E - W and next_day >= E: the last purchase before e lies in the start
  window and nothing follows it before e.

The triggers (metrics/rollup_sql.py) append changes to ``DayChainDelta``; ``rollups_compact`` folds
them in (a beat task, every minute). Readers sum both, so every read is exact at its snapshot.
"""

import datetime as dt
import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from metrics.models import CHAIN_FIRST_DAY, RollupState
from metrics.rollup_sql import DAY_TRIGGERS, rebuild_sql

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
        cursor.execute("LOCK TABLE customers_purchase IN SHARE MODE")
        cursor.execute("DELETE FROM metrics_daychaindelta")
        cursor.execute("DELETE FROM metrics_daychain")
        cursor.execute(rebuild_sql(), {"zone": zone})
        pairs = cursor.rowcount
        cursor.execute(
            "INSERT INTO metrics_rollupstate (id, time_zone, built_at) VALUES (%s, %s, %s)"
            " ON CONFLICT (id) DO UPDATE SET time_zone = EXCLUDED.time_zone, built_at = EXCLUDED.built_at",
            [RollupState.SINGLETON_ID, zone, timezone.now()],
        )
    logger.info("metrics.rollups_rebuilt", extra={"pairs": pairs, "time_zone": zone})
    return RebuildResult(pairs=pairs, time_zone=zone)


def rollups_compact() -> int | None:
    """Fold the committed deltas into the chain; returns how many delta rows it folded, or None
    when another compaction holds the lock. Deltas of writers still in flight stay for the next run."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [COMPACT_LOCK])
        if not cursor.fetchone()[0]:
            return None
        cursor.execute(
            "WITH moved AS (DELETE FROM metrics_daychaindelta RETURNING day, next_day, customers),"
            " summed AS (SELECT day, next_day, sum(customers) AS customers, count(*) AS rows FROM moved"
            "   GROUP BY day, next_day),"
            " folded AS (INSERT INTO metrics_daychain (day, next_day, customers)"
            "   SELECT day, next_day, customers FROM summed"
            "   ON CONFLICT (day, next_day) DO UPDATE SET customers = metrics_daychain.customers + EXCLUDED.customers)"
            " SELECT coalesce(sum(rows), 0) FROM summed"
        )
        folded = cursor.fetchone()[0]
        cursor.execute("DELETE FROM metrics_daychain WHERE customers = 0")
    return int(folded)


def rollups_current() -> bool:
    """Whether the rollups are built and in the store's time zone (else every read is live)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT time_zone FROM metrics_rollupstate WHERE id = %s", [RollupState.SINGLETON_ID])
        row = cursor.fetchone()
    return row is not None and row[0] == settings.TIME_ZONE


def rollups_triggers_disable(cursor) -> None:
    """For loaders that write purchases in bulk and call ``rollups_rebuild`` afterwards."""
    for name in DAY_TRIGGERS:
        cursor.execute(f"ALTER TABLE customers_purchase DISABLE TRIGGER {name}")


def rollups_triggers_enable(cursor) -> None:
    for name in DAY_TRIGGERS:
        cursor.execute(f"ALTER TABLE customers_purchase ENABLE TRIGGER {name}")


# --- Reads --------------------------------------------------------------------------------------------

_CHAIN = (
    "(SELECT day, next_day, customers FROM metrics_daychain"
    " UNION ALL SELECT day, next_day, customers FROM metrics_daychaindelta)"
)


def chain_pairs() -> list[tuple[dt.date, dt.date, int]]:
    """Every (day, next_day, customers) of the chain with its pending deltas folded in, in order
    (the rebuild check and the tests compare it)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT day, next_day, sum(customers) FROM {_CHAIN} chain"
            " GROUP BY day, next_day HAVING sum(customers) <> 0 ORDER BY day, next_day"
        )
        return cursor.fetchall()


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
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT time_zone FROM metrics_rollupstate WHERE id = %s),"
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
        zone, active_start, active_end, lost, new = cursor.fetchone()
    if zone != settings.TIME_ZONE:
        return None
    return ChainCounts(
        active_start=int(active_start), active_end=int(active_end), lost=int(lost), new_customers=int(new)
    )
