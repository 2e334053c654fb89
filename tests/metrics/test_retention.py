"""CRR and churn (SPEC §5) on the textbook worked examples, rebuilt as purchase histories."""

import datetime as dt

import pytest

from customers.models import Customer
from customers.services import purchase_refund
from metrics.periods import local_midnight
from metrics.retention import retention, retention_live
from metrics.rollup_fold import rollups_fold
from metrics.rollups import rollups_rebuild
from tests.metrics.conftest import buy, noon

pytestmark = pytest.mark.django_db

START = local_midnight(dt.date(2026, 3, 1))
END = local_midnight(dt.date(2026, 4, 1))
BEFORE = dt.date(2026, 3, 1) - dt.timedelta(days=80)  # active at start (W = 90), not at end


def textbook_shop(*, at_start: int, new: int, lost: int) -> None:
    """``at_start`` customers active at the start, of whom ``lost`` never buy again and the rest
    buy again in March; ``new`` customers buy for the first time in March."""
    for n in range(at_start):
        buy(f"regular-{n}", noon(BEFORE))
        if n >= lost:
            buy(f"regular-{n}", noon(dt.date(2026, 3, 10)))
    for n in range(new):
        buy(f"new-{n}", noon(dt.date(2026, 3, 5)))


@pytest.mark.parametrize(
    ("at_start", "new", "lost", "crr", "churn"),
    [
        (30, 8, 2, 28 / 30, 2 / 30),  # 93.3 %
        (200, 150, 140, 0.30, 0.70),
        (150, 30, 18, 0.88, 0.12),  # 150 -> 162 customers
        (262, 153, 44, 218 / 262, 44 / 262),  # 262 -> 371 customers: 83 %
    ],
)
def test_textbook_examples(at_start, new, lost, crr, churn):
    textbook_shop(at_start=at_start, new=new, lost=lost)

    table = retention(start=START, end=END, window_days=90)

    assert table.customers_start == at_start
    assert table.new_customers == new
    assert table.lost == lost
    assert table.customers_end == at_start - lost + new
    assert table.crr == pytest.approx(crr)
    assert table.churn_rate == pytest.approx(churn)
    # SPEC: crr = (E - N) / S whenever W >= the period's length.
    assert table.crr == pytest.approx((table.customers_end - table.new_customers) / table.customers_start)
    # As the textbooks print them: 93.3 %, 30 %, 88 %, 83 %.
    assert round(100 * table.crr, 1) == round(100 * crr, 1)


def test_a_customer_back_after_a_gap_is_reactivated_and_counts_in_crr():
    buy("faithful", noon(dt.date(2026, 2, 10)))
    buy("faithful", noon(dt.date(2026, 3, 15)))
    buy("returning", noon(dt.date(2025, 6, 1)))  # inactive at start: last bought 9 months before
    buy("returning", noon(dt.date(2026, 3, 20)))
    buy("gone", noon(dt.date(2025, 12, 20)))  # inside [start - 90d, end - 90d): lost by the end

    table = retention(start=START, end=END, window_days=90)

    assert (table.customers_start, table.retained, table.reactivated, table.lost) == (2, 1, 1, 1)
    assert table.new_customers == 0
    assert table.crr == 1.0  # (retained + reactivated) / S
    assert table.churn_rate == 0.5  # lost / S: with comebacks crr + churn exceeds 1


def test_no_customers_at_the_start_gives_null_rates_not_an_error():
    buy("first-timer", noon(dt.date(2026, 3, 3)))
    table = retention(start=START, end=END)
    assert table.customers_start == 0
    assert table.crr is None and table.churn_rate is None
    assert table.customers_end == table.new_customers == 1


def test_only_completed_purchases_count():
    buy("refunded", noon(BEFORE))
    refunded = buy("refunded", noon(dt.date(2026, 3, 10)))
    purchase_refund(external_id=refunded.external_id)
    buy("cancelled-only", noon(BEFORE), status="cancelled")

    table = retention(start=START, end=END)

    assert (table.customers_start, table.lost, table.retained) == (1, 1, 0)
    assert table.customers_end == 0


def test_window_shorter_than_the_period_keeps_each_window_separate():
    # W = 7 over a 31-day period: a purchase mid-March is in neither window.
    buy("mid-period", noon(dt.date(2026, 2, 27)))
    buy("mid-period", noon(dt.date(2026, 3, 15)))
    buy("new-early", noon(dt.date(2026, 3, 2)))  # new, but not active at the end
    buy("new-late", noon(dt.date(2026, 3, 30)))  # new and active at the end

    table = retention(start=START, end=END, window_days=7)

    assert (table.customers_start, table.customers_end, table.new_customers) == (1, 1, 2)
    assert (table.retained, table.lost, table.reactivated) == (0, 1, 0)
    assert table.crr == 0.0


def test_boundaries_are_half_open():
    buy("at-start", START)  # in [start, end), not in [start - W, start)
    buy("just-before-end", END - dt.timedelta(microseconds=1))
    buy("at-end", END)  # outside [start, end): no counts at all

    table = retention(start=START, end=END)

    assert table.customers_start == 0
    assert table.customers_end == 2
    assert table.new_customers == 2


def test_restricted_to_a_set_of_customers():
    textbook_shop(at_start=10, new=4, lost=3)
    group = Customer.objects.filter(external_id__in=["regular-0", "regular-5", "new-1"]).values("pk")

    table = retention(start=START, end=END, customer_ids=group)

    assert (table.customers_start, table.lost, table.retained, table.new_customers) == (2, 1, 1, 1)


def test_retention_takes_one_query_from_the_rollup_and_two_from_the_purchases(django_assert_max_num_queries):
    rollups_rebuild()  # as migrating leaves it (a transactional test's flush may have emptied it)
    textbook_shop(at_start=20, new=5, lost=4)
    rollups_fold()  # the usual read: the writes' changes already folded by the task after commit
    with django_assert_max_num_queries(1):
        fast = retention(start=START, end=END, window_days=90)  # no longer than W: the day chain
    with django_assert_max_num_queries(2):
        assert retention_live(start=START, end=END, window_days=90) == fast
    with django_assert_max_num_queries(2):
        retention(start=START, end=END, window_days=7)  # longer than W: from the purchases
