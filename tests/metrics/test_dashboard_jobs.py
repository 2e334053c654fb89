"""Dashboard periods the rollups cannot answer: computed during the request while the scan is
small, else by a real Celery worker while the page shows progress (metrics/jobs.py)."""

import datetime as dt
import re
import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from metrics import jobs
from metrics.cohorts import cohort_matrix_live
from metrics.dashboard import dashboard_build
from metrics.jobs import RESULT_FRESH, dashboard_job_key
from metrics.models import MetricsJob, MetricsJobStatus, RollupState
from metrics.periods import DEFAULT_COHORT_MONTHS, Period, add_months, local_midnight
from metrics.retention import retention_live
from metrics.rollups import rollups_rebuild
from metrics.summary import summary_live
from tests.metrics.conftest import buy, noon

TODAY = timezone.localdate()
# 120 days with W = 90: longer than the window, so retention cannot come from the day chain.
LONG = Period(start=local_midnight(TODAY - dt.timedelta(days=120)), end=local_midnight(TODAY))
WINDOW = 90


def shop() -> None:
    for name, days_ago in [("ann", 200), ("ann", 100), ("ann", 10), ("bob", 95), ("bob", 5), ("cy", 30), ("cy", 30)]:
        buy(name, noon(TODAY - dt.timedelta(days=days_ago)))
    rollups_rebuild()  # transactional tests start from flushed tables, the rollup state too


def expected(period: Period) -> tuple:
    cohort_start = add_months(period.end - dt.timedelta(microseconds=1), -(DEFAULT_COHORT_MONTHS - 1))
    return (
        retention_live(start=period.start, end=period.end, window_days=WINDOW),
        summary_live(start=period.start, end=period.end, window_days=WINDOW),
        cohort_matrix_live(start=cohort_start, end=period.end),
    )


def assert_no_history_read(queries: CaptureQueriesContext, end: dt.datetime) -> None:
    """Purchases were read only from ``end`` on (the cohorts' partial month, RFM's check for
    purchases after now), never the history the figures cover."""
    for sql in [q["sql"] for q in queries if "customers_purchase" in q["sql"]]:
        bound = re.search(r"placed_at\"? >= '([^']+)'", sql)
        assert bound and dt.datetime.fromisoformat(bound.group(1)) >= end, sql


def shown(board) -> tuple:
    return board.retention, board.summary, [row.cohort for row in board.cohorts]


@pytest.mark.django_db
def test_a_small_scan_is_computed_during_the_request():
    shop()
    board = dashboard_build(period=LONG, window_days=WINDOW)
    assert board.job is None and not board.computing
    assert shown(board) == expected(LONG)
    assert not MetricsJob.objects.exists()


@pytest.mark.django_db
def test_the_default_period_reads_the_rollups_and_never_the_purchases():
    shop()
    period = Period(start=local_midnight(TODAY - dt.timedelta(days=30)), end=local_midnight(TODAY))
    with CaptureQueriesContext(connection) as queries:
        board = dashboard_build(period=period, window_days=WINDOW)
    assert shown(board) == expected(period)
    assert_no_history_read(queries, period.end)


def wait_for(status: str, key: str, seconds: float = 60) -> MetricsJob:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job = MetricsJob.objects.filter(key=key).first()
        if job is not None and job.status == status:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {key} never became {status}: {MetricsJob.objects.filter(key=key).first()}")


def test_a_large_scan_goes_to_a_worker_and_the_page_fills_in(celery_worker, admin_client, monkeypatch):
    shop()
    monkeypatch.setattr(jobs, "INLINE_SCAN_PURCHASES", 0)  # this shop's scan counts as large
    params = {"start": LONG.start.date().isoformat(), "end": LONG.end.date().isoformat(), "window_days": WINDOW}

    with CaptureQueriesContext(connection) as queries:
        page = admin_client.get("/admin/metrics/dashboard/", params)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="figures-computing"' in html and 'http-equiv="refresh"' in html
    assert 'id="retention-cards"' not in html
    assert_no_history_read(queries, LONG.end)  # the worker reads it

    cohort_start = add_months(LONG.end - dt.timedelta(microseconds=1), -(DEFAULT_COHORT_MONTHS - 1))
    key = dashboard_job_key(period=LONG, cohort_start=cohort_start, window_days=WINDOW)
    job = wait_for(MetricsJobStatus.DONE, key)

    board = dashboard_build(period=LONG, window_days=WINDOW)
    assert board.job.pk == job.pk and not board.computing
    assert shown(board) == expected(LONG)  # the worker's figures, to the cent and the count
    html = admin_client.get("/admin/metrics/dashboard/", params).content.decode()
    assert 'id="retention-cards"' in html and 'id="figures-computed-at"' in html
    assert 'http-equiv="refresh"' not in html

    # A result serves for a while, then the next visit computes it again.
    MetricsJob.objects.filter(pk=job.pk).update(finished_at=timezone.now() - RESULT_FRESH - dt.timedelta(seconds=1))
    assert dashboard_build(period=LONG, window_days=WINDOW).computing
    wait_for(MetricsJobStatus.DONE, key)
    assert MetricsJob.objects.filter(key=key).count() == 1


@pytest.mark.django_db
def test_a_failed_job_says_so_and_is_requested_again(monkeypatch, admin_client):
    shop()
    monkeypatch.setattr(jobs, "INLINE_SCAN_PURCHASES", 0)
    cohort_start = add_months(LONG.end - dt.timedelta(microseconds=1), -(DEFAULT_COHORT_MONTHS - 1))
    key = dashboard_job_key(period=LONG, cohort_start=cohort_start, window_days=WINDOW)
    MetricsJob.objects.create(
        key=key, status=MetricsJobStatus.FAILED, error="boom", requested_at=timezone.now(), finished_at=timezone.now()
    )
    board = dashboard_build(period=LONG, window_days=WINDOW)
    assert board.computing and board.job.status == MetricsJobStatus.PENDING and board.job.error == ""


@pytest.mark.django_db
def test_without_current_rollups_a_small_shop_is_still_computed_during_the_request():
    shop()
    RollupState.objects.all().delete()  # as after a TIME_ZONE change, before the rebuild
    board = dashboard_build(period=LONG, window_days=WINDOW)
    assert board.job is None and shown(board) == expected(LONG)
