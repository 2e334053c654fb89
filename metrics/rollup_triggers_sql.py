"""The purchase trigger and the fold that keep every purchase rollup exact, in the database.

Statement triggers on ``customers_purchase`` (one per INSERT, UPDATE and DELETE, with their
transition tables) call ``metrics_purchases_changed()``. Every write path counts, whatever wrote
the rows (the services, the bulk path, an import, the admin, a factory in a test, plain SQL). The
trigger does only what is cheap, in the writer's transaction:

1. the day totals (orders, revenue): additive, read straight off the transition tables into their
   deltas;
2. the statement's completed rows that can change a day, appended to ``metrics_purchasechange``
   (customer, time, +1 as they are now / -1 as they were), a table without index or key.

The rest needs each touched customer's neighbouring purchases, about three index descents a
customer; it is ``metrics_purchase_changes_fold()``'s, run off the write path (metrics/rollups.py: a
task right after writes commit, the minute's compaction, and any read that finds changes pending).
One statement takes every pending row it sees and, per touched customer, widens each run of changed
days ("island", changed days less than two radii apart) by ``WINDOW_DAYS`` on each side and reads
it in one range of the customer's purchase index, giving each day's completed orders now; the
pending rows give them before. Then

- the day chain takes those days and, per island, the nearest unchanged purchase day below and
  above the window (one probe each): every pair that changed has both ends among them, and the
  pairs they form that are not in the chain are the same before and after, so they cancel;
- the single-order days take the window's days: a row that changes lies within the gap cap of a
  changed day and its gaps within the cap of that, all inside the window; rows farther out are the
  same before and after, so they cancel;
- the cohort cells take each changed month's first day before and after from the window (a month
  lies within the window of any of its days), and probe further only where a month's first day
  changed (metrics/cohort_rollup_sql.py).

Folding many writes at once is the same computation as folding them one by one: it depends only
on each customer-day's completed orders before and after.
"""

from metrics.cohort_rollup_sql import cells_delta_sql
from metrics.rollup_sql import (
    PENDING_TABLE,
    SINGLE_GAP_CAP,
    chain_pairs_sql,
    day_start,
    local_day,
    singles_sql,
    totals_delta_sql,
)

# A changed single-order row lies within the cap of a changed day, its neighbours within the cap of
# that: two caps cover both, and a month (at most 31 days) around any of its days.
WINDOW_DAYS = 2 * SINGLE_GAP_CAP

# An UPDATE's rows that can change a day: completed before or after, and a status, customer or time changed.
_UPDATED = (
    "o.id = n.id AND ((o.status = 'completed') <> (n.status = 'completed') OR (o.status = 'completed'"
    " AND (o.customer_id <> n.customer_id OR o.placed_at <> n.placed_at)))"
)


def _written(*, new_rows: bool, old_rows: bool) -> str:
    """(customer_id, placed_at, side) of the statement's completed rows that can change a day: +1 as
    they are now, -1 as they were."""
    if new_rows and old_rows:
        pairs = f"FROM old_rows o JOIN new_rows n ON {_UPDATED}"
        return (
            f"SELECT n.customer_id, n.placed_at, 1 AS side {pairs} WHERE n.status = 'completed'"
            f" UNION ALL SELECT o.customer_id, o.placed_at, -1 {pairs} WHERE o.status = 'completed'"
        )
    if new_rows:
        return "SELECT customer_id, placed_at, 1 AS side FROM new_rows WHERE status = 'completed'"
    return "SELECT customer_id, placed_at, -1 AS side FROM old_rows WHERE status = 'completed'"


_COMPLETED_OF = "FROM customers_purchase p WHERE p.customer_id = i.customer_id AND p.status = 'completed'"


def _shared_days(written: str) -> str:
    """The CTEs every rollup below reads: ``changed`` (customer_id, day, n), ``islands``
    (customer_id, lo, hi, changed_days) and ``days`` (customer_id, day, now_n, before_n)."""
    day = local_day("p")
    radius = WINDOW_DAYS
    return (
        f"w AS ({written}),"
        f" changed AS (SELECT customer_id, {local_day('w')} AS day, sum(side)::int AS n FROM w"
        "  GROUP BY 1, 2 HAVING sum(side) <> 0),"
        # An island starts where a changed day lies more than two radii after the customer's previous one.
        " marked AS (SELECT customer_id, day, CASE WHEN day - lag(day) OVER (PARTITION BY customer_id ORDER BY day)"
        f"  <= {2 * radius} THEN 0 ELSE 1 END AS starts FROM changed),"
        " numbered AS (SELECT customer_id, day,"
        "  sum(starts) OVER (PARTITION BY customer_id ORDER BY day) AS island FROM marked),"
        f" islands AS (SELECT customer_id, min(day) - {radius} AS lo, max(day) + {radius} AS hi FROM numbered"
        "  GROUP BY customer_id, island),"
        # Each window in one range of the customer's index, widened by a day on each side and the local
        # day filtered exactly, so whatever instant a daylight-saving gap at midnight maps to, no
        # purchase of the window is missed.
        " now_days AS (SELECT i.customer_id, x.day, count(*)::int AS orders FROM islands i CROSS JOIN LATERAL ("
        f"  SELECT {day} AS day {_COMPLETED_OF}"
        f"  AND p.placed_at >= {day_start('i.lo')} - interval '1 day'"
        f"  AND p.placed_at < {day_start('(i.hi + 1)')} + interval '1 day') x"
        "  WHERE x.day BETWEEN i.lo AND i.hi GROUP BY 1, 2),"
        " days AS (SELECT coalesce(d.customer_id, c.customer_id) AS customer_id, coalesce(d.day, c.day) AS day,"
        "  coalesce(d.orders, 0) AS now_n, coalesce(d.orders, 0) - coalesce(c.n, 0) AS before_n"
        "  FROM now_days d FULL JOIN changed c ON c.customer_id = d.customer_id AND c.day = d.day),"
    )


def _edges() -> str:
    """Per island, the nearest purchase day below and above its window that the statement did not
    change (a changed day of another island is among ``days`` anyway), one probe each."""
    day = local_day("p")
    unchanged = f"NOT {day} = ANY(k.changed_days)"
    return (
        " by_customer AS (SELECT customer_id, array_agg(day) AS changed_days FROM changed GROUP BY 1),"
        " edges AS (SELECT DISTINCT i.customer_id, x.day FROM islands i JOIN by_customer k USING (customer_id)"
        "  CROSS JOIN LATERAL ("
        f"  (SELECT {day} AS day {_COMPLETED_OF} AND p.placed_at < {day_start('(i.lo + 1)')} + interval '1 day'"
        f"   AND {day} < i.lo AND {unchanged} ORDER BY p.placed_at DESC LIMIT 1)"
        f"  UNION ALL (SELECT {day} {_COMPLETED_OF} AND p.placed_at >= {day_start('i.hi')} - interval '1 day'"
        f"   AND {day} > i.hi AND {unchanged} ORDER BY p.placed_at LIMIT 1)) x),"
    )


# An edge that is also a window day (of another island) comes twice with both signs: the pairs the
# repeat forms are the same before and after, so they cancel like the other unchanged ones.
_CHAIN_DAYS = (
    "SELECT customer_id, day, 1 AS sign FROM days WHERE now_n > 0"
    " UNION ALL SELECT customer_id, day, -1 FROM days WHERE before_n > 0"
    " UNION ALL SELECT e.customer_id, e.day, s.sign FROM edges e CROSS JOIN (VALUES (1), (-1)) s(sign)"
)
_SINGLE_DAYS = (
    "SELECT customer_id, day, now_n AS orders, 1 AS sign FROM days WHERE now_n > 0"
    " UNION ALL SELECT customer_id, day, before_n, -1 FROM days WHERE before_n > 0"
)
# Each changed month's first day before and after the statement, from the window's days.
_STATES = (
    " states AS (SELECT d.customer_id, m.month, min(d.day) FILTER (WHERE d.before_n > 0) AS before_day,"
    "  min(d.day) FILTER (WHERE d.now_n > 0) AS now_day"
    "  FROM (SELECT DISTINCT customer_id, date_trunc('month', day)::date AS month FROM changed) m"
    "  JOIN days d ON d.customer_id = m.customer_id AND date_trunc('month', d.day)::date = m.month"
    "  GROUP BY 1, 2),"
)


# The pending changes: what the trigger appends and the fold consumes. No index and no key: rows are
# only ever appended and then read and deleted all together.
CREATE_PENDING_TABLE = (
    f"CREATE TABLE {PENDING_TABLE} (customer_id bigint NOT NULL, placed_at timestamptz NOT NULL,"
    " side smallint NOT NULL)"
)


def _append(*, new_rows: bool, old_rows: bool) -> str:
    """The trigger's work: the day totals, and the statement's completed rows that can change a day
    appended to the pending changes."""
    written = _written(new_rows=new_rows, old_rows=old_rows)
    return totals_delta_sql(new_rows=new_rows, old_rows=old_rows) + (
        f" INSERT INTO {PENDING_TABLE} (customer_id, placed_at, side) SELECT customer_id, placed_at, side"
        f" FROM ({written}) w;"
    )


def _fold_statement() -> str:
    """One statement: take every pending change visible to it (deleting them) and append their
    effect on the day chain, the single-order days and the cohort cells to the deltas.

    The purchases it reads and the pending rows it takes are one snapshot, and a writer's purchases
    and pending rows commit together, so the purchases it reads are the rollups' state plus exactly
    the changes it takes: no lock of the customers is needed."""
    cohort_ctes, cells = cells_delta_sql("states")
    return (
        "WITH "
        + _shared_days(f"DELETE FROM {PENDING_TABLE} RETURNING customer_id, placed_at, side")
        + _edges()
        + " chain AS (INSERT INTO metrics_daychaindelta (day, next_day, customers) "
        + chain_pairs_sql(_CHAIN_DAYS)
        + "), singles AS (INSERT INTO metrics_daysingledelta (day, gap_before, gap_after, customers) "
        + singles_sql(_SINGLE_DAYS)
        + "),"
        + _STATES
        + cohort_ctes
        + ", cohorts AS (INSERT INTO metrics_cohortcelldelta (cohort_month, month, first_day, customers)"
        + cells
        + ") SELECT count(*) INTO folded FROM w;"
    )


TRIGGER_FUNCTION = (
    "CREATE OR REPLACE FUNCTION metrics_purchases_changed() RETURNS trigger LANGUAGE plpgsql AS $fn$"
    " DECLARE zone text;"
    " BEGIN"
    " SELECT time_zone INTO zone FROM metrics_rollupstate WHERE id = 1;"
    " IF zone IS NULL THEN RETURN NULL; END IF;"  # not built: nothing to keep current
    " IF TG_OP = 'INSERT' THEN " + _append(new_rows=True, old_rows=False) + ""
    " ELSIF TG_OP = 'UPDATE' THEN " + _append(new_rows=True, old_rows=True) + ""
    " ELSIF TG_OP = 'DELETE' THEN " + _append(new_rows=False, old_rows=True) + ""
    " END IF;"
    " RETURN NULL;"
    " END $fn$"
)

# Returns how many pending rows it took. The caller holds the fold lock (metrics/rollups.py).
FOLD_FUNCTION = (
    # JIT costs more than this statement takes; a minute's changes sort in 64 MB.
    "CREATE OR REPLACE FUNCTION metrics_purchase_changes_fold() RETURNS bigint LANGUAGE plpgsql"
    " SET jit = off SET work_mem = '64MB' AS $fn$"
    " DECLARE zone text; folded bigint;"
    " BEGIN"
    " SELECT time_zone INTO zone FROM metrics_rollupstate WHERE id = 1;"
    f" IF zone IS NULL THEN DELETE FROM {PENDING_TABLE}; RETURN 0; END IF;"
    " " + _fold_statement() + " RETURN folded;"
    " END $fn$"
)

# Emptying the purchases empties the rollups (TRUNCATE fires no row or statement triggers).
TRUNCATE_FUNCTION = (
    "CREATE OR REPLACE FUNCTION metrics_purchases_truncated() RETURNS trigger LANGUAGE plpgsql AS $fn$"
    f" BEGIN DELETE FROM {PENDING_TABLE}; DELETE FROM metrics_daychaindelta; DELETE FROM metrics_daychain;"
    " DELETE FROM metrics_daytotaldelta; DELETE FROM metrics_daytotal;"
    " DELETE FROM metrics_daysingledelta; DELETE FROM metrics_daysingle;"
    " DELETE FROM metrics_cohortcelldelta; DELETE FROM metrics_cohortcell; RETURN NULL; END $fn$"
)

# The statement triggers, for loaders that write purchases in bulk and rebuild afterwards.
ROLLUP_TRIGGERS = ("purchase_rollups_inserted", "purchase_rollups_updated", "purchase_rollups_deleted")

CREATE_TRIGGERS = [
    TRIGGER_FUNCTION,
    FOLD_FUNCTION,
    TRUNCATE_FUNCTION,
    "CREATE TRIGGER purchase_rollups_inserted AFTER INSERT ON customers_purchase REFERENCING NEW TABLE AS new_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION metrics_purchases_changed()",
    "CREATE TRIGGER purchase_rollups_updated AFTER UPDATE ON customers_purchase"
    " REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION metrics_purchases_changed()",
    "CREATE TRIGGER purchase_rollups_deleted AFTER DELETE ON customers_purchase REFERENCING OLD TABLE AS old_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION metrics_purchases_changed()",
    "CREATE TRIGGER purchases_truncated AFTER TRUNCATE ON customers_purchase"
    " FOR EACH STATEMENT EXECUTE FUNCTION metrics_purchases_truncated()",
]

DROP_TRIGGERS = [
    "DROP TRIGGER IF EXISTS purchase_rollups_inserted ON customers_purchase",
    "DROP TRIGGER IF EXISTS purchase_rollups_updated ON customers_purchase",
    "DROP TRIGGER IF EXISTS purchase_rollups_deleted ON customers_purchase",
    "DROP TRIGGER IF EXISTS purchases_truncated ON customers_purchase",
    "DROP FUNCTION IF EXISTS metrics_purchases_changed()",
    "DROP FUNCTION IF EXISTS metrics_purchase_changes_fold()",
    "DROP FUNCTION IF EXISTS metrics_purchases_truncated()",
]

# What migrations 0003 and 0005 installed: one function per rollup family, each with its own lock and probes.
SEPARATE_TRIGGERS_DROP = [
    "DROP TRIGGER IF EXISTS purchase_days_inserted ON customers_purchase",
    "DROP TRIGGER IF EXISTS purchase_days_updated ON customers_purchase",
    "DROP TRIGGER IF EXISTS purchase_days_deleted ON customers_purchase",
    "DROP TRIGGER IF EXISTS purchases_truncated ON customers_purchase",
    "DROP TRIGGER IF EXISTS purchase_cohorts_inserted ON customers_purchase",
    "DROP TRIGGER IF EXISTS purchase_cohorts_updated ON customers_purchase",
    "DROP TRIGGER IF EXISTS purchase_cohorts_deleted ON customers_purchase",
    "DROP TRIGGER IF EXISTS purchases_truncated_cohorts ON customers_purchase",
    "DROP FUNCTION IF EXISTS metrics_purchase_days_changed()",
    "DROP FUNCTION IF EXISTS metrics_purchase_cohorts_changed()",
    "DROP FUNCTION IF EXISTS metrics_purchases_truncated()",
    "DROP FUNCTION IF EXISTS metrics_purchases_truncated_cohorts()",
]
