"""Metrics API reads the rollups cannot answer (metrics/read_jobs.py): computed during the request
while the scan is small, else by a real Celery worker, the API answering 202 until they are in."""

import datetime as dt
import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from metrics import jobs, rfm
from metrics.cohorts import cohort_matrix_live
from metrics.models import MetricsJob, MetricsJobStatus
from metrics.periods import local_midnight
from metrics.read_jobs import read_job_key
from metrics.retention import retention_live
from metrics.rfm_flow import segment_flow
from metrics.rollups import rollups_rebuild
from metrics.serializers import (
    CohortsSerializer,
    RetentionSerializer,
    RfmFlowSerializer,
    RfmRowSerializer,
    SummarySerializer,
)
from metrics.summary import summary_live
from tests.metrics.conftest import buy, noon
from tests.metrics.test_dashboard_jobs import assert_no_history_read

TODAY = timezone.localdate()
START = local_midnight(TODAY - dt.timedelta(days=120))
END = local_midnight(TODAY)
WINDOW = 90


def shop() -> None:
    for name, days_ago in [("ann", 200), ("ann", 100), ("ann", 10), ("bob", 95), ("bob", 5), ("cy", 30), ("cy", 30)]:
        buy(name, noon(TODAY - dt.timedelta(days=days_ago)))
    rollups_rebuild()  # transactional tests start from flushed tables, the rollup state too


def expected_bodies() -> dict:
    """What each read answers for START..END, from the live selectors."""
    cohorts = cohort_matrix_live(start=START, end=END)
    return {
        "retention": RetentionSerializer(retention_live(start=START, end=END, window_days=WINDOW).as_dict()).data,
        "summary": SummarySerializer(summary_live(start=START, end=END, window_days=WINDOW).as_dict()).data,
        "cohorts": CohortsSerializer(
            {"start": START, "end": END, "cohorts": [cohort.as_dict() for cohort in cohorts]}
        ).data,
    }


def query(read: str) -> dict:
    params = {"start": START.date().isoformat(), "end": END.date().isoformat()}
    return params if read == "cohorts" else {**params, "window_days": WINDOW}


def wait_done(key: str, seconds: float = 60) -> MetricsJob:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job = MetricsJob.objects.filter(key=key).first()
        if job is not None and job.status == MetricsJobStatus.DONE:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {key} never finished: {MetricsJob.objects.filter(key=key).first()}")


@pytest.mark.django_db
@pytest.mark.parametrize("read", ["retention", "summary", "cohorts"])
def test_a_small_scan_is_answered_during_the_request(api, read):
    shop()
    response = api.get(f"/api/v1/metrics/{read}", query(read))
    assert response.status_code == 200, response.content
    assert response.json() == expected_bodies()[read]
    assert not MetricsJob.objects.exists()


@pytest.mark.parametrize("read", ["retention", "summary", "cohorts"])
def test_a_large_scan_is_answered_202_until_a_worker_computed_it(celery_worker, api, monkeypatch, read):
    shop()
    monkeypatch.setattr(jobs, "INLINE_SCAN_PURCHASES", 0)  # this shop's scan counts as large
    # A 120-day period (W = 90), a 120-day summary, cohorts from a date inside a month: no rollup answers.
    start = START + dt.timedelta(hours=5) if read == "cohorts" else START
    params = query(read) | ({"start": start.isoformat()} if read == "cohorts" else {})
    with CaptureQueriesContext(connection) as queries:
        response = api.get(f"/api/v1/metrics/{read}", params)
    assert response.status_code == 202, response.content
    assert response["Retry-After"] == "5"
    assert response.json()["status"] in ("pending", "running")
    assert_no_history_read(queries, END)  # the worker reads it

    key = read_job_key(read=read, start=start, end=END, window_days=0 if read == "cohorts" else WINDOW)
    job = wait_done(key)
    response = api.get(f"/api/v1/metrics/{read}", params)
    assert response.status_code == 200, response.content
    if read == "cohorts":
        cohorts = cohort_matrix_live(start=start, end=END)
        body = CohortsSerializer({"start": start, "end": END, "cohorts": [c.as_dict() for c in cohorts]}).data
        assert response.json() == body
    else:
        assert response.json() == expected_bodies()[read]  # to the cent and the count
    assert response["Last-Modified"]
    assert MetricsJob.objects.filter(key=key).count() == 1 and job.result == response.json()


@pytest.mark.django_db
def test_the_default_period_reads_the_rollups_and_never_the_purchases(api, monkeypatch):
    shop()
    monkeypatch.setattr(jobs, "INLINE_SCAN_PURCHASES", 0)
    start = local_midnight(TODAY - dt.timedelta(days=30))
    params = {"start": start.date().isoformat(), "end": END.date().isoformat(), "window_days": WINDOW}
    for read in ("retention", "summary"):
        with CaptureQueriesContext(connection) as queries:
            response = api.get(f"/api/v1/metrics/{read}", params)
        assert response.status_code == 200
        assert_no_history_read(queries, END)
    assert not MetricsJob.objects.exists()


def test_a_segment_flow_on_a_large_shop_is_computed_by_a_worker(celery_worker, api, monkeypatch):
    shop()
    monkeypatch.setattr(jobs, "INLINE_SCAN_PURCHASES", 0)
    params = {"from": START.date().isoformat(), "to": END.date().isoformat()}
    response = api.get("/api/v1/metrics/rfm/flow", params)
    assert response.status_code == 202, response.content
    wait_done(read_job_key(read="rfm_flow", start=START, end=END, window_days=0))
    response = api.get("/api/v1/metrics/rfm/flow", params)
    assert response.status_code == 200
    assert response.json() == RfmFlowSerializer(segment_flow(start=START, end=END).as_dict()).data
    # Asked without dates, the flow ends at this minute: asking again names the same job.
    first = api.get("/api/v1/metrics/rfm/flow")
    assert first.status_code in (200, 202)
    assert api.get("/api/v1/metrics/rfm/flow").status_code in (200, 202)
    assert MetricsJob.objects.count() in (2, 3)  # the dated flow, and one (or, across a minute, two) undated


def test_the_admin_flow_page_on_a_large_shop_waits_for_a_worker(celery_worker, admin_client, monkeypatch):
    shop()
    monkeypatch.setattr(jobs, "INLINE_SCAN_PURCHASES", 0)
    params = {"from": START.date().isoformat(), "to": END.date().isoformat()}
    with CaptureQueriesContext(connection) as queries:
        page = admin_client.get("/admin/metrics/dashboard/flow/", params)
    html = page.content.decode()
    assert page.status_code == 200 and 'id="flow-computing"' in html and 'http-equiv="refresh"' in html
    assert_no_history_read(queries, END)
    # The chart asks for the same job: it never scores during the request either (by now the
    # worker may have finished this small shop's job, so it shows either the notice or the chart).
    with CaptureQueriesContext(connection) as queries:
        chart = admin_client.get("/admin/metrics/dashboard/flow/chart/", params)
    assert chart.status_code == 200 and chart["Content-Type"].startswith("image/svg+xml")
    assert_no_history_read(queries, END)

    wait_done(read_job_key(read="rfm_flow", start=START, end=END, window_days=0))
    html = admin_client.get("/admin/metrics/dashboard/flow/", params).content.decode()
    assert 'id="flow-chart"' in html and 'id="flow-computed-at"' in html and 'http-equiv="refresh"' not in html
    flow = segment_flow(start=START, end=END)
    assert f">{flow.flow['none']['New']}<" in html  # the worker's counts, drawn

    # A cell's customers would score every customer twice during the request: the board instead.
    with CaptureQueriesContext(connection) as queries:
        cell = admin_client.get(
            "/admin/metrics/dashboard/flow/", {**params, "from_segment": "none", "to_segment": "New"}
        ).content.decode()
    assert 'id="flow-cell-unlisted"' in cell and "/admin/metrics/dashboard/board/?segment=New" in cell
    assert_no_history_read(queries, END)


def rfm_expected(as_of: dt.datetime, *, offset: int, limit: int) -> tuple[dict, list]:
    rows = rfm.scored_page(as_of=as_of, offset=offset, limit=limit)
    return rfm.segment_counts(as_of=as_of), RfmRowSerializer([row.as_dict() for row in rows], many=True).data


@pytest.mark.django_db
def test_an_ad_hoc_rfm_moment_on_a_small_shop_is_scored_during_the_request(api):
    shop()
    as_of = local_midnight(TODAY - dt.timedelta(days=20))
    response = api.get("/api/v1/metrics/rfm", {"as_of": as_of.date().isoformat(), "limit": 2})
    assert response.status_code == 200, response.content
    counts, rows = rfm_expected(as_of, offset=0, limit=2)
    assert response.json()["segments"] == counts and response.json()["results"] == rows
    assert not MetricsJob.objects.exists()


def test_an_ad_hoc_rfm_moment_on_a_large_shop_is_scored_by_a_worker_page_by_page(celery_worker, api, monkeypatch):
    shop()
    monkeypatch.setattr(jobs, "INLINE_SCAN_PURCHASES", 0)
    as_of = local_midnight(TODAY - dt.timedelta(days=20))
    params = {"as_of": as_of.date().isoformat(), "limit": 1, "offset": 1}
    with CaptureQueriesContext(connection) as queries:
        response = api.get("/api/v1/metrics/rfm", params)
    assert response.status_code == 202, response.content
    assert response["Retry-After"] == "5"
    assert_no_history_read(queries, as_of)

    deadline = time.monotonic() + 60
    while (response := api.get("/api/v1/metrics/rfm", params)).status_code == 202 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert response.status_code == 200, response.content
    body = response.json()
    counts, rows = rfm_expected(as_of, offset=1, limit=1)
    assert (body["segments"], body["results"], body["customers"]) == (counts, rows, sum(counts.values()))
    assert body["count"] == 3 and body["previous"] and body["next"]  # ann, bob and cy had bought by then
    assert response["Last-Modified"]
    # Another page is another computation.
    assert api.get("/api/v1/metrics/rfm", params | {"offset": 2}).status_code == 202
    assert MetricsJob.objects.count() == 2


@pytest.mark.django_db
def test_an_ad_hoc_rfm_page_far_past_the_end_is_empty_not_an_error(api):
    shop()
    as_of = local_midnight(TODAY - dt.timedelta(days=20)).date().isoformat()
    response = api.get("/api/v1/metrics/rfm", {"as_of": as_of, "offset": 328898755954987404711952384, "limit": -5})
    assert response.status_code == 200, response.content
    assert response.json()["results"] == [] and response.json()["count"] == 3
