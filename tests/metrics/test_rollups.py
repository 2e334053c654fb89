"""The day-chain rollup (metrics/rollups.py) against the live selectors, over generated histories
written every way purchases get written: many rows in one statement (out of date order, so
backdated), one at a time, refunds and cancels, moved dates and customers, deletes, and
compactions in between, in store time zones with daylight saving at midnight and odd offsets.

Each example runs inside a savepoint that is rolled back.
"""

import datetime as dt
import itertools
import zoneinfo
from decimal import Decimal

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.db.models import F
from django.test import override_settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from customers.models import Customer, PointsEntry, Purchase
from customers.services import customer_stats_refresh
from metrics.periods import local_midnight
from metrics.retention import retention, retention_from_rollups, retention_live
from metrics.rollups import chain_pairs, rollup_rows, rollups_compact, rollups_current, rollups_rebuild
from metrics.summary import summary, summary_from_rollups, summary_live
from tests.metrics.conftest import buy, noon

pytestmark = pytest.mark.django_db

BASE = dt.date(2025, 3, 1)
CUSTOMERS = [f"r{n}" for n in range(6)]
# Midnight DST switches (Santiago, Havana), a half-hour DST (Lord Howe), an odd offset (Kathmandu).
ZONES = ["UTC", "Europe/Berlin", "America/Santiago", "America/Havana", "Australia/Lord_Howe", "Asia/Kathmandu"]
PROPERTY_SETTINGS = hypothesis_settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True, database=None
)
_orders = itertools.count(1)


@pytest.fixture(autouse=True)
def rollups_built(db):
    """Built in the store's zone, as migrating leaves them (a flush by an earlier transactional
    test empties every table, the rollup state too)."""
    rollups_rebuild()


# A purchase: customer, day offset, minute of the local day (near midnight often: the edges).
purchase = st.tuples(
    st.sampled_from(CUSTOMERS),
    st.integers(0, 400),
    st.one_of(st.sampled_from([0, 1, 59, 60, 1380, 1439]), st.integers(0, 1439)),
)
# What happens to the history after it is written: refund / cancel / move a date / move to another
# customer / delete / compact, each on the n-th purchase (modulo their number); or one statement
# moving or refunding every third purchase from the n-th on (many customers and far-apart days at once).
change = st.tuples(
    st.sampled_from(
        ["refunded", "cancelled", "move_day", "move_customer", "delete", "compact", "move_many", "refund_many"]
    ),
    st.integers(0, 1000),
    st.integers(-40, 40),
)
period = st.tuples(st.integers(0, 420), st.integers(1, 120), st.integers(1, 150))  # start day, length, W


def placed(day: int, minute: int) -> dt.datetime:
    local = dt.datetime.combine(BASE + dt.timedelta(days=day), dt.time(), tzinfo=zoneinfo.ZoneInfo(settings.TIME_ZONE))
    return local + dt.timedelta(minutes=minute)  # wall clock: a gap minute lands next to the gap


def write(history: list[tuple[str, int, int]], singles: list[tuple[str, int, int]]) -> None:
    names = sorted({name for name, _, _ in history + singles})
    Customer.objects.bulk_create([Customer(external_id=name) for name in names], ignore_conflicts=True)
    ids = dict(Customer.objects.filter(external_id__in=names).values_list("external_id", "pk"))
    # One INSERT of many rows, in the order drawn: a customer's later rows are often earlier days.
    Purchase.objects.bulk_create(
        [
            Purchase(
                external_id=f"roll-{next(_orders):08d}",
                customer_id=ids[name],
                placed_at=placed(day, minute),
                total=Decimal(minute % 50) + Decimal(day % 100) / 100,  # cents that must add up
                currency=settings.STORE_CURRENCY,
                status="completed",
                content_digest="test",
            )
            for name, day, minute in history
        ]
    )
    customer_stats_refresh(customer_ids=ids.values())
    for name, day, minute in singles:  # one at a time through the service (stats, loyalty, campaigns)
        buy(name, placed(day, minute))


def apply(changes: list[tuple[str, int, int]]) -> None:
    purchases = list(Purchase.objects.order_by("pk").values_list("pk", "placed_at", "customer_id"))
    customers = list(Customer.objects.order_by("pk").values_list("pk", flat=True))
    for kind, n, shift in changes:
        if kind == "compact":
            rollups_compact()
            continue
        if not purchases:
            continue
        pk, placed_at, customer_id = purchases[n % len(purchases)]
        rows = Purchase.objects.filter(pk=pk)
        many = Purchase.objects.filter(pk__in=[row[0] for row in purchases[n % len(purchases) :: 3]])
        if kind == "move_many":
            many.update(placed_at=F("placed_at") + dt.timedelta(days=shift * 5, minutes=shift))
            purchases = list(Purchase.objects.order_by("pk").values_list("pk", "placed_at", "customer_id"))
        elif kind == "refund_many":
            many.update(status="refunded")
        elif kind in ("refunded", "cancelled"):
            rows.update(status=kind)
        elif kind == "move_day":
            rows.update(placed_at=placed_at + dt.timedelta(days=shift, minutes=shift * 7))
        elif kind == "move_customer":
            rows.update(customer_id=customers[n % len(customers)])
        elif not PointsEntry.objects.filter(purchase_id=pk).exists():  # the ledger keeps its purchases
            rows.delete()
            purchases.remove((pk, placed_at, customer_id))
    customer_stats_refresh(customer_ids=customers)  # first_purchase_at, which both paths read


@PROPERTY_SETTINGS
@given(
    zone=st.sampled_from(ZONES),
    history=st.lists(purchase, max_size=25),
    singles=st.lists(purchase, max_size=4),
    changes=st.lists(change, max_size=6),
    periods=st.lists(period, min_size=1, max_size=4),
)
def test_the_rollup_answers_exactly_as_the_purchases_do(zone, history, singles, changes, periods):
    with override_settings(TIME_ZONE=zone), transaction.atomic():
        rollups_rebuild()  # in this zone, from an empty history
        write(history, singles)
        apply(changes)
        incremental = rollup_rows()
        answered = 0
        for start_day, length, window in periods:
            start = local_midnight(BASE + dt.timedelta(days=start_day))
            end = local_midnight(BASE + dt.timedelta(days=start_day + length))
            fast = retention_from_rollups(start=start, end=end, window_days=window)
            live = retention_live(start=start, end=end, window_days=window)
            # The rollup answers exactly the periods no longer than the window.
            assert (fast is not None) == (length <= window)
            if fast is not None:
                answered += 1
                assert fast == live
            assert retention(start=start, end=end, window_days=window) == live
            # Every store-midnight period is read off the rollups (those over 31 days count
            # their repeat customers from the purchases).
            assert summary_from_rollups(start=start, end=end, window_days=window) == summary_live(
                start=start, end=end, window_days=window
            )
        rollups_rebuild()
        assert rollup_rows() == incremental  # kept current = recomputed from scratch
        transaction.set_rollback(True)


def test_reads_go_live_when_the_store_time_zone_changed_until_a_rebuild(history):
    buy("tz-1", noon(BASE))
    start, end = local_midnight(BASE), local_midnight(BASE + dt.timedelta(days=30))
    assert retention_from_rollups(start=start, end=end, window_days=90) is not None
    with override_settings(TIME_ZONE="Asia/Tokyo"):
        assert not rollups_current()
        start, end = local_midnight(BASE), local_midnight(BASE + dt.timedelta(days=30))
        assert retention_from_rollups(start=start, end=end, window_days=90) is None
        assert retention(start=start, end=end, window_days=90) == retention_live(start=start, end=end, window_days=90)
        call_command("metrics_rollups_rebuild", verbosity=0)
        assert rollups_current()
        assert retention_from_rollups(start=start, end=end, window_days=90) is not None


def test_a_bound_that_is_not_a_store_midnight_is_answered_live(history):
    buy("edge-1", noon(BASE))
    start = local_midnight(BASE) + dt.timedelta(hours=6)
    end = local_midnight(BASE + dt.timedelta(days=10))
    assert retention_from_rollups(start=start, end=end, window_days=90) is None
    assert retention(start=start, end=end, window_days=90) == retention_live(start=start, end=end, window_days=90)


def test_compaction_folds_the_deltas_and_keeps_the_figures(history):
    for day in (0, 3, 3, 9):
        buy("compact-1", noon(BASE + dt.timedelta(days=day)))
    buy("compact-2", noon(BASE + dt.timedelta(days=5)))
    before = chain_pairs()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM metrics_daychaindelta")
        assert cursor.fetchone()[0] > 0
    assert rollups_compact() > 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM metrics_daychaindelta")
        assert cursor.fetchone()[0] == 0
    assert chain_pairs() == before
    first, fourth, tenth, sixth = (BASE + dt.timedelta(days=d) for d in (0, 3, 9, 5))
    assert dict(((day, next_day), n) for day, next_day, n in before) == {
        (dt.date(1, 1, 1), first): 1,
        (first, fourth): 1,
        (fourth, tenth): 1,
        (tenth, dt.date(9999, 12, 31)): 1,
        (dt.date(1, 1, 1), sixth): 1,
        (sixth, dt.date(9999, 12, 31)): 1,
    }


def test_emptying_the_purchases_empties_the_rollup(history):
    buy("gone-1", noon(BASE))
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # run the deferred foreign-key checks first
        cursor.execute("TRUNCATE customers_purchase CASCADE")
    assert chain_pairs() == []


def test_the_rebuild_check_finds_a_rollup_that_drifted_and_changes_nothing(history):
    buy("check-1", noon(BASE))
    call_command("metrics_rollups_rebuild", "--check", verbosity=0)  # kept by the triggers: matches
    with connection.cursor() as cursor:  # a change no purchase explains
        cursor.execute("INSERT INTO metrics_daychaindelta (day, next_day, customers) VALUES (%s, %s, 1)", [BASE, BASE])
    drifted = chain_pairs()
    with pytest.raises(CommandError, match="differ"):
        call_command("metrics_rollups_rebuild", "--check", verbosity=0)
    assert chain_pairs() == drifted


def test_repeat_customers_at_the_edges_of_short_periods(history):
    """Purchase days exactly at a period's start and end, two orders on one day, and gaps of 31,
    32 and 33 days (the cap): every period of up to 31 days answers as the purchases do."""
    days = {
        "edge-a": [10, 10, 20],
        "edge-b": [5, 15, 46],
        "edge-c": [12],
        "edge-d": [3, 34, 66, 99],
        "edge-e": [0, 1, 2, 2],
    }
    for name, offsets in days.items():
        for offset in offsets:
            buy(name, noon(BASE + dt.timedelta(days=offset)))
    for start_day in range(0, 70):
        for length in (1, 2, 10, 11, 30, 31, 32):
            start = local_midnight(BASE + dt.timedelta(days=start_day))
            end = local_midnight(BASE + dt.timedelta(days=start_day + length))
            fast = summary_from_rollups(start=start, end=end, window_days=90)
            assert fast == summary_live(start=start, end=end, window_days=90), (start_day, length)
    # One period worked by hand: days [10, 21) hold edge-a (3 orders), edge-b (day 15), edge-c (12).
    figures = summary(
        start=local_midnight(BASE + dt.timedelta(days=10)), end=local_midnight(BASE + dt.timedelta(days=21))
    )
    assert (figures.purchasing_customers, figures.repeat_customers, figures.orders) == (3, 1, 5)
