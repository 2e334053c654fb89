"""The SQL of the cohort-cell rollup (``metrics.models.CohortCell``): its part of the purchase
trigger (metrics/rollup_triggers_sql.py), its rebuild and its compaction.

A customer's cells are (F, m, d) for every store-local month m with a completed purchase, d being
the day of the customer's first completed purchase in m and F the first such month (the cohort;
(F, F, d) counts the customer in the cohort's size). The trigger appends the change of the touched
customers' cells to ``CohortCellDelta``, reading only what can change:

1. per customer-month the statement wrote a completed row in (in, out, or moved), the month's first
   day before and after, from the days the trigger has read around each changed day anyway;
2. only for customers with a month whose first day changed (a new month, a purchase earlier in a
   month, the first one of a month refunded or moved), the earliest completed month outside those
   (one probe: the first index entry, as a rule) gives the cohort before and after;
3. only when the cohort moved (a backdated first purchase, a refunded or moved first one), that
   customer's months are read again, and the whole row moves from the old cohort to the new one.
"""

from metrics.rollup_sql import fold_sql  # plain SQL text, no Django


def _month(alias: str) -> str:
    """The store-local month of a purchase, as the date of its first day."""
    return f"date_trunc('month', {alias}.placed_at AT TIME ZONE zone)::date"


def _day(alias: str) -> str:
    return f"({alias}.placed_at AT TIME ZONE zone)::date"


def cells_delta_sql(states: str) -> tuple[str, str]:
    """The CTEs and the final SELECT of (cohort_month, month, first_day, customers): the change of the
    touched customers' cells, given ``states``, a CTE of (customer_id, month, before_day, now_day)
    for every customer-month the statement wrote a completed row in (its first day then and now).

    Every step carries the customer's figures on each of its rows (window aggregates), so no step
    joins two of these CTEs: their sizes are unknown to the planner, which would loop over one per
    row of the other."""
    stable = f"NOT {_month('p')} = ANY(fl.changed)"  # months whose first day the statement left alone
    of_customer = "FROM customers_purchase p WHERE p.customer_id = fl.customer_id AND p.status = 'completed'"
    ctes = (
        " flips AS (SELECT s.*, array_agg(s.month) OVER c AS changed,"
        "  min(s.month) FILTER (WHERE s.now_day IS NOT NULL) OVER c AS first_now,"
        "  min(s.month) FILTER (WHERE s.before_day IS NOT NULL) OVER c AS first_before,"
        "  row_number() OVER c = 1 AS customer_first"
        f"  FROM {states} s WHERE s.before_day IS DISTINCT FROM s.now_day WINDOW c AS (PARTITION BY s.customer_id)),"
        # The cohort before and after = the earliest of the months whose first day did not change
        # (one probe: the first index entry, as a rule) and of the changed months bought in then.
        " fl AS (SELECT fl.*, least(u.month, fl.first_before) AS before_c, least(u.month, fl.first_now) AS after_c,"
        "  u.month IS NOT NULL AS has_stable FROM flips fl"
        f"  LEFT JOIN LATERAL (SELECT {_month('p')} AS month {of_customer} AND {stable}"
        "  ORDER BY p.placed_at LIMIT 1) u ON true),"
        # Cohort moved: the changed months with their days then / now, and the unchanged months with
        # their first days, read again once per customer (none when there is no such month), in the
        # row before and after alike.
        " moved AS (SELECT fl.before_c, fl.after_c, fl.month, fl.before_day, fl.now_day FROM fl"
        "  WHERE fl.before_c IS DISTINCT FROM fl.after_c"
        "  UNION ALL SELECT fl.before_c, fl.after_c, x.month, x.day, x.day FROM fl CROSS JOIN LATERAL"
        f"  (SELECT {_month('p')} AS month, min({_day('p')}) AS day {of_customer} AND {stable} GROUP BY 1) x"
        "  WHERE fl.before_c IS DISTINCT FROM fl.after_c AND fl.has_stable AND fl.customer_first)"
    )
    cells = (
        " SELECT cohort_month, month, first_day, sum(n) AS customers FROM ("
        # Same cohort: a changed month leaves its day then and joins its day now.
        "  SELECT after_c AS cohort_month, month, before_day AS first_day, -1 AS n FROM fl"
        "  WHERE before_c = after_c AND before_day IS NOT NULL"
        "  UNION ALL SELECT after_c, month, now_day, 1 FROM fl WHERE before_c = after_c AND now_day IS NOT NULL"
        # Moved cohort: the row as it was leaves the old cohort, the row as it is joins the new one.
        "  UNION ALL SELECT before_c, month, before_day, -1 FROM moved"
        "  WHERE before_c IS NOT NULL AND before_day IS NOT NULL"
        "  UNION ALL SELECT after_c, month, now_day, 1 FROM moved WHERE after_c IS NOT NULL AND now_day IS NOT NULL"
        " ) cells GROUP BY 1, 2, 3 HAVING sum(n) <> 0"
    )
    return ctes, cells


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
