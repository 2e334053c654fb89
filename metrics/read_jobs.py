"""Metrics API reads the rollups cannot answer: computed during the request while the scan is small,
else by a worker, the API answering 202 until the figures are in.

Retention, the summary and the cohort matrix each have a fast path (metrics/rollups.py) for every
period that starts and ends at store midnights (retention: no longer than W); the segment flow has
none (it scores every customer as of both dates). Anything else would scan the purchases: up to
``INLINE_SCAN_PURCHASES`` of them (counted exactly from the day totals) are read during the
request, as on the dashboard; more, and a ``MetricsJob`` keyed by the read and its parameters is
computed by a worker with the same selectors and serializers. The request that
finds it under way is answered 202 with ``Retry-After``; the next one after it is done gets the
stored body (and ``Last-Modified``), fresh for ``RESULT_FRESH`` (metrics/jobs.py).
"""

import dataclasses
import datetime as dt
import json
from collections.abc import Callable
from typing import Any

from metrics import rfm
from metrics.cohorts import Cohort, cohort_matrix, cohort_matrix_from_rollups
from metrics.jobs import live_scan_is_small, metrics_job_request
from metrics.models import MetricsJob, MetricsJobStatus
from metrics.periods import shift_days
from metrics.retention import Retention, retention, retention_from_rollups
from metrics.rfm_flow import segment_flow
from metrics.serializers import (
    CohortsSerializer,
    RetentionSerializer,
    RfmFlowSerializer,
    RfmRowSerializer,
    SummarySerializer,
)
from metrics.summary import Summary, summary, summary_from_rollups

KEY_PREFIX = "read "
RETRY_AFTER_SECONDS = 5


@dataclasses.dataclass(frozen=True)
class Read:
    """One read's three ways to its body: the rollups alone (None when they cannot answer), any
    way (the dispatching selectors), and the first moment a live computation scans from."""

    fast: Callable[[dt.datetime, dt.datetime, int], dict[str, Any] | None]
    compute: Callable[[dt.datetime, dt.datetime, int], dict[str, Any]]
    scans_from: Callable[[dt.datetime, int], dt.datetime]


def _retention_body(table: Retention) -> dict[str, Any]:
    return RetentionSerializer(table.as_dict()).data


def _summary_body(figures: Summary) -> dict[str, Any]:
    return SummarySerializer(figures.as_dict()).data


def _cohorts_body(start: dt.datetime, end: dt.datetime, cohorts: list[Cohort]) -> dict[str, Any]:
    return CohortsSerializer({"start": start, "end": end, "cohorts": [cohort.as_dict() for cohort in cohorts]}).data


def _or_none(value: Any, body: Callable[[Any], dict[str, Any]]) -> dict[str, Any] | None:
    return None if value is None else body(value)


READS: dict[str, Read] = {
    "retention": Read(
        fast=lambda start, end, w: _or_none(
            retention_from_rollups(start=start, end=end, window_days=w), _retention_body
        ),
        compute=lambda start, end, w: _retention_body(retention(start=start, end=end, window_days=w)),
        scans_from=lambda start, w: shift_days(start, -w),
    ),
    "summary": Read(
        fast=lambda start, end, w: _or_none(
            summary_from_rollups(start=start, end=end, window_days=w, scan=False), _summary_body
        ),
        compute=lambda start, end, w: _summary_body(summary(start=start, end=end, window_days=w)),
        scans_from=lambda start, w: shift_days(start, -w),
    ),
    "cohorts": Read(
        fast=lambda start, end, w: _or_none(
            cohort_matrix_from_rollups(start=start, end=end), lambda cells: _cohorts_body(start, end, cells)
        ),
        compute=lambda start, end, w: _cohorts_body(start, end, cohort_matrix(start=start, end=end)),
        scans_from=lambda start, w: start,
    ),
    # Both sides scored from every purchase before them: no rollup answers it.
    "rfm_flow": Read(
        fast=lambda start, end, w: None,
        compute=lambda start, end, w: RfmFlowSerializer(segment_flow(start=start, end=end).as_dict()).data,
        scans_from=lambda start, w: dt.datetime.min.replace(tzinfo=dt.UTC),
    ),
}


@dataclasses.dataclass(frozen=True)
class ReadAnswer:
    """The body when it is known; the job when a worker computed (or is computing) it."""

    body: dict[str, Any] | None
    job: MetricsJob | None


def read_job_key(*, read: str, start: dt.datetime, end: dt.datetime, window_days: int) -> str:
    params = {"start": start.isoformat(), "end": end.isoformat(), "window_days": window_days}
    return f"{KEY_PREFIX}{read} {json.dumps(params, sort_keys=True)}"


def read_answer(*, read: str, start: dt.datetime, end: dt.datetime, window_days: int) -> ReadAnswer:
    """The read's body from the rollups; else computed now if its scan is small; else from a
    worker's job (no body while it runs)."""
    spec = READS[read]
    body = spec.fast(start, end, window_days)
    if body is not None:
        return ReadAnswer(body=body, job=None)
    if live_scan_is_small(first=spec.scans_from(start, window_days), end=end):
        return ReadAnswer(body=spec.compute(start, end, window_days), job=None)
    job = metrics_job_request(key=read_job_key(read=read, start=start, end=end, window_days=window_days))
    if job.status == MetricsJobStatus.DONE and job.result is not None:
        return ReadAnswer(body=job.result, job=job)
    return ReadAnswer(body=None, job=job)


# --- RFM scores as of an ad-hoc moment (neither now before the first refresh nor the nightly as_of) ---

RFM_READ = "rfm"
_EVERY_PURCHASE = dt.datetime.min.replace(tzinfo=dt.UTC)


@dataclasses.dataclass(frozen=True)
class RfmPageQuery:
    as_of: dt.datetime
    segment: str | None
    offset: int
    limit: int

    def params(self) -> dict[str, Any]:
        return {"as_of": self.as_of.isoformat(), "segment": self.segment, "offset": self.offset, "limit": self.limit}


def _rfm_page_compute(query: RfmPageQuery) -> dict[str, Any]:
    """The segment counts and one page of scores as of ``query.as_of``: every customer's quintiles
    from the purchases before it (two scans)."""
    counts = rfm.segment_counts(as_of=query.as_of)
    total = counts[query.segment] if query.segment else sum(counts.values())
    if query.offset >= total:  # past the end (however far: no SQL OFFSET sees it)
        return {"counts": counts, "rows": []}
    rows = rfm.scored_page(as_of=query.as_of, offset=query.offset, limit=query.limit, segment=query.segment)
    return {"counts": counts, "rows": RfmRowSerializer([row.as_dict() for row in rows], many=True).data}


def rfm_page_answer(query: RfmPageQuery) -> ReadAnswer:
    """``{"counts", "rows"}`` of an ad-hoc RFM page: computed now when the purchases before
    ``as_of`` are few, else by a worker (one job per page asked for)."""
    if live_scan_is_small(first=_EVERY_PURCHASE, end=query.as_of):
        return ReadAnswer(body=_rfm_page_compute(query), job=None)
    key = f"{KEY_PREFIX}{RFM_READ} {json.dumps(query.params(), sort_keys=True)}"
    job = metrics_job_request(key=key)
    if job.status == MetricsJobStatus.DONE and job.result is not None:
        return ReadAnswer(body=job.result, job=job)
    return ReadAnswer(body=None, job=job)


def read_job_compute(key: str) -> dict[str, Any]:
    """The worker's side: the body of the read a job's key names."""
    read, params = key.removeprefix(KEY_PREFIX).split(" ", 1)
    values = json.loads(params)
    if read == RFM_READ:
        query = RfmPageQuery(
            as_of=dt.datetime.fromisoformat(values["as_of"]),
            segment=values["segment"],
            offset=int(values["offset"]),
            limit=int(values["limit"]),
        )
        return _rfm_page_compute(query)
    start, end = dt.datetime.fromisoformat(values["start"]), dt.datetime.fromisoformat(values["end"])
    return READS[read].compute(start, end, int(values["window_days"]))
