"""Repeat rate, frequency, AOV, ARPU, CLV, NPS and the cohort matrix (SPEC §5)."""

import datetime as dt
from decimal import Decimal

import pytest
from django.test import override_settings

from customers.services import nps_record, purchase_cancel
from metrics.cohorts import cohort_matrix
from metrics.periods import local_midnight
from metrics.rollup_fold import rollups_fold
from metrics.summary import summary
from tests.factories import CustomerFactory
from tests.metrics.conftest import buy, noon

pytestmark = pytest.mark.django_db

START = local_midnight(dt.date(2026, 3, 1))
END = local_midnight(dt.date(2026, 4, 1))


@pytest.fixture
def march():
    """ann: 2 March orders (30 + 70); bob: 1 (50) and one before; cat: 1 cancelled; dan: only after."""
    buy("ann", noon(dt.date(2026, 3, 2)), "30.00")
    buy("ann", noon(dt.date(2026, 3, 20)), "70.00")
    buy("bob", noon(dt.date(2026, 2, 1)), "20.00")
    buy("bob", noon(dt.date(2026, 3, 9)), "50.00")
    cancelled = buy("cat", noon(dt.date(2026, 3, 9)), "999.00")
    purchase_cancel(external_id=cancelled.external_id)
    buy("dan", noon(dt.date(2026, 4, 2)), "40.00")
    buy("bob", noon(dt.date(2026, 4, 3)), "10.00")


def test_period_figures(march):
    figures = summary(start=START, end=END, window_days=90)

    assert (figures.purchasing_customers, figures.repeat_customers, figures.orders) == (2, 1, 3)
    assert figures.revenue == Decimal("150.00")
    assert figures.repeat_purchase_rate == 0.5
    assert figures.purchase_frequency == 1.5
    assert figures.aov == Decimal("50.00")
    assert figures.customers_end == 2  # ann and bob bought in [end - 90d, end)
    assert figures.arpu == Decimal("75.00")
    # CLV as of `end`: ann 100, bob 70 (his April order is after end); dan had not bought yet.
    assert (figures.clv_customers, figures.clv) == (2, Decimal("85.00"))


def test_empty_period_gives_nulls():
    figures = summary(start=START, end=END)
    assert figures.orders == 0 and figures.revenue == Decimal("0.00")
    assert figures.repeat_purchase_rate is None and figures.purchase_frequency is None
    assert figures.aov is None and figures.arpu is None and figures.clv is None and figures.nps.score is None


def test_nps_counts_promoters_minus_detractors_in_the_period():
    customer = CustomerFactory()
    for score, day in [(10, 3), (9, 4), (8, 5), (7, 6), (6, 7), (0, 8), (10, 40)]:
        nps_record(
            customer=customer.external_id, score=score, answered_at=noon(dt.date(2026, 3, 1) + dt.timedelta(days=day))
        )

    nps = summary(start=START, end=END).nps

    assert (nps.answers, nps.promoters, nps.passives, nps.detractors) == (6, 2, 2, 2)
    assert nps.score == 0.0


def test_summary_takes_five_queries(march, django_assert_max_num_queries):
    rollups_fold()  # the usual read: the writes' changes already folded by the task after commit
    with django_assert_max_num_queries(5):
        summary(start=START, end=END)


def test_cohort_matrix_by_first_purchase_month():
    buy("jan-1", noon(dt.date(2026, 1, 10)))
    buy("jan-1", noon(dt.date(2026, 3, 1)))
    buy("jan-2", noon(dt.date(2026, 1, 20)))
    buy("jan-2", noon(dt.date(2026, 2, 20)))
    buy("jan-2", noon(dt.date(2026, 3, 31)))
    buy("mar-1", noon(dt.date(2026, 3, 15)))
    buy("old", noon(dt.date(2025, 12, 1)))  # an older cohort, out of range
    buy("old", noon(dt.date(2026, 2, 1)))

    cohorts = cohort_matrix(start=local_midnight(dt.date(2026, 1, 1)), end=END)

    assert [c.as_dict() for c in cohorts] == [
        {"cohort": "2026-01", "size": 2, "retention": [1.0, 0.5, 1.0], "active": [2, 1, 2]},
        {"cohort": "2026-03", "size": 1, "retention": [1.0], "active": [1]},
    ]


def test_cohort_months_follow_the_store_time_zone():
    # 23:30 on 31 January in New York is already February in UTC.
    with override_settings(TIME_ZONE="America/New_York"):
        buy("late-night", local_midnight(dt.date(2026, 1, 31)).replace(hour=23, minute=30))
        cohorts = cohort_matrix(start=local_midnight(dt.date(2026, 1, 1)), end=local_midnight(dt.date(2026, 3, 1)))
    assert [c.label for c in cohorts] == ["2026-01"]


def test_cohorts_take_two_queries(django_assert_max_num_queries):
    buy("a", noon(dt.date(2026, 1, 10)))
    buy("a", noon(dt.date(2026, 2, 10)))
    rollups_fold()  # the usual read: the writes' changes already folded by the task after commit
    with django_assert_max_num_queries(2):
        cohort_matrix(start=local_midnight(dt.date(2025, 1, 1)), end=END)
