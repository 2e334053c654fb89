"""ARPPU (SPEC §5): revenue over the period's distinct purchasing customers.

Checked three ways: by hand on a small shop, the rollup path against the live one over generated
histories, and on the CDNOW purchase log (shipped by the ``lifetimes`` package) against plain
Python over the file itself.
"""

import datetime as dt
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from importlib.metadata import distribution
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from customers.services.bulk import MAX_BULK_PURCHASES, purchases_record_bulk
from metrics.periods import local_midnight
from metrics.rollups import rollups_rebuild
from metrics.summary import summary, summary_from_rollups, summary_live
from tests.metrics.conftest import bulk_history, buy, noon

pytestmark = pytest.mark.django_db

CENT = Decimal("0.01")


@pytest.fixture(autouse=True)
def rollups_built(db):
    """As migrating leaves them (a flush by an earlier transactional test empties them)."""
    rollups_rebuild()


def test_arppu_divides_by_paying_customers_not_active_ones(api):
    buy("ann", noon(dt.date(2026, 1, 20)), "10.00")  # active at the end of March (W = 90), bought nothing in it
    buy("bob", noon(dt.date(2026, 3, 2)), "30.00")
    buy("bob", noon(dt.date(2026, 3, 9)), "40.00")
    buy("cy", noon(dt.date(2026, 3, 20)), "30.01")

    figures = summary(start=local_midnight(dt.date(2026, 3, 1)), end=local_midnight(dt.date(2026, 4, 1)))

    assert (figures.revenue, figures.purchasing_customers, figures.customers_end) == (Decimal("100.01"), 2, 3)
    assert figures.arppu == Decimal("50.01")  # 100.01 / 2, half up
    assert figures.arpu == Decimal("33.34")
    body = api.get("/api/v1/metrics/summary", {"start": "2026-03-01", "end": "2026-04-01"}).json()
    assert body["arppu"] == "50.01"


def test_arppu_is_null_without_buyers(api):
    buy("ann", noon(dt.date(2026, 1, 20)))
    figures = summary(start=local_midnight(dt.date(2026, 3, 1)), end=local_midnight(dt.date(2026, 4, 1)))
    assert figures.purchasing_customers == 0 and figures.arppu is None
    assert api.get("/api/v1/metrics/summary", {"start": "2026-03-01", "end": "2026-04-01"}).json()["arppu"] is None


def test_metrics_report_prints_arppu(capsys):
    buy("bob", noon(dt.date(2026, 3, 2)), "30.00")
    buy("cy", noon(dt.date(2026, 3, 3)), "45.00")
    for fmt, shown in (("table", "37.50"), ("json", '"arppu": "37.50"'), ("csv", "summary,arppu,37.50")):
        call_command("metrics_report", "--start", "2026-03-01", "--end", "2026-04-01", "--format", fmt)
        out = capsys.readouterr().out
        assert shown in out and "arppu" in out


BASE = dt.date(2025, 1, 1)
CUSTOMERS = [f"p{n}" for n in range(6)]
purchases = st.lists(
    st.tuples(st.sampled_from(CUSTOMERS), st.integers(0, 200), st.integers(1, 99_999)), max_size=25
)  # customer, day, cents
periods = st.lists(st.tuples(st.integers(0, 200), st.integers(1, 60)), min_size=1, max_size=3)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True, database=None)
@given(history=purchases, windows=periods)
def test_the_rollups_give_the_live_arppu_and_both_match_the_definition(history, windows):
    rows = [(name, noon(BASE + dt.timedelta(days=day)), Decimal(cents) / 100) for name, day, cents in history]
    with transaction.atomic():
        bulk_history(rows)
        for start_day, length in windows:
            start = local_midnight(BASE + dt.timedelta(days=start_day))
            end = local_midnight(BASE + dt.timedelta(days=start_day + length))
            fast = summary_from_rollups(start=start, end=end, window_days=90)
            live = summary_live(start=start, end=end, window_days=90)
            assert fast is not None  # whole store-local days: the rollups answer
            in_period = [(name, total) for name, day, total in rows if start <= day < end]
            buyers = {name for name, _ in in_period}
            expected = (
                (sum((total for _, total in in_period), Decimal(0)) / len(buyers)).quantize(CENT, ROUND_HALF_UP)
                if buyers
                else None
            )
            assert fast.arppu == live.arppu == expected, (start_day, length)
        transaction.set_rollback(True)


# --- CDNOW: 69,659 purchases by 23,570 customers, January 1997 to June 1998 ----------------------


def cdnow_path() -> Path:
    """The file inside the installed package, found without importing it (it imports pandas)."""
    return Path(distribution("lifetimes").locate_file("lifetimes/datasets/CDNOW_master.txt"))


def cdnow_rows() -> list[tuple[str, dt.date, Decimal]]:
    rows = []
    for line in cdnow_path().read_text().splitlines()[1:]:
        customer, day, _cds, dollars = line.split()
        rows.append((customer, dt.datetime.strptime(day, "%Y%m%d").date(), Decimal(dollars)))
    return rows


def cdnow_load(rows: list[tuple[str, dt.date, Decimal]]) -> None:
    """Through the bulk purchase path, 1,000 at a time, each purchase at noon store time."""
    items = [
        {"external_id": f"cdnow-{n:05d}", "customer": f"cdnow-{customer}", "placed_at": noon(day), "total": str(total)}
        for n, (customer, day, total) in enumerate(rows, start=1)
    ]
    for start in range(0, len(items), MAX_BULK_PURCHASES):
        results = purchases_record_bulk(raw_purchases=items[start : start + MAX_BULK_PURCHASES])
        assert {result.status for result in results} == {"created"}, [r for r in results if r.status != "created"][:3]


def cdnow_arppu(rows: list[tuple[str, dt.date, Decimal]], start: dt.date, end: dt.date) -> Decimal | None:
    """Plain Python over the file: revenue in [start, end) over the customers who bought in it."""
    spent: dict[str, Decimal] = defaultdict(Decimal)
    for customer, day, total in rows:
        if start <= day < end:
            spent[customer] += total
    return (sum(spent.values(), Decimal(0)) / len(spent)).quantize(CENT, ROUND_HALF_UP) if spent else None


CDNOW_PERIODS = [
    (dt.date(1997, 1, 1), dt.date(1997, 2, 1)),  # the acquisition months: nearly everyone new
    (dt.date(1997, 3, 1), dt.date(1997, 4, 1)),
    (dt.date(1997, 7, 1), dt.date(1997, 10, 1)),  # a quarter
    (dt.date(1998, 6, 1), dt.date(1998, 7, 1)),  # the last month
    (dt.date(1997, 1, 1), dt.date(1998, 7, 1)),  # all of it
    (dt.date(1999, 1, 1), dt.date(1999, 2, 1)),  # after the log ends: nobody bought
]


def test_cdnow_arppu_matches_an_independent_computation_over_the_file():
    rows = cdnow_rows()
    assert len(rows) == 69_659 and len({customer for customer, _, _ in rows}) == 23_570
    cdnow_load(rows)

    for start_day, end_day in CDNOW_PERIODS:
        start, end = local_midnight(start_day), local_midnight(end_day)
        expected = cdnow_arppu(rows, start_day, end_day)
        fast = summary(start=start, end=end)
        live = summary_live(start=start, end=end)
        assert fast.arppu == live.arppu == expected, (start_day, end_day)
    # The file's own figures, so a change in its parsing shows: $299,060.17 from 7,846 buyers in
    # January 1997, $2,500,315.63 from all 23,570 over the whole log.
    assert cdnow_arppu(rows, *CDNOW_PERIODS[0]) == Decimal("38.12")
    assert cdnow_arppu(rows, *CDNOW_PERIODS[4]) == Decimal("106.08")
