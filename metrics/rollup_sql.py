"""The SQL of the day rollups (``metrics.models.DayChain``, ``DayTotal``, ``DaySingle``): their parts
of the purchase trigger (metrics/rollup_triggers_sql.py), their rebuilds and their compaction.

The day chain holds, per pair of consecutive distinct purchase days of a customer, how many
customers bought on the first and next on the second; the trigger appends each statement's change
to ``DayChainDelta`` as the touched customers' pairs after the statement minus those before it, so
a backdated purchase, a refund, a changed date or a moved purchase come out exact by construction.
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


def local_day(alias: str) -> str:
    return f"({alias}.placed_at AT TIME ZONE zone)::date"


def day_start(day: str) -> str:
    return f"({day}::timestamp AT TIME ZONE zone)"


def statement_rows(*, new_rows: bool, old_rows: bool, columns: str) -> str:
    """The statement's completed rows, +1 as they are now, -1 as they were (``columns`` over ``r``)."""
    rows = []
    if new_rows:
        rows.append(f"SELECT {columns.format(sign='1')} FROM new_rows r WHERE r.status = 'completed'")
    if old_rows:
        rows.append(f"SELECT {columns.format(sign='-1')} FROM old_rows r WHERE r.status = 'completed'")
    return " UNION ALL ".join(rows)


def totals_delta_sql(*, new_rows: bool, old_rows: bool) -> str:
    """Orders and revenue per day: additive, so read straight off the transition tables."""
    rows = statement_rows(
        new_rows=new_rows,
        old_rows=old_rows,
        columns=f"{local_day('r')} AS day, {{sign}} AS n, {{sign}} * r.total AS v",
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


# The purchase changes the trigger appended and the fold has not taken yet (metrics/rollup_triggers_sql.py).
PENDING_TABLE = "metrics_purchasechange"

# Every table a rebuild empties, the pending changes and the deltas first.
ROLLUP_TABLES = (
    PENDING_TABLE,
    "metrics_daychaindelta",
    "metrics_daychain",
    "metrics_daytotaldelta",
    "metrics_daytotal",
    "metrics_daysingledelta",
    "metrics_daysingle",
    "metrics_cohortcelldelta",
    "metrics_cohortcell",
)


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
