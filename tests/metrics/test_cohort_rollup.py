"""The cohort-cell rollup (metrics/cohort_rollups.py) against the live cohort matrix, over generated
histories written every way purchases get written: many rows in one statement (out of date order,
so backdated), one at a time through the service, purchases backdated before a customer's first,
refunds, cancels and restores, dates moved across month ends, purchases moved to another customer,
a customer's whole history moved in one statement, deletes, and compactions in between; in store
time zones with daylight saving at midnight and odd offsets. The matrix is read with ends on month
starts and on midnights inside a month (a last month cut by the end, counted up to it).

Each example runs inside a savepoint that is rolled back; one test races real connections.
"""

import datetime as dt
import itertools
import threading
import time
import zoneinfo
from decimal import Decimal

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.test import override_settings
from hypothesis import HealthCheck, event, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from customers.models import Customer, PointsEntry, Purchase
from customers.services import customer_stats_refresh, purchase_refund
from metrics.cohort_rollups import cohort_cells, cohort_cells_compact, cohort_cells_rebuild
from metrics.cohorts import cohort_matrix, cohort_matrix_from_rollups, cohort_matrix_live
from metrics.periods import add_months, local_midnight
from metrics.rollup_fold import rollups_fold
from metrics.rollups import rollups_rebuild
from tests.metrics.conftest import buy, noon

pytestmark = pytest.mark.django_db

BASE = dt.date(2025, 1, 1)
CUSTOMERS = [f"c{n}" for n in range(6)]
# Midnight DST switches (Santiago, Havana), a half-hour DST (Lord Howe), an odd offset (Kathmandu).
ZONES = ["UTC", "America/New_York", "America/Santiago", "America/Havana", "Australia/Lord_Howe", "Asia/Kathmandu"]
PROPERTY_SETTINGS = hypothesis_settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True, database=None
)
_orders = itertools.count(1)

# Day offsets of the last and first days of the months BASE starts: the month edges.
MONTH_EDGES = sorted(
    {(dt.date(2025 + (m // 12), m % 12 + 1, 1) - BASE).days + shift for m in range(1, 14) for shift in (-1, 0)}
)


def rebuild() -> None:
    """The rollups and the cells from scratch, in the store's zone (as migrating leaves them; a
    flush by an earlier transactional test empties every table, the rollup state too)."""
    rollups_rebuild()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("LOCK TABLE customers_purchase IN SHARE MODE")
        cohort_cells_rebuild(cursor, settings.TIME_ZONE)


@pytest.fixture(autouse=True)
def cells_built(db):
    rebuild()


def compact() -> int:
    rollups_fold()
    with transaction.atomic(), connection.cursor() as cursor:
        return cohort_cells_compact(cursor)


def pending_deltas() -> int:
    """The cell deltas the writes so far come to, their pending changes folded first."""
    rollups_fold()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM metrics_cohortcelldelta")
        return cursor.fetchone()[0]


def placed(day: int, minute: int) -> dt.datetime:
    local = dt.datetime.combine(BASE + dt.timedelta(days=day), dt.time(), tzinfo=zoneinfo.ZoneInfo(settings.TIME_ZONE))
    return local + dt.timedelta(minutes=minute)  # wall clock: a gap minute lands next to the gap


def raw_purchase(customer_id: int, placed_at: dt.datetime) -> Purchase:
    return Purchase(
        external_id=f"cohort-{next(_orders):08d}",
        customer_id=customer_id,
        placed_at=placed_at,
        total=Decimal("10.00"),
        currency=settings.STORE_CURRENCY,
        status="completed",
        content_digest="test",
    )


# A purchase: customer, day offset (month edges often), minute of the local day (near midnight
# often: 23:30 on a month's last day is the next month in zones east of it).
purchase = st.tuples(
    st.sampled_from(CUSTOMERS),
    st.one_of(st.integers(0, 400), st.sampled_from(MONTH_EDGES)),
    st.one_of(st.sampled_from([0, 1, 30, 60, 1410, 1439]), st.integers(0, 1439)),
)
# What happens after the history is written, on the n-th purchase or customer (modulo their number).
change = st.tuples(
    st.sampled_from(
        ["refunded", "cancelled", "completed", "move_day", "move_customer", "delete", "backdate", "move_all", "compact"]
    ),
    st.integers(0, 1000),
    st.integers(-40, 40),
)
# A matrix to read: how many months before the end's the first cohort is, then where the end is: the first of a month, a
# midnight inside one, or a few days before the last purchase (a month cut near its busy end).
query = st.tuples(
    st.integers(0, 14),
    st.one_of(
        st.tuples(st.just("month"), st.integers(1, 15)),
        st.tuples(st.just("day"), st.integers(1, 430)),
        st.tuples(st.just("last"), st.integers(0, 5)),
    ),
)


def write(history: list[tuple[str, int, int]], singles: list[tuple[str, int, int]]) -> None:
    names = sorted({name for name, _, _ in history + singles})
    Customer.objects.bulk_create([Customer(external_id=name) for name in names], ignore_conflicts=True)
    ids = dict(Customer.objects.filter(external_id__in=names).values_list("external_id", "pk"))
    # One INSERT of many rows, in the order drawn: a customer's later rows are often earlier days.
    Purchase.objects.bulk_create([raw_purchase(ids[name], placed(day, minute)) for name, day, minute in history])
    customer_stats_refresh(customer_ids=ids.values())
    for name, day, minute in singles:  # one at a time through the service (stats, loyalty, campaigns)
        buy(name, placed(day, minute))


def apply(changes: list[tuple[str, int, int]]) -> None:
    customers = list(Customer.objects.order_by("pk").values_list("pk", flat=True))
    for kind, n, shift in changes:
        purchases = list(Purchase.objects.order_by("pk").values_list("pk", "placed_at", "customer_id"))
        if kind == "compact":
            compact()
            continue
        if not purchases:
            continue
        pk, placed_at, customer_id = purchases[n % len(purchases)]
        rows = Purchase.objects.filter(pk=pk)
        if kind in ("refunded", "cancelled", "completed"):
            rows.update(status=kind)
        elif kind == "move_day":
            rows.update(placed_at=placed_at + dt.timedelta(days=shift, minutes=shift * 7))
        elif kind == "move_customer":
            rows.update(customer_id=customers[n % len(customers)])
        elif kind == "backdate":  # before the customer's first purchase: the whole row moves
            first = Purchase.objects.filter(customer_id=customer_id).order_by("placed_at").first()
            raw_purchase(customer_id, first.placed_at - dt.timedelta(days=abs(shift) + 1, hours=shift)).save()
        elif kind == "move_all":  # every purchase of the customer, in one statement
            with connection.cursor() as cursor:
                cursor.execute(
                    "UPDATE customers_purchase SET placed_at = placed_at + %s WHERE customer_id = %s",
                    [dt.timedelta(days=shift), customer_id],
                )
        elif not PointsEntry.objects.filter(purchase_id=pk).exists():  # the ledger keeps its purchases
            rows.delete()
    customer_stats_refresh(customer_ids=customers)  # first_purchase_at, which the live matrix reads


def query_bounds(months_back: int, end_spec: tuple[str, int]) -> tuple[dt.datetime, dt.datetime]:
    """The end as drawn; the start ``months_back`` months before the end's last month."""
    kind, n = end_spec
    if kind == "month":
        end = add_months(local_midnight(BASE), n)
    elif kind == "day":
        end = local_midnight(BASE + dt.timedelta(days=n))
    else:
        latest = Purchase.objects.order_by("-placed_at").values_list("placed_at", flat=True).first()
        last_day = latest.astimezone(zoneinfo.ZoneInfo(settings.TIME_ZONE)).date() if latest else BASE
        end = local_midnight(max(last_day - dt.timedelta(days=n), BASE + dt.timedelta(days=1)))
    return add_months(end - dt.timedelta(microseconds=1), -months_back), end


@PROPERTY_SETTINGS
@given(
    zone=st.sampled_from(ZONES),
    history=st.lists(purchase, max_size=25),
    singles=st.lists(purchase, max_size=4),
    changes=st.lists(change, max_size=7),
    queries=st.lists(query, min_size=1, max_size=4),
)
def test_the_cells_answer_exactly_as_the_purchases_do(zone, history, singles, changes, queries):
    with override_settings(TIME_ZONE=zone), transaction.atomic():
        rebuild()  # in this zone, from an empty history
        write(history, singles)
        apply(changes)
        kept = cohort_cells()
        for first, end_spec in queries:
            start, end = query_bounds(first, end_spec)
            live = [c.as_dict() for c in cohort_matrix_live(start=start, end=end)]
            fast = cohort_matrix_from_rollups(start=start, end=end)
            assert fast is not None  # store midnights, in the rollups' zone
            cut = end != add_months(end - dt.timedelta(microseconds=1), 1)
            event(f"{'cut' if cut else 'whole'} last month")
            assert [c.as_dict() for c in fast] == live
            assert [c.as_dict() for c in cohort_matrix(start=start, end=end)] == live
        rebuild()
        assert cohort_cells() == kept  # kept current = recomputed from scratch
        transaction.set_rollback(True)


def matrix(start: dt.date, end: dt.date) -> list[dict]:
    """The fast matrix, checked against the live one."""
    fast = cohort_matrix_from_rollups(start=local_midnight(start), end=local_midnight(end))
    assert fast is not None
    rows = [c.as_dict() for c in fast]
    assert rows == [c.as_dict() for c in cohort_matrix_live(start=local_midnight(start), end=local_midnight(end))]
    return rows


def d(month: int, day: int = 1) -> dt.date:
    return dt.date(2026, month, day)


def test_a_purchase_at_half_past_eleven_on_a_months_last_night_counts_in_that_month():
    with override_settings(TIME_ZONE="America/New_York"):
        rebuild()
        buy("late", local_midnight(d(1, 31)).replace(hour=23, minute=30))  # February in UTC
        buy("late", local_midnight(d(2, 28)).replace(hour=23, minute=30))  # March in UTC
        buy("early", local_midnight(d(2)).replace(minute=30))
        assert cohort_cells() == [(d(1), d(1), d(1, 31), 1), (d(1), d(2), d(2, 28), 1), (d(2), d(2), d(2), 1)]
        assert matrix(d(1), d(3)) == [
            {"cohort": "2026-01", "size": 1, "retention": [1.0, 1.0], "active": [1, 1]},
            {"cohort": "2026-02", "size": 1, "retention": [1.0], "active": [1]},
        ]
        # Ending on 28 February: "late" has not bought in February yet.
        assert matrix(d(1), d(2, 28)) == [
            {"cohort": "2026-01", "size": 1, "retention": [1.0, 0.0], "active": [1, 0]},
            {"cohort": "2026-02", "size": 1, "retention": [1.0], "active": [1]},
        ]


def test_a_cut_last_month_counts_only_the_purchases_before_the_end():
    end = d(3, 10)
    buy("stays", noon(d(1, 5)))
    buy("leaves", noon(d(1, 6)))
    buy("stays", noon(d(3, 2)))
    buy("stays", noon(end))
    buy("leaves", noon(end))  # its only March purchases are from the end on: not counted in March
    buy("leaves", noon(end + dt.timedelta(days=1)))
    buy("first-late", local_midnight(end))  # first purchase at the end: no cohort yet
    buy("first-early", noon(d(3, 3)))
    buy("first-early", noon(end + dt.timedelta(days=2)))
    assert [cell for cell in cohort_cells() if cell[1] == d(3)] == [
        (d(1), d(3), d(3, 2), 1),
        (d(1), d(3), end, 1),
        (d(3), d(3), d(3, 3), 1),
        (d(3), d(3), end, 1),
    ]
    assert matrix(d(1), end) == [
        {"cohort": "2026-01", "size": 2, "retention": [1.0, 0.0, 0.5], "active": [2, 0, 1]},
        {"cohort": "2026-03", "size": 1, "retention": [1.0], "active": [1]},
    ]
    assert matrix(d(1), end + dt.timedelta(days=1))[0]["active"] == [2, 0, 2]
    assert matrix(d(1), d(4))[1]["size"] == 2


def test_a_bound_off_a_store_midnight_is_answered_live():
    buy("off", noon(d(3, 1)))
    buy("off", noon(d(3, 20)))
    start, off = local_midnight(d(1)), local_midnight(d(3, 20)) + dt.timedelta(hours=13)
    assert cohort_matrix_from_rollups(start=start, end=off) is None
    assert cohort_matrix(start=start, end=off) == cohort_matrix_live(start=start, end=off)
    assert cohort_matrix_from_rollups(start=start + dt.timedelta(hours=1), end=local_midnight(d(4))) is None


def test_a_purchase_backdated_before_the_first_moves_the_whole_row():
    buy("moves", noon(d(2, 3)))
    buy("moves", noon(d(3, 3)))
    buy("moves", noon(d(4, 3)))
    row = [(d(2), d(2, 3)), (d(3), d(3, 3)), (d(4), d(4, 3))]
    assert cohort_cells() == [(d(2), month, day, 1) for month, day in row]
    first = buy("moves", noon(d(1, 30)))
    assert cohort_cells() == [(d(1), d(1), d(1, 30), 1)] + [(d(1), month, day, 1) for month, day in row]
    purchase_refund(external_id=first.external_id)  # and back again
    assert cohort_cells() == [(d(2), month, day, 1) for month, day in row]
    assert matrix(d(1), d(5)) == [
        {"cohort": "2026-02", "size": 1, "retention": [1.0, 1.0, 1.0], "active": [1, 1, 1]},
    ]


def test_an_earlier_purchase_in_a_month_moves_its_first_day():
    buy("early", noon(d(1, 5)))
    buy("early", noon(d(2, 20)))
    buy("early", noon(d(2, 9)))
    assert cohort_cells() == [(d(1), d(1), d(1, 5), 1), (d(1), d(2), d(2, 9), 1)]
    assert matrix(d(1), d(2, 10))[0]["active"] == [1, 1]


def test_writes_that_change_no_cell_append_nothing():
    buy("quiet", noon(d(1, 5)))
    compact()
    buy("quiet", noon(d(1, 20)))  # later in a month already bought in
    Purchase.objects.update(total=Decimal("12.00"))  # no date, customer or status change
    Purchase.objects.filter(placed_at__gte=noon(d(1, 20))).update(placed_at=noon(d(1, 25)))
    assert pending_deltas() == 0
    buy("quiet", noon(d(2)))
    assert pending_deltas() == 1


def test_the_fast_matrix_takes_one_query(django_assert_num_queries):
    buy("a", noon(d(1, 10)))
    buy("a", noon(d(2, 10)))
    buy("b", noon(d(2, 11)))
    buy("b", noon(d(2, 12)))  # in the cut part of February
    rollups_fold()  # the usual read: the writes' changes already folded by the task after commit
    start, end = local_midnight(dt.date(2025, 3, 1)), local_midnight(d(2, 11))
    with django_assert_num_queries(1):
        rows = [c.as_dict() for c in cohort_matrix(start=start, end=end)]
    assert rows == [{"cohort": "2026-01", "size": 1, "retention": [1.0, 1.0], "active": [1, 1]}]
    assert rows == [c.as_dict() for c in cohort_matrix_live(start=start, end=end)]


def test_reads_go_live_when_the_store_time_zone_changed_until_a_rebuild():
    buy("tz", local_midnight(dt.date(2026, 1, 31)).replace(hour=20))
    start, end = local_midnight(dt.date(2026, 1, 1)), local_midnight(dt.date(2026, 3, 1))
    assert cohort_matrix_from_rollups(start=start, end=end) is not None
    with override_settings(TIME_ZONE="Asia/Tokyo"):
        start, end = local_midnight(dt.date(2026, 1, 1)), local_midnight(dt.date(2026, 3, 1))
        assert cohort_matrix_from_rollups(start=start, end=end) is None
        assert [c.label for c in cohort_matrix(start=start, end=end)] == ["2026-02"]
        rebuild()
        assert [c.label for c in cohort_matrix_from_rollups(start=start, end=end)] == ["2026-02"]


def test_compaction_folds_the_deltas_and_keeps_the_cells():
    buy("fold", noon(dt.date(2026, 1, 5)))
    buy("fold", noon(dt.date(2026, 2, 5)))
    buy("other", noon(dt.date(2026, 2, 6)))
    before = cohort_cells()
    assert pending_deltas() > 0
    assert compact() > 0
    assert pending_deltas() == 0
    assert cohort_cells() == before
    assert before == [(d(1), d(1), d(1, 5), 1), (d(1), d(2), d(2, 5), 1), (d(2), d(2), d(2, 6), 1)]


def test_emptying_the_purchases_empties_the_cells():
    buy("gone", noon(dt.date(2026, 1, 5)))
    compact()
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # run the deferred foreign-key checks first
        cursor.execute("TRUNCATE customers_purchase CASCADE")
    assert cohort_cells() == []


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_of_one_customer_never_both_miss_each_other():
    """Each writer's trigger locks the customer before probing, so the second reads after the first
    committed: two first purchases of a month (or two backdated firsts) never both count."""
    rebuild()  # a transactional test starts from flushed tables
    buy("racer", noon(d(3, 15)))
    customer_id = Customer.objects.get(external_id="racer").pk
    days = [d(4, day) for day in (20, 10, 5, 25)] + [d(2, day) for day in (9, 3)]  # new months, backdated
    barrier = threading.Barrier(len(days))
    errors: list[BaseException] = []

    def write(day: dt.date) -> None:
        try:
            barrier.wait(timeout=30)
            with transaction.atomic():
                raw_purchase(customer_id, noon(day)).save()
                time.sleep(0.2)  # still uncommitted while the others' triggers run
        except Exception as error:  # reported by the assertion below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(day,)) for day in days]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    kept = cohort_cells()
    assert kept == [(d(2), d(2), d(2, 3), 1), (d(2), d(3), d(3, 15), 1), (d(2), d(4), d(4, 5), 1)]
    rebuild()
    assert cohort_cells() == kept
