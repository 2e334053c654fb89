"""Properties of the metric definitions over generated purchase histories (hypothesis).

Each example writes its history inside a savepoint and rolls it back, so examples never see
each other's rows.
"""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import transaction
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metrics import rfm
from metrics.cohorts import cohort_matrix
from metrics.periods import local_midnight, shift_days
from metrics.retention import retention
from metrics.rfm_flow import NONE, segment_flow
from tests.metrics.conftest import bulk_history, noon

pytestmark = pytest.mark.django_db

BASE = dt.date(2025, 1, 1)
CUSTOMERS = [f"c{n}" for n in range(8)]
PROPERTY_SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True, database=None
)

purchases = st.lists(st.tuples(st.sampled_from(CUSTOMERS), st.integers(0, 240)), max_size=30)
periods = st.tuples(st.integers(0, 240), st.integers(1, 90), st.integers(1, 120))  # start day, length, W


def _rows(history: list[tuple[str, int]]) -> list[tuple[str, dt.datetime, Decimal]]:
    return [(name, noon(BASE + dt.timedelta(days=day)), Decimal("10.00")) for name, day in history]


def _measure(history, start_day: int, length: int, window: int):
    start = local_midnight(BASE + dt.timedelta(days=start_day))
    end = local_midnight(BASE + dt.timedelta(days=start_day + length))
    with transaction.atomic():
        bulk_history(_rows(history))
        table = retention(start=start, end=end, window_days=window)
        cohorts = cohort_matrix(start=start, end=end)
        transaction.set_rollback(True)
    return table, [c.as_dict() for c in cohorts]


def _oracle(history, start_day: int, length: int, window: int) -> dict[str, int]:
    """The SPEC's set definitions, computed directly on the generated days (noon purchases)."""
    end_day = start_day + length

    def active(t: int) -> set[str]:
        return {name for name, day in history if t - window <= day < t}

    first = {}
    for name, day in history:
        first[name] = min(day, first.get(name, day))
    new = {name for name, day in first.items() if start_day <= day < end_day}
    at_start, at_end = active(start_day), active(end_day)
    return {
        "customers_start": len(at_start),
        "customers_end": len(at_end),
        "new_customers": len(new),
        "retained": len(at_start & at_end),
        "reactivated": len(at_end - at_start - new),
        "lost": len(at_start - at_end),
    }


@PROPERTY_SETTINGS
@given(history=purchases, period=periods)
def test_retention_matches_the_set_definitions_and_identities(history, period):
    table, _ = _measure(history, *period)

    counts = {key: value for key, value in table.as_dict().items() if isinstance(value, int) and key != "window_days"}
    assert counts == _oracle(history, *period)
    assert table.customers_start == table.retained + table.lost
    if table.customers_start:
        assert table.crr == pytest.approx((table.retained + table.reactivated) / table.customers_start)
        assert table.churn_rate == pytest.approx(table.lost / table.customers_start)
        assert table.crr + table.churn_rate == pytest.approx(1 + table.reactivated / table.customers_start)
        if period[2] >= period[1]:  # W >= the period's length
            assert table.crr == pytest.approx((table.customers_end - table.new_customers) / table.customers_start)
    else:
        assert table.crr is None and table.churn_rate is None


@PROPERTY_SETTINGS
@given(history=purchases, period=periods)
def test_every_cohort_starts_at_one(history, period):
    _, cohorts = _measure(history, *period)
    for cohort in cohorts:
        assert cohort["retention"][0] == 1.0
        assert all(0 <= share <= 1 for share in cohort["retention"])
        assert cohort["size"] > 0


@PROPERTY_SETTINGS
@given(data=st.data(), period=periods)
def test_results_do_not_depend_on_insertion_order(data, period):
    history = data.draw(purchases)
    shuffled = data.draw(st.permutations(history))
    assert _measure(history, *period) == _measure(shuffled, *period)


ZONES = ["UTC", "Pacific/Kiritimati", "Pacific/Pago_Pago", "America/New_York", "Asia/Kathmandu"]


@PROPERTY_SETTINGS
@given(history=purchases, period=periods, zone=st.sampled_from(ZONES[1:]))
def test_noon_purchases_give_the_same_figures_in_every_store_time_zone(history, period, zone):
    with override_settings(TIME_ZONE="UTC"):
        table_utc, cohorts_utc = _measure(history, *period)
    with override_settings(TIME_ZONE=zone):
        table_zone, cohorts_zone = _measure(history, *period)
    strip = {"start", "end"}  # the same local midnights, different instants
    assert {k: v for k, v in table_zone.as_dict().items() if k not in strip} == {
        k: v for k, v in table_utc.as_dict().items() if k not in strip
    }
    assert cohorts_zone == cohorts_utc


def test_shifting_by_days_keeps_local_midnight_across_daylight_saving():
    with override_settings(TIME_ZONE="Europe/Berlin"):
        after_change = local_midnight(dt.date(2026, 4, 15))  # summer time, UTC+2
        before = shift_days(after_change, -30)  # winter time, UTC+1
        assert (before.hour, before.minute) == (0, 0)
        assert before.date() == dt.date(2026, 3, 16)
        # Aware datetimes sharing a zone subtract as wall time; compare the instants in UTC.
        assert after_change.astimezone(dt.UTC) - before.astimezone(dt.UTC) == dt.timedelta(days=30, hours=-1)


# --- Segment flow (SPEC §5): its margins are the RFM counts at each date ---------------------------

flow_purchases = st.lists(
    st.tuples(st.sampled_from(CUSTOMERS), st.integers(0, 240), st.integers(1, 500)), max_size=30
)  # customer, day, whole amount: spends differ, so F and M scores do
flow_dates = st.tuples(st.integers(0, 250), st.integers(1, 120))  # day of a, days from a to b


@PROPERTY_SETTINGS
@given(history=flow_purchases, dates=flow_dates)
def test_segment_flow_margins_are_the_segment_counts_at_each_date(history, dates):
    start = local_midnight(BASE + dt.timedelta(days=dates[0]))
    end = local_midnight(BASE + dt.timedelta(days=dates[0] + dates[1]))
    with transaction.atomic():
        bulk_history([(name, noon(BASE + dt.timedelta(days=day)), Decimal(amount)) for name, day, amount in history])
        flow = segment_flow(start=start, end=end)
        at_start, at_end = rfm.segment_counts(as_of=start), rfm.segment_counts(as_of=end)
        transaction.set_rollback(True)

    rows = flow.row_totals()
    assert {segment: rows[segment] for segment in rfm.SEGMENTS} == at_start
    assert flow.column_totals() == at_end
    bought_before = {name for name, day, _ in history if day < dates[0]}
    bought_by_end = {name for name, day, _ in history if day < dates[0] + dates[1]}
    assert rows[NONE] == len(bought_by_end - bought_before)  # new since a
    assert flow.customers == len(bought_by_end)
    assert all(n >= 0 for cells in flow.flow.values() for n in cells.values())
