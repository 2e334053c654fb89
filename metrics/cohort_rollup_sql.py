"""The SQL that keeps the cohort-cell rollup (``metrics.models.CohortCell``) exact, in the database.

A customer's cells are (F, m, d) for every store-local month m with a completed purchase, d being
the day of the customer's first completed purchase in m and F the first such month (the cohort;
(F, F, d) counts the customer in the cohort's size). Triggers on ``customers_purchase`` (one per
INSERT, UPDATE and DELETE statement, with its transition tables) append the change of the touched
customers' cells to ``CohortCellDelta``, probing only what can change:

1. per customer-month the statement wrote a completed row in (in, out, or moved; an UPDATE that
   changes no status, customer or time writes none), the first purchase of that month the
   statement did not write (one probe of the customer's index, its first entry in the month as a
   rule); with the written rows, that gives the month's first day before and after;
2. only for customers with a month whose first day changed (a new month, a purchase earlier in a
   month, the first one of a month refunded or moved), the earliest completed month outside those
   (one probe: the first index entry, as a rule) gives the cohort before and after;
3. only when the cohort moved (a backdated first purchase, a refunded or moved first one), that
   customer's months are read again, and the whole row moves from the old cohort to the new one.

A repeat purchase later in a month the customer already bought in costs one probe and appends
nothing. The touched customers are locked first (``FOR NO KEY UPDATE`` in id order, the purchase
write path's own lock, in a statement of its own; whichever rollup trigger runs first takes it,
the other finds it held), so the probes read after any concurrent writer of the same customer has
committed. Days are in the zone ``metrics_rollupstate`` records.
"""

from metrics.rollup_sql import fold_sql  # plain SQL text, no Django


def _month(alias: str) -> str:
    """The store-local month of a purchase, as the date of its first day."""
    return f"date_trunc('month', {alias}.placed_at AT TIME ZONE zone)::date"


def _day(alias: str) -> str:
    return f"({alias}.placed_at AT TIME ZONE zone)::date"


def _month_start(month: str) -> str:
    return f"({month}::timestamp AT TIME ZONE zone)"


_NEXT = "(c.month + interval '1 month')"

# The first completed purchase of customer ``c.customer_id`` in month ``c.month`` that the statement
# did not write, through the customer's purchase index. The range is widened by a day on each side
# and the month filtered exactly, so however a daylight-saving change at midnight maps the month's
# first local instant, no purchase of it is missed (the same guard as the day chain's).
_STABLE_FIRST = (
    f"SELECT {_day('p')} AS day FROM customers_purchase p WHERE p.customer_id = c.customer_id"
    " AND p.status = 'completed'"
    f" AND p.placed_at >= {_month_start('c.month')} - interval '1 day'"
    f" AND p.placed_at < {_month_start(_NEXT)} + interval '1 day'"
    f" AND {_month('p')} = c.month AND NOT p.id = ANY(c.written) ORDER BY p.placed_at LIMIT 1"
)
_OF_CUSTOMER = "FROM customers_purchase p WHERE p.customer_id = f.customer_id AND p.status = 'completed'"

# An UPDATE's rows that can change a cell: completed before or after, and a status, customer or time changed.
_UPDATED = (
    "o.id = n.id AND ((o.status = 'completed') <> (n.status = 'completed') OR (o.status = 'completed'"
    " AND (o.customer_id <> n.customer_id OR o.placed_at <> n.placed_at)))"
)


def _written(*, new_rows: bool, old_rows: bool) -> str:
    """(id, customer_id, placed_at, side) of the statement's completed rows that can change a
    cell: +1 as they are now, -1 as they were."""
    if new_rows and old_rows:
        pairs = f"FROM old_rows o JOIN new_rows n ON {_UPDATED}"
        return (
            f"SELECT n.id, n.customer_id, n.placed_at, 1 AS side {pairs} WHERE n.status = 'completed'"
            f" UNION ALL SELECT o.id, o.customer_id, o.placed_at, -1 {pairs} WHERE o.status = 'completed'"
        )
    if new_rows:
        return "SELECT id, customer_id, placed_at, 1 AS side FROM new_rows WHERE status = 'completed'"
    return "SELECT id, customer_id, placed_at, -1 AS side FROM old_rows WHERE status = 'completed'"


def delta_sql(*, new_rows: bool, old_rows: bool) -> str:
    """(cohort_month, month, first_day, customers): the change of the touched customers' cells."""
    stable = f"NOT {_month('p')} = ANY(f.changed)"  # months whose first day the statement left alone
    return (
        f"WITH w AS ({_written(new_rows=new_rows, old_rows=old_rows)}),"
        # Per customer-month the statement wrote: its first day before and after = the earliest of
        # the first purchase it did not write (one probe) and the earliest written row then / now.
        " c AS ("
        f" SELECT w.customer_id, {_month('w')} AS month, min({_day('w')}) FILTER (WHERE side = -1) AS old_first,"
        f" min({_day('w')}) FILTER (WHERE side = 1) AS new_first,"
        " coalesce(array_agg(w.id) FILTER (WHERE side = 1), '{}') AS written FROM w GROUP BY 1, 2),"
        " states AS ("
        " SELECT c.customer_id, c.month, least(s.day, c.old_first) AS before_day, least(s.day, c.new_first) AS now_day"
        f" FROM c LEFT JOIN LATERAL ({_STABLE_FIRST}) s ON true),"
        " flips AS (SELECT * FROM states WHERE before_day IS DISTINCT FROM now_day),"
        # The cohort before and after = the earliest of the months whose first day did not change
        # (one probe: the first index entry, as a rule) and of the changed months bought in then.
        " f AS ("
        " SELECT f.customer_id, f.changed, least(u.month, f.first_before) AS before_c,"
        " least(u.month, f.first_now) AS after_c, u.month IS NOT NULL AS has_stable FROM ("
        "  SELECT customer_id, array_agg(month) AS changed, min(month) FILTER (WHERE now_day IS NOT NULL) AS first_now,"
        "  min(month) FILTER (WHERE before_day IS NOT NULL) AS first_before FROM flips GROUP BY customer_id) f"
        f" LEFT JOIN LATERAL (SELECT {_month('p')} AS month {_OF_CUSTOMER} AND {stable}"
        "  ORDER BY p.placed_at LIMIT 1) u ON true),"
        " moved AS (SELECT * FROM f WHERE before_c IS DISTINCT FROM after_c),"
        # Cohort moved: the unchanged months with their first days, read again (none when there is no
        # such month), in the row before and after alike; a changed month with its day then / now.
        " row_months AS ("
        f" SELECT f.customer_id, x.month, x.day AS before_day, x.day AS now_day FROM moved f CROSS JOIN LATERAL"
        f"  (SELECT {_month('p')} AS month, min({_day('p')}) AS day {_OF_CUSTOMER} AND {stable} GROUP BY 1) x"
        "  WHERE f.has_stable"
        "  UNION ALL SELECT fl.customer_id, fl.month, fl.before_day, fl.now_day"
        "  FROM flips fl JOIN moved USING (customer_id))"
        " SELECT cohort_month, month, first_day, sum(n) AS customers FROM ("
        # Same cohort: a changed month leaves its day then and joins its day now.
        "  SELECT f.after_c AS cohort_month, fl.month, fl.before_day AS first_day, -1 AS n"
        "  FROM f JOIN flips fl USING (customer_id) WHERE f.before_c = f.after_c AND fl.before_day IS NOT NULL"
        "  UNION ALL SELECT f.after_c, fl.month, fl.now_day, 1"
        "  FROM f JOIN flips fl USING (customer_id) WHERE f.before_c = f.after_c AND fl.now_day IS NOT NULL"
        # Moved cohort: the row as it was leaves the old cohort, the row as it is joins the new one.
        "  UNION ALL SELECT m.before_c, r.month, r.before_day, -1 FROM moved m JOIN row_months r USING (customer_id)"
        "  WHERE m.before_c IS NOT NULL AND r.before_day IS NOT NULL"
        "  UNION ALL SELECT m.after_c, r.month, r.now_day, 1 FROM moved m JOIN row_months r USING (customer_id)"
        "  WHERE m.after_c IS NOT NULL AND r.now_day IS NOT NULL"
        " ) cells GROUP BY 1, 2, 3 HAVING sum(n) <> 0"
    )


def _apply(*, new_rows: bool, old_rows: bool) -> str:
    touched = f"SELECT customer_id FROM ({_written(new_rows=new_rows, old_rows=old_rows)}) t"
    return (
        f"IF EXISTS ({touched}) THEN"
        f" PERFORM 1 FROM customers_customer c WHERE c.id IN ({touched}) ORDER BY c.id FOR NO KEY UPDATE;"
        " INSERT INTO metrics_cohortcelldelta (cohort_month, month, first_day, customers) "
        + delta_sql(new_rows=new_rows, old_rows=old_rows)
        + "; END IF;"
    )


TRIGGER_FUNCTION = (
    # JIT costs more than these statements take.
    "CREATE OR REPLACE FUNCTION metrics_purchase_cohorts_changed() RETURNS trigger LANGUAGE plpgsql"
    " SET jit = off AS $fn$"
    " DECLARE zone text;"
    " BEGIN"
    " SELECT time_zone INTO zone FROM metrics_rollupstate WHERE id = 1;"
    " IF zone IS NULL THEN RETURN NULL; END IF;"  # not built: nothing to keep current
    " IF TG_OP = 'INSERT' THEN " + _apply(new_rows=True, old_rows=False) + ""
    " ELSIF TG_OP = 'UPDATE' THEN " + _apply(new_rows=True, old_rows=True) + ""
    " ELSIF TG_OP = 'DELETE' THEN " + _apply(new_rows=False, old_rows=True) + ""
    " END IF;"
    " RETURN NULL;"
    " END $fn$"
)

# Emptying the purchases empties the cells (TRUNCATE fires no row or statement triggers).
TRUNCATE_FUNCTION = (
    "CREATE OR REPLACE FUNCTION metrics_purchases_truncated_cohorts() RETURNS trigger LANGUAGE plpgsql AS $fn$"
    " BEGIN DELETE FROM metrics_cohortcelldelta; DELETE FROM metrics_cohortcell; RETURN NULL; END $fn$"
)

# The statement triggers, for loaders that write purchases in bulk and rebuild afterwards.
COHORT_TRIGGERS = ("purchase_cohorts_inserted", "purchase_cohorts_updated", "purchase_cohorts_deleted")

CREATE_TRIGGERS = [
    TRIGGER_FUNCTION,
    TRUNCATE_FUNCTION,
    "CREATE TRIGGER purchase_cohorts_inserted AFTER INSERT ON customers_purchase REFERENCING NEW TABLE AS new_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION metrics_purchase_cohorts_changed()",
    "CREATE TRIGGER purchase_cohorts_updated AFTER UPDATE ON customers_purchase"
    " REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION metrics_purchase_cohorts_changed()",
    "CREATE TRIGGER purchase_cohorts_deleted AFTER DELETE ON customers_purchase REFERENCING OLD TABLE AS old_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION metrics_purchase_cohorts_changed()",
    "CREATE TRIGGER purchases_truncated_cohorts AFTER TRUNCATE ON customers_purchase"
    " FOR EACH STATEMENT EXECUTE FUNCTION metrics_purchases_truncated_cohorts()",
]

DROP_TRIGGERS = [
    "DROP TRIGGER IF EXISTS purchase_cohorts_inserted ON customers_purchase",
    "DROP TRIGGER IF EXISTS purchase_cohorts_updated ON customers_purchase",
    "DROP TRIGGER IF EXISTS purchase_cohorts_deleted ON customers_purchase",
    "DROP TRIGGER IF EXISTS purchases_truncated_cohorts ON customers_purchase",
    "DROP FUNCTION IF EXISTS metrics_purchase_cohorts_changed()",
    "DROP FUNCTION IF EXISTS metrics_purchases_truncated_cohorts()",
]


def rebuild_sql() -> str:
    """Insert the cells computed from every completed purchase, days in the zone ``%(zone)s``."""
    return (
        "INSERT INTO metrics_cohortcell (cohort_month, month, first_day, customers)"
        " SELECT cohort_month, month, first_day, count(*) FROM ("
        "  SELECT month, first_day, min(month) OVER (PARTITION BY customer_id) AS cohort_month FROM ("
        "   SELECT customer_id, date_trunc('month', placed_at AT TIME ZONE %(zone)s)::date AS month,"
        "   min((placed_at AT TIME ZONE %(zone)s)::date) AS first_day"
        "   FROM customers_purchase WHERE status = 'completed' GROUP BY 1, 2) months"
        " ) cells GROUP BY 1, 2, 3"
    )


COMPACT_SQL = fold_sql("metrics_cohortcelldelta", "metrics_cohortcell", "cohort_month, month, first_day", "customers")
