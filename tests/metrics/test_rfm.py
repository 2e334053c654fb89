"""RFM scores by quintile and the segment map (SPEC §5)."""

import datetime as dt

import pytest

from metrics import rfm
from metrics.periods import local_midnight
from metrics.rfm import SEGMENT_GRID, SEGMENTS, segment_of
from tests.metrics.conftest import buy, noon

pytestmark = pytest.mark.django_db

AS_OF = local_midnight(dt.date(2026, 6, 1))


def ladder(count: int = 10) -> None:
    """Customer n bought n times, for 10 * n each, last on day n of May: n = count is best at everything."""
    for n in range(1, count + 1):
        for k in range(n):
            buy(f"cust-{n:02d}", noon(dt.date(2026, 5, n)) - dt.timedelta(days=30 * k), f"{10 * n}.00")


def test_every_segment_is_reachable_and_the_grid_is_complete():
    assert {segment_of(r, f, m) for r in range(1, 6) for f in range(1, 6) for m in range(1, 6)} == set(SEGMENTS)
    assert all(len(row) == 5 for row in SEGMENT_GRID.values())
    assert segment_of(5, 5, 5) == "Champions"
    assert segment_of(1, 5, 5) == "Cannot lose"
    assert segment_of(1, 1, 1) == "Lost"
    assert segment_of(5, 1, 1) == "New"


def test_scores_by_quintile_five_best():
    ladder()
    rows = {row.external_id: row for row in rfm.scored_page(as_of=AS_OF, offset=0, limit=100)}

    assert [rows[f"cust-{n:02d}"].r for n in range(1, 11)] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert [rows[f"cust-{n:02d}"].f for n in range(1, 11)] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    best, worst = rows["cust-10"], rows["cust-01"]
    assert (best.score, best.segment, best.frequency, best.monetary) == ("555", "Champions", 10, 1000)
    assert (worst.score, worst.segment) == ("111", "Lost")
    assert best.recency_days == 22  # 10 May noon to 1 June
    assert worst.recency_days == 31


def test_segment_counts_cover_every_segment():
    ladder()
    counts = rfm.segment_counts(as_of=AS_OF)
    assert set(counts) == set(SEGMENTS)
    assert sum(counts.values()) == 10
    assert counts["Champions"] == 2  # R = 5 with FM 5


def test_as_of_in_the_past_reads_history_not_the_current_stats():
    buy("early", noon(dt.date(2026, 1, 5)), "10.00")
    buy("early", noon(dt.date(2026, 7, 1)), "500.00")  # after as_of: must not count
    buy("late-starter", noon(dt.date(2026, 7, 2)), "80.00")

    rows = rfm.scored_page(as_of=AS_OF, offset=0, limit=10)

    assert [(row.external_id, row.frequency, row.monetary) for row in rows] == [("early", 1, 10)]
    assert sum(rfm.segment_counts(as_of=AS_OF).values()) == 1


def test_page_filters_by_segment_and_orders_by_external_id():
    ladder()
    champions = rfm.scored_page(as_of=AS_OF, offset=0, limit=10, segment="Champions")
    assert [row.external_id for row in champions] == ["cust-09", "cust-10"]
    assert [row.external_id for row in rfm.scored_page(as_of=AS_OF, offset=1, limit=2)] == ["cust-02", "cust-03"]


def test_ties_are_broken_by_external_id_not_insertion_order():
    for name in ["zed", "amy", "kim", "bob", "eve"]:
        buy(name, noon(dt.date(2026, 5, 10)), "25.00")
    rows = rfm.scored_page(as_of=AS_OF, offset=0, limit=10)
    assert [(row.external_id, row.r) for row in rows] == [("amy", 1), ("bob", 2), ("eve", 3), ("kim", 4), ("zed", 5)]


def test_rfm_queries_are_a_fixed_number(django_assert_max_num_queries):
    ladder(6)
    with django_assert_max_num_queries(2):
        rfm.segment_counts(as_of=AS_OF)
    with django_assert_max_num_queries(2):
        rfm.scored_page(as_of=AS_OF, offset=0, limit=50)
