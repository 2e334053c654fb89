"""The SQL that keeps the day-chain rollup (``metrics.models.DayChain``) exact, in the database.

Triggers on ``customers_purchase`` (one per INSERT, UPDATE and DELETE statement, with its
transition tables) append the change of every touched customer's chain to ``DayChainDelta``:
the customer's pairs of consecutive distinct purchase days after the statement, minus those
before it. Every write path counts, whatever wrote the rows (the services, the bulk path, an
import, the admin, a factory in a test, plain SQL), and a backdated purchase, a refund, a changed
date or a moved purchase come out exact by construction: a customer's chain is recomputed from
its own purchases, and pairs that did not change cancel out.

The touched customers are locked first (``FOR NO KEY UPDATE`` in id order, the purchase write
path's own lock), in a statement of their own, so the chain is read after any concurrent writer of
the same customer has committed: two writers never both read a chain without the other's days.
"""

# The longest period the repeat purchase rate is read off the single-order days for; their gaps are
# stored capped at one day more, which is all such a period can tell apart (metrics.models.DaySingle).
REPEAT_MAX_PERIOD_DAYS = 31
SINGLE_GAP_CAP = REPEAT_MAX_PERIOD_DAYS + 1

FIRST_DAY = "DATE '0001-01-01'"
LAST_DAY = "DATE '9999-12-31'"


def chain_pairs_sql(days: str) -> str:
    """``(day, next_day, customers)`` summed from ``days``, a query of distinct
    ``(customer_id, day, sign)``: each sign's pairs per customer, weighted by that sign."""
    return (
        f"WITH d AS ({days})"
        " SELECT day, next_day, sum(n) AS customers FROM ("
        f" SELECT lag(d.day, 1, {FIRST_DAY}) OVER w AS day, d.day AS next_day, d.sign AS n FROM d"
        "  WINDOW w AS (PARTITION BY d.customer_id, d.sign ORDER BY d.day)"
        f" UNION ALL SELECT max(d.day), {LAST_DAY}, d.sign FROM d GROUP BY d.customer_id, d.sign"
        ") pairs GROUP BY day, next_day HAVING sum(n) <> 0"
    )


def _local_day(alias: str) -> str:
    return f"({alias}.placed_at AT TIME ZONE zone)::date"


def _day_start(day: str) -> str:
    return f"({day}::timestamp AT TIME ZONE zone)"


# The purchases of customer ``c.customer_id`` near local day ``c.day``, read through the customer's
# purchase index. The range is widened by a day on each side and the local day filtered exactly,
# so whatever instant a daylight-saving gap at midnight maps to, no purchase of the day is missed.
_NEAR = (
    "FROM customers_purchase p WHERE p.customer_id = c.customer_id AND p.status = 'completed' AND p.placed_at {bound}"
)


def _days(*, new_rows: bool, old_rows: bool) -> str:
    """The chain days that can differ before and after the statement, per customer: +1 as they are
    now, -1 as they were before.

    Those are the changed days C (days of the statement's rows: a purchase in, out, or moved) and,
    for each, the nearest unchanged purchase day below and above it. Every pair of the chain that
    changed has both ends in that set, and pairs the set forms that are not in the chain are the
    same before and after, so they cancel: a few index probes per changed day, whatever the
    customer's history (ARCHITECTURE.md, "Metrics rollups").
    """
    rows = []
    if new_rows:
        rows.append(
            f"SELECT n.customer_id, {_local_day('n')} AS day, 1 AS n FROM new_rows n WHERE n.status = 'completed'"
        )
    if old_rows:
        rows.append(
            f"SELECT o.customer_id, {_local_day('o')} AS day, -1 AS n FROM old_rows o WHERE o.status = 'completed'"
        )
    day = _local_day("p")
    lower = _NEAR.format(bound=f"< {_day_start('(c.day + 1)')} + interval '1 day'") + f" AND {day} < c.day"
    upper = _NEAR.format(bound=f">= {_day_start('c.day')} - interval '1 day'") + f" AND {day} > c.day"
    unchanged = f" AND NOT {day} = ANY(c.changed_days)"
    return (
        "WITH changed AS ("
        " SELECT customer_id, day, sum(n) AS n FROM (" + " UNION ALL ".join(rows) + ") r GROUP BY 1, 2"
        "), by_customer AS (SELECT customer_id, array_agg(day) AS changed_days FROM changed GROUP BY 1"
        "), c AS (SELECT changed.*, b.changed_days FROM changed JOIN by_customer b USING (customer_id)"
        "), c_days AS ("
        " SELECT c.customer_id, c.day, k.n AS now_n, k.n - c.n AS before_n FROM c CROSS JOIN LATERAL ("
        "  SELECT count(*) AS n "
        + _NEAR.format(bound=f">= {_day_start('c.day')} - interval '1 day'")
        + f" AND p.placed_at < {_day_start('(c.day + 1)')} + interval '1 day' AND {day} = c.day) k"
        "), neighbours AS ("
        " SELECT DISTINCT c.customer_id, x.day FROM c CROSS JOIN LATERAL ("
        f"  (SELECT {day} AS day {lower}{unchanged} ORDER BY p.placed_at DESC LIMIT 1)"
        f"  UNION ALL (SELECT {day} {upper}{unchanged} ORDER BY p.placed_at LIMIT 1)"
        " ) x"
        ") SELECT customer_id, day, 1 AS sign FROM c_days WHERE now_n > 0"
        " UNION ALL SELECT customer_id, day, -1 FROM c_days WHERE before_n > 0"
        " UNION ALL SELECT customer_id, day, s.sign FROM neighbours CROSS JOIN (VALUES (1), (-1)) s(sign)"
    )


def _statement_rows(*, new_rows: bool, old_rows: bool, columns: str) -> str:
    """The statement's completed rows, +1 as they are now, -1 as they were (``columns`` over ``r``)."""
    rows = []
    if new_rows:
        rows.append(f"SELECT {columns.format(sign='1')} FROM new_rows r WHERE r.status = 'completed'")
    if old_rows:
        rows.append(f"SELECT {columns.format(sign='-1')} FROM old_rows r WHERE r.status = 'completed'")
    return " UNION ALL ".join(rows)


def _totals(*, new_rows: bool, old_rows: bool) -> str:
    """Orders and revenue per day: additive, so read straight off the transition tables."""
    rows = _statement_rows(
        new_rows=new_rows,
        old_rows=old_rows,
        columns=f"{_local_day('r')} AS day, {{sign}} AS n, {{sign}} * r.total AS v",
    )
    return (
        "INSERT INTO metrics_daytotaldelta (day, orders, revenue)"
        f" SELECT day, sum(n), sum(v) FROM ({rows}) r GROUP BY day HAVING sum(n) <> 0 OR sum(v) <> 0;"
    )


def singles_sql(days: str) -> str:
    """``(day, gap_before, gap_after, customers)`` from ``days``, a query of
    ``(customer_id, day, orders, sign)``: each sign's days of exactly one order, with the gaps to the
    neighbouring days of the same customer and sign, capped, weighted by the sign."""
    cap = SINGLE_GAP_CAP
    return (
        f"WITH d AS ({days}), g AS ("
        " SELECT d.day, d.orders, d.sign, d.day - lag(d.day) OVER w AS before, lead(d.day) OVER w - d.day AS after"
        " FROM d WINDOW w AS (PARTITION BY d.customer_id, d.sign ORDER BY d.day))"
        f" SELECT day, least(coalesce(before, {cap}), {cap}) AS gap_before,"
        f" least(coalesce(after, {cap}), {cap}) AS gap_after, sum(sign)::int AS customers"
        " FROM g WHERE orders = 1 GROUP BY 1, 2, 3 HAVING sum(sign) <> 0"
    )


def _single_days(*, new_rows: bool, old_rows: bool) -> str:
    """The days whose single-order rows can differ before and after the statement, per touched
    customer, with their order counts: +1 as they are now, -1 as they were before.

    Those are the changed days C and, within the gap cap of each, the nearest unchanged purchase day
    below and above it (whose gap to C changes); the days that set the other gap of those
    neighbours come along with count 0, so they bound a gap but never make a row of their own. Every
    row that changed is centred on one of these days and finds its neighbours among them; rows
    farther apart than the cap differ only in gaps that are capped anyway (ARCHITECTURE.md)."""
    changes = _statement_rows(
        new_rows=new_rows, old_rows=old_rows, columns=f"r.customer_id, {_local_day('r')} AS day, {{sign}} AS n"
    )
    cap = SINGLE_GAP_CAP
    day = _local_day("p")
    unchanged = f"NOT {day} = ANY(c.changed_days)"

    def nearest(anchor: str, *, below: bool) -> str:
        if below:
            bound = f"< {_day_start(f'({anchor} + 1)')} + interval '1 day'"
            bound += f" AND p.placed_at >= {_day_start(f'({anchor} - {cap})')} - interval '1 day'"
            where, order = f"{day} < {anchor} AND {day} >= {anchor} - {cap}", "DESC"
        else:
            bound = f">= {_day_start(anchor)} - interval '1 day'"
            bound += f" AND p.placed_at < {_day_start(f'({anchor} + {cap} + 1)')} + interval '1 day'"
            where, order = f"{day} > {anchor} AND {day} <= {anchor} + {cap}", ""
        return (
            f"(SELECT {day} {_NEAR.format(bound=bound)} AND {where} AND {unchanged}"
            f" ORDER BY p.placed_at {order} LIMIT 1)"
        )

    def orders_on(anchor: str) -> str:
        bound = f">= {_day_start(anchor)} - interval '1 day'"
        return (
            f"(SELECT count(*)::int {_NEAR.format(bound=bound)}"
            f" AND p.placed_at < {_day_start(f'({anchor} + 1)')} + interval '1 day' AND {day} = {anchor})"
        )

    return (
        f"WITH changed AS (SELECT customer_id, day, sum(n)::int AS n FROM ({changes}) r"
        " GROUP BY 1, 2 HAVING sum(n) <> 0),"
        " by_customer AS (SELECT customer_id, array_agg(day) AS changed_days FROM changed GROUP BY 1),"
        " c AS (SELECT changed.*, b.changed_days FROM changed JOIN by_customer b USING (customer_id)),"
        f" counted AS (SELECT c.customer_id, c.day, k.n AS now_n, k.n - c.n AS before_n"
        f"  FROM c CROSS JOIN LATERAL (SELECT {orders_on('c.day')} AS n) k),"
        " near AS ("
        "  SELECT c.customer_id, x.day, x.orders FROM c"
        f"  CROSS JOIN LATERAL (SELECT {nearest('c.day', below=True)} AS below,"
        f"   {nearest('c.day', below=False)} AS above OFFSET 0) one"  # OFFSET 0: probe once, not per use
        "  CROSS JOIN LATERAL ("
        f"   SELECT one.below AS day, {orders_on('one.below')} AS orders WHERE one.below IS NOT NULL"
        f"   UNION ALL SELECT one.above, {orders_on('one.above')} WHERE one.above IS NOT NULL"
        f"   UNION ALL SELECT {nearest('one.below', below=True)}, 0 WHERE one.below IS NOT NULL"
        f"   UNION ALL SELECT {nearest('one.above', below=False)}, 0 WHERE one.above IS NOT NULL"
        "  ) x WHERE x.day IS NOT NULL),"
        # A day can be one changed day's neighbour and another's bound: its real count wins.
        " neighbours AS (SELECT customer_id, day, max(orders) AS orders FROM near GROUP BY 1, 2)"
        " SELECT customer_id, day, now_n AS orders, 1 AS sign FROM counted WHERE now_n > 0"
        " UNION ALL SELECT customer_id, day, before_n, -1 FROM counted WHERE before_n > 0"
        " UNION ALL SELECT n.customer_id, n.day, n.orders, s.sign FROM neighbours n"
        " CROSS JOIN (VALUES (1), (-1)) s(sign)"
    )


def _apply(touched: str, *, new_rows: bool, old_rows: bool) -> str:
    return (
        _totals(new_rows=new_rows, old_rows=old_rows) + " IF EXISTS (" + touched + ") THEN"
        f" PERFORM 1 FROM customers_customer c WHERE c.id IN ({touched}) ORDER BY c.id FOR NO KEY UPDATE;"
        " INSERT INTO metrics_daychaindelta (day, next_day, customers) "
        + chain_pairs_sql(_days(new_rows=new_rows, old_rows=old_rows))
        + "; INSERT INTO metrics_daysingledelta (day, gap_before, gap_after, customers) "
        + singles_sql(_single_days(new_rows=new_rows, old_rows=old_rows))
        + "; END IF;"
    )


# Customers whose completed days a statement can have changed.
_INSERTED = "SELECT customer_id FROM new_rows WHERE status = 'completed'"
_DELETED = "SELECT customer_id FROM old_rows WHERE status = 'completed'"
_CHANGED = (
    "SELECT o.customer_id FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE {changed}"
    " UNION SELECT n.customer_id FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE {changed}"
).format(
    changed="((o.status = 'completed') <> (n.status = 'completed') OR (o.status = 'completed'"
    " AND (o.customer_id <> n.customer_id OR o.placed_at <> n.placed_at)))"
)

TRIGGER_FUNCTION = (
    # JIT costs more than these statements take; a batch's sorts fit in 32 MB.
    "CREATE OR REPLACE FUNCTION metrics_purchase_days_changed() RETURNS trigger LANGUAGE plpgsql"
    " SET jit = off SET work_mem = '32MB' AS $fn$"
    " DECLARE zone text;"
    " BEGIN"
    " SELECT time_zone INTO zone FROM metrics_rollupstate WHERE id = 1;"
    " IF zone IS NULL THEN RETURN NULL; END IF;"  # not built: nothing to keep current
    " IF TG_OP = 'INSERT' THEN " + _apply(_INSERTED, new_rows=True, old_rows=False) + ""
    " ELSIF TG_OP = 'UPDATE' THEN " + _apply(_CHANGED, new_rows=True, old_rows=True) + ""
    " ELSIF TG_OP = 'DELETE' THEN " + _apply(_DELETED, new_rows=False, old_rows=True) + ""
    " END IF;"
    " RETURN NULL;"
    " END $fn$"
)

# Emptying the purchases empties the chain (TRUNCATE fires no row or statement triggers).
TRUNCATE_FUNCTION = (
    "CREATE OR REPLACE FUNCTION metrics_purchases_truncated() RETURNS trigger LANGUAGE plpgsql AS $fn$"
    " BEGIN DELETE FROM metrics_daychaindelta; DELETE FROM metrics_daychain;"
    " DELETE FROM metrics_daytotaldelta; DELETE FROM metrics_daytotal;"
    " DELETE FROM metrics_daysingledelta; DELETE FROM metrics_daysingle; RETURN NULL; END $fn$"
)

CREATE_TRIGGERS = [
    TRIGGER_FUNCTION,
    TRUNCATE_FUNCTION,
    "CREATE TRIGGER purchase_days_inserted AFTER INSERT ON customers_purchase REFERENCING NEW TABLE AS new_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION metrics_purchase_days_changed()",
    "CREATE TRIGGER purchase_days_updated AFTER UPDATE ON customers_purchase"
    " REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION metrics_purchase_days_changed()",
    "CREATE TRIGGER purchase_days_deleted AFTER DELETE ON customers_purchase REFERENCING OLD TABLE AS old_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION metrics_purchase_days_changed()",
    "CREATE TRIGGER purchases_truncated AFTER TRUNCATE ON customers_purchase"
    " FOR EACH STATEMENT EXECUTE FUNCTION metrics_purchases_truncated()",
]

DROP_TRIGGERS = [
    "DROP TRIGGER IF EXISTS purchase_days_inserted ON customers_purchase",
    "DROP TRIGGER IF EXISTS purchase_days_updated ON customers_purchase",
    "DROP TRIGGER IF EXISTS purchase_days_deleted ON customers_purchase",
    "DROP TRIGGER IF EXISTS purchases_truncated ON customers_purchase",
    "DROP FUNCTION IF EXISTS metrics_purchase_days_changed()",
    "DROP FUNCTION IF EXISTS metrics_purchases_truncated()",
]

# Every table a rebuild empties, the deltas first (the cohort cells' are metrics/cohort_rollup_sql.py's).
ROLLUP_TABLES = (
    "metrics_daychaindelta",
    "metrics_daychain",
    "metrics_daytotaldelta",
    "metrics_daytotal",
    "metrics_daysingledelta",
    "metrics_daysingle",
    "metrics_cohortcelldelta",
    "metrics_cohortcell",
)

# The trigger names, for loaders that write purchases in bulk and rebuild afterwards.
DAY_TRIGGERS = ("purchase_days_inserted", "purchase_days_updated", "purchase_days_deleted")


def rebuild_sql() -> str:
    """Replace the chain with one computed from every completed purchase, in the zone ``%(zone)s``."""
    days = (
        "SELECT DISTINCT p.customer_id, (p.placed_at AT TIME ZONE %(zone)s)::date AS day, 1 AS sign"
        " FROM customers_purchase p WHERE p.status = 'completed'"
    )
    return "INSERT INTO metrics_daychain (day, next_day, customers) " + chain_pairs_sql(days)


def totals_rebuild_sql() -> str:
    """The day totals from every completed purchase, in the zone ``%(zone)s``."""
    return (
        "INSERT INTO metrics_daytotal (day, orders, revenue)"
        " SELECT (placed_at AT TIME ZONE %(zone)s)::date, count(*), sum(total)"
        " FROM customers_purchase WHERE status = 'completed' GROUP BY 1"
    )


def singles_rebuild_sql() -> str:
    """The single-order days from every completed purchase, in the zone ``%(zone)s``."""
    days = (
        "SELECT p.customer_id, (p.placed_at AT TIME ZONE %(zone)s)::date AS day, count(*)::int AS orders, 1 AS sign"
        " FROM customers_purchase p WHERE p.status = 'completed' GROUP BY 1, 2"
    )
    return "INSERT INTO metrics_daysingle (day, gap_before, gap_after, customers) " + singles_sql(days)


def fold_sql(delta: str, table: str, key: str, values: str) -> str:
    """Move the committed rows of ``delta`` into ``table`` (summed per ``key``); yields the count moved."""
    sums = ", ".join(f"sum({v}) AS {v}" for v in values.split(", "))
    adds = ", ".join(f"{v} = {table}.{v} + EXCLUDED.{v}" for v in values.split(", "))
    return (
        f"WITH moved AS (DELETE FROM {delta} RETURNING {key}, {values}),"
        f" summed AS (SELECT {key}, {sums}, count(*) AS rows FROM moved GROUP BY {key}),"
        f" folded AS (INSERT INTO {table} ({key}, {values}) SELECT {key}, {values} FROM summed"
        f"   ON CONFLICT ({key}) DO UPDATE SET {adds})"
        " SELECT coalesce(sum(rows), 0) FROM summed"
    )
