"""The purchase trigger leaves the costly part of the rollups pending; the fold takes it off the write
path (metrics/rollup_fold.py): after commit in a real worker, in the compaction, and in any read
that finds changes pending. Reads stay exact whichever ran."""

import datetime as dt
import threading
import time
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from customers.models import Purchase
from customers.services import purchase_refund, purchases_record_bulk
from metrics import rollup_fold
from metrics.cohort_rollups import cohort_cells
from metrics.periods import local_midnight
from metrics.retention import retention, retention_live
from metrics.rollup_fold import FOLD_LOCK, FOLD_SOON_KEY, rollups_fold, rollups_pending
from metrics.rollups import chain_counts, rollup_rows, rollups_compact, rollups_rebuild
from tests.metrics.conftest import bulk_history, buy, noon

pytestmark = pytest.mark.django_db

TODAY = timezone.localdate()
START = local_midnight(TODAY - dt.timedelta(days=30))
END = local_midnight(TODAY)


def table_rows(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")
        return cursor.fetchone()[0]


def recomputed() -> dict[str, list[tuple]]:
    """Every rollup as a rebuild from the purchases makes it, rolled back afterwards."""
    with transaction.atomic():
        rollups_rebuild()
        rows = rollup_rows()
        transaction.set_rollback(True)
    return rows


def history() -> None:
    for name, days_ago in [("ann", 80), ("ann", 20), ("ann", 3), ("bob", 40), ("bob", 10), ("cy", 2), ("cy", 2)]:
        buy(name, noon(TODAY - dt.timedelta(days=days_ago)))


def test_the_trigger_keeps_the_day_totals_and_leaves_the_rest_pending():
    rollups_fold()
    chain_before = table_rows("metrics_daychaindelta")
    history()
    assert table_rows("metrics_purchasechange") == 7  # one row per completed purchase written
    assert table_rows("metrics_daychaindelta") == chain_before  # nothing computed in the write
    assert table_rows("metrics_daytotaldelta") > 0  # additive: kept by the trigger itself

    assert rollups_fold() == 7
    assert not rollups_pending()
    assert table_rows("metrics_daychaindelta") > chain_before


def test_folding_many_writes_at_once_equals_the_rebuild():
    history()
    purchase_refund(external_id=Purchase.objects.filter(customer__external_id="ann").latest("placed_at").external_id)
    Purchase.objects.filter(customer__external_id="bob").update(placed_at=noon(TODAY - dt.timedelta(days=50)))
    Purchase.objects.filter(customer__external_id="cy").update(status="cancelled")
    bulk_history([("dee", noon(TODAY - dt.timedelta(days=6)), Decimal("5.00"))])  # no points: deletable
    Purchase.objects.filter(customer__external_id="dee").delete()
    assert rollups_pending()
    assert rollup_rows() == recomputed()  # rollup_rows folds first
    assert not rollups_pending()


def test_a_read_with_changes_pending_folds_them_first_and_answers_exactly(django_assert_max_num_queries):
    history()
    assert rollups_pending()
    # The read, the fold's savepoint, lock and statement, and the read again.
    with django_assert_max_num_queries(6):
        fast = retention(start=START, end=END, window_days=90)
    assert not rollups_pending()
    assert fast == retention_live(start=START, end=END, window_days=90)
    with django_assert_max_num_queries(1):  # nothing pending: one statement
        assert retention(start=START, end=END, window_days=90) == fast


def test_compaction_folds_the_pending_changes_first():
    history()
    rollups_compact()
    assert not rollups_pending()
    assert table_rows("metrics_daychaindelta") == 0
    assert rollup_rows() == recomputed()


def test_the_rebuild_and_emptying_the_purchases_drop_what_is_pending():
    history()
    rollups_rebuild()
    assert not rollups_pending()
    buy("dee", noon(TODAY))
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("TRUNCATE customers_purchase CASCADE")
    assert not rollups_pending()
    assert cohort_cells() == []


@pytest.mark.django_db(transaction=True)
def test_a_fold_never_takes_the_changes_of_a_writer_still_in_flight():
    """The fold's snapshot holds the writer's purchases and pending rows both or neither."""
    rollups_rebuild()  # a transactional test starts from flushed tables
    buy("early", noon(TODAY - dt.timedelta(days=5)))
    written, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def slow_writer() -> None:
        try:
            with transaction.atomic():
                buy("late", noon(TODAY - dt.timedelta(days=1)))
                written.set()
                release.wait(timeout=30)
        except BaseException as error:  # reported by the assertion below
            errors.append(error)
        finally:
            connection.close()

    thread = threading.Thread(target=slow_writer)
    thread.start()
    assert written.wait(timeout=30)
    assert rollups_fold() == 1  # "early" only: "late" is not committed
    release.set()
    thread.join(timeout=30)
    assert not errors
    assert rollups_pending()  # "late" committed after the fold
    fast = retention(start=START, end=END, window_days=90)
    assert fast == retention_live(start=START, end=END, window_days=90)
    assert fast.customers_end == 2
    assert rollup_rows() == recomputed()


@pytest.mark.django_db(transaction=True)
def test_a_read_answers_live_when_another_fold_holds_the_lock_too_long(monkeypatch):
    rollups_rebuild()
    buy("ann", noon(TODAY - dt.timedelta(days=5)))
    monkeypatch.setattr(rollup_fold, "FOLD_WAIT_SECONDS", 0.2)
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [FOLD_LOCK])
            held.set()
            release.wait(timeout=30)
        connection.close()

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert held.wait(timeout=30)
        assert chain_counts(start_day=START.date(), end_day=END.date(), window_days=90) is None
        # The selector then answers from the purchases, still exact.
        assert retention(start=START, end=END, window_days=90).customers_end == 1
    finally:
        release.set()
        thread.join(timeout=30)
    assert chain_counts(start_day=START.date(), end_day=END.date(), window_days=90) is not None


@pytest.mark.django_db(transaction=True)
def test_a_worker_folds_a_batch_right_after_it_commits(celery_worker):
    rollups_rebuild()
    cache.delete(FOLD_SOON_KEY)  # an earlier test's write may have queued a task the worker's start purged
    results = purchases_record_bulk(
        raw_purchases=[
            {
                "external_id": f"fold-{n}",
                "customer": f"buyer-{n % 7}",
                "placed_at": (timezone.now() - dt.timedelta(days=n)).isoformat(),
                "total": str(Decimal("10.00") + n),
            }
            for n in range(40)
        ]
    )
    assert {result.status for result in results} == {"created"}
    deadline = time.monotonic() + 30
    while rollups_pending() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not rollups_pending()  # taken by the worker, not by a read
    assert rollup_rows() == recomputed()
