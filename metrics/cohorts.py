"""Monthly acquisition cohorts (SPEC §5).

A customer's cohort is the store-local calendar month of their first completed purchase (the
kept-current ``first_purchase_at``). Cell (c, k) is the share of cohort c with at least one
completed purchase in month c + k, so k = 0 is 1.0 by construction.

The range: cohorts from the month containing ``start`` to the month containing the last instant
before ``end``; purchases count up to ``end``, so a month cut by ``end`` counts what happened so far.

The whole shop's matrix is read off the cohort cells the purchase triggers keep exact
(metrics/cohort_rollups.py) when ``start`` and ``end`` are store midnights and the rollups are in
the store's zone; else, and for a customer group, it is computed from the purchases
(``cohort_matrix_live``, the reference the rollup is tested against).
"""

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db.models import Count
from django.db.models.functions import TruncMonth

from customers.models import Customer
from metrics.cohort_rollups import cohort_cells_read
from metrics.periods import add_months, local_day_of_midnight, month_start, store_tz
from metrics.retention import CustomerIds, completed_purchases


@dataclass(frozen=True)
class Cohort:
    month: dt.date  # first day of the store-local month
    size: int
    active: list[int]  # customers of the cohort active in month c + k, k = 0, 1, ...

    @property
    def label(self) -> str:
        return f"{self.month:%Y-%m}"

    @property
    def retention(self) -> list[float]:
        return [count / self.size for count in self.active]

    def as_dict(self) -> dict[str, Any]:
        return {"cohort": self.label, "size": self.size, "retention": self.retention, "active": self.active}


def _month_key(moment: dt.datetime) -> tuple[int, int]:
    local = moment.astimezone(store_tz())
    return local.year, local.month


def cohort_months(*, start: dt.datetime, end: dt.datetime) -> list[dt.date]:
    first = month_start(start)
    last_key = _month_key(end - dt.timedelta(microseconds=1))
    months = []
    month = first
    while _month_key(month) <= last_key:
        months.append(month.astimezone(store_tz()).date())
        month = add_months(month, 1)
    return months


def _assemble(
    months: list[dt.date],
    sizes: dict[tuple[int, int], int],
    active: dict[tuple[tuple[int, int], tuple[int, int]], int],
) -> list[Cohort]:
    """The cohorts with a customer, oldest first, from sizes by (year, month) and active counts by
    ((year, month), (year, month))."""
    cohorts = []
    for i, month in enumerate(months):
        key = (month.year, month.month)
        if not sizes.get(key):
            continue
        row = [active.get((key, (later.year, later.month)), 0) for later in months[i:]]
        cohorts.append(Cohort(month=month, size=sizes[key], active=row))
    return cohorts


def cohort_matrix(*, start: dt.datetime, end: dt.datetime, customer_ids: CustomerIds | None = None) -> list[Cohort]:
    """Cohorts with at least one customer, oldest first: from the cohort cells in one query when
    they can answer, else from the purchases in two."""
    if customer_ids is None:
        fast = cohort_matrix_from_rollups(start=start, end=end)
        if fast is not None:
            return fast
    return cohort_matrix_live(start=start, end=end, customer_ids=customer_ids)


def cohort_matrix_from_rollups(*, start: dt.datetime, end: dt.datetime) -> list[Cohort] | None:
    """The whole shop's matrix from the cohort cells in one statement, or None when they cannot
    answer (a bound that is not a store midnight, rollups in another zone)."""
    end_day = local_day_of_midnight(end)
    if local_day_of_midnight(start) is None or end_day is None:
        return None
    months = cohort_months(start=start, end=end)
    cells = cohort_cells_read(first_month=months[0], end_day=end_day)
    if cells is None:
        return None
    # Every member of a cohort buys in its own month: cell (c, c) is the cohort's size.
    keyed = {((c.year, c.month), (m.year, m.month)): n for (c, m), n in cells.items()}
    sizes = {cohort: n for (cohort, month), n in keyed.items() if cohort == month}
    return _assemble(months, sizes, keyed)


def cohort_matrix_live(
    *, start: dt.datetime, end: dt.datetime, customer_ids: CustomerIds | None = None
) -> list[Cohort]:
    """Cohorts with at least one customer, oldest first, from the purchases in two queries (sizes,
    then active counts)."""
    tz = store_tz()
    months = cohort_months(start=start, end=end)
    begin = month_start(start)

    members = Customer.objects.filter(first_purchase_at__gte=begin, first_purchase_at__lt=end)
    if customer_ids is not None:
        members = members.filter(pk__in=customer_ids)
    sizes = {
        _month_key(row["cohort"]): row["size"]
        for row in members.annotate(cohort=TruncMonth("first_purchase_at", tzinfo=tz))
        .values("cohort")
        .annotate(size=Count("pk"))
        .order_by()
    }

    cells = (
        completed_purchases(customer_ids)
        .filter(placed_at__gte=begin, placed_at__lt=end)
        .filter(customer__first_purchase_at__gte=begin, customer__first_purchase_at__lt=end)
        .annotate(
            cohort=TruncMonth("customer__first_purchase_at", tzinfo=tz),
            month=TruncMonth("placed_at", tzinfo=tz),
        )
        .values("cohort", "month")
        .annotate(active=Count("customer_id", distinct=True))
    )
    active = {(_month_key(row["cohort"]), _month_key(row["month"])): row["active"] for row in cells}
    return _assemble(months, sizes, active)
