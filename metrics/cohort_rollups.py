"""Cohort cells: the cohort matrix's counts, kept exact by the purchase triggers, so reading the
matrix never scans the purchases.

``CohortCell`` (metrics/models.py) holds, per (cohort month c, month m, day d), the customers whose
first completed purchase is in c and whose first completed purchase of m is on d; (c, c, *) sums to
the cohort's size. Cell (c, m) of a matrix ending at the store midnight starting day E is the sum
over d < E: a month cut by the end counts the customers who bought in it before the end, and a
customer whose first purchase is at or after the end is in no cohort yet, with no purchase read.
The purchase trigger leaves each write's change pending; the fold (metrics/rollup_fold.py) appends
it to ``CohortCellDelta``, ``cohort_cells_compact`` folds those in. Readers sum both, after folding
whatever is pending, so every read is exact.

Wiring for the rollup maintenance (metrics/rollups.py): ``cohort_cells_rebuild`` inside the
rebuild's transaction, after the purchases are locked; ``cohort_cells_compact`` inside the
compaction's.
"""

import datetime as dt
from typing import Any

from django.conf import settings
from django.db import connection

from metrics.cohort_rollup_sql import COMPACT_SQL, rebuild_sql
from metrics.models import RollupState
from metrics.rollup_fold import FOLD_WAIT_SECONDS, PENDING_CHECK, read_folded, rollups_fold

__all__ = [
    "cohort_cells",
    "cohort_cells_compact",
    "cohort_cells_read",
    "cohort_cells_rebuild",
]

Cells = dict[tuple[dt.date, dt.date], int]


def cohort_cells_rebuild(cursor: Any, zone: str) -> int:
    """Replace the cells with ones computed from every completed purchase, days in ``zone``;
    returns how many cells. Runs in the caller's transaction, which holds purchase writes off."""
    cursor.execute("DELETE FROM metrics_cohortcelldelta")
    cursor.execute("DELETE FROM metrics_cohortcell")
    cursor.execute(rebuild_sql(), {"zone": zone})
    cells: int = cursor.rowcount
    return cells


def cohort_cells_compact(cursor: Any) -> int:
    """Fold the committed deltas into the cells; returns how many delta rows it folded. The caller
    holds the compaction lock; deltas of writers still in flight stay for the next run."""
    cursor.execute(COMPACT_SQL)
    folded = cursor.fetchone()[0]
    cursor.execute("DELETE FROM metrics_cohortcell WHERE customers = 0")
    return int(folded)


_CELLS = (
    "(SELECT cohort_month, month, first_day, customers FROM metrics_cohortcell"
    " UNION ALL SELECT cohort_month, month, first_day, customers FROM metrics_cohortcelldelta)"
)


def cohort_cells() -> list[tuple[dt.date, dt.date, dt.date, int]]:
    """Every (cohort_month, month, first_day, customers) with the pending deltas folded in, in
    order (the tests compare the kept cells with rebuilt ones)."""
    rollups_fold(wait_seconds=FOLD_WAIT_SECONDS)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT cohort_month, month, first_day, sum(customers) FROM {_CELLS} cells"
            " GROUP BY 1, 2, 3 HAVING sum(customers) <> 0 ORDER BY 1, 2, 3"
        )
        return [(cohort, month, day, int(n)) for cohort, month, day, n in cursor.fetchall()]


# The state check and the cells of the cohorts from ``first`` on, each month counting the customers
# whose first purchase of it is before day ``end`` (every month before end's is whole), in one
# statement over the cells' index range.
_READ = (
    f"SELECT {PENDING_CHECK}, (SELECT time_zone FROM metrics_rollupstate WHERE id = %(state)s),"
    " x.cohort_month, x.month, x.customers"
    " FROM (SELECT 1) one LEFT JOIN ("
    "  SELECT cohort_month, month, sum(customers) AS customers FROM ("
    "   SELECT cohort_month, month, customers FROM metrics_cohortcell"
    "   WHERE cohort_month >= %(first)s AND first_day < %(end)s"
    "   UNION ALL SELECT cohort_month, month, customers FROM metrics_cohortcelldelta"
    "   WHERE cohort_month >= %(first)s AND first_day < %(end)s"
    "  ) cells GROUP BY 1, 2 HAVING sum(customers) <> 0"
    " ) x ON true"
)


def cohort_cells_read(*, first_month: dt.date, end_day: dt.date) -> Cells | None:
    """Cells (cohort month, month) of the cohorts from ``first_month`` on, counting the purchases
    before the store midnight starting ``end_day``: one statement. None when the rollups are not in
    the store's zone."""

    def read() -> tuple[list[tuple[Any, ...]], bool]:
        with connection.cursor() as cursor:
            cursor.execute(_READ, {"state": RollupState.SINGLETON_ID, "first": first_month, "end": end_day})
            rows = cursor.fetchall()
        return rows, rows[0][0]

    rows = read_folded(read)
    if rows is None or rows[0][1] != settings.TIME_ZONE:
        return None
    return {(cohort, month): int(n) for _, _, cohort, month, n in rows if cohort is not None}
