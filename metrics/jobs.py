"""Figures the rollups cannot answer, computed by a worker instead of inside a web request.

The dashboard asks for a period's retention table, summary and cohorts. When any of them would
mean scanning the purchases (a period longer than W, a summary over more than 31 days, cohorts
up to a date deep inside a month), the page requests a ``MetricsJob`` for those parameters and
shows progress; a worker computes the figures with the same selectors (``metrics.tasks``) and the
page, reloading, shows them with the time they were computed. A result serves for
``RESULT_FRESH``, then the next visit computes it again; a job a dead worker left running is
requested again after ``RUNNING_STUCK``.
"""

import dataclasses
import datetime as dt
import logging
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from customers.models import Purchase
from metrics.cohorts import Cohort, cohort_matrix
from metrics.models import MetricsJob, MetricsJobStatus
from metrics.periods import Period, local_day_of_midnight, store_tz
from metrics.retention import Retention, retention
from metrics.rollups import completed_orders_between
from metrics.summary import Nps, Summary, summary

logger = logging.getLogger(__name__)

RESULT_FRESH = dt.timedelta(minutes=10)
# Live reads of up to this many purchases run during the request (about a second here).
INLINE_SCAN_PURCHASES = 200_000
RUNNING_STUCK = dt.timedelta(minutes=30)


@dataclasses.dataclass(frozen=True)
class PeriodFigures:
    retention: Retention
    summary: Summary
    cohorts: list[Cohort]


def dashboard_job_key(*, period: Period, cohort_start: dt.datetime, window_days: int) -> str:
    return f"dashboard {period.start.isoformat()} {period.end.isoformat()} {cohort_start.isoformat()} W{window_days}"


def period_figures_compute(*, period: Period, cohort_start: dt.datetime, window_days: int) -> PeriodFigures:
    """The three figure families, each through its dispatching selector (fast where it can be)."""
    return PeriodFigures(
        retention=retention(start=period.start, end=period.end, window_days=window_days),
        summary=summary(start=period.start, end=period.end, window_days=window_days),
        cohorts=cohort_matrix(start=cohort_start, end=period.end),
    )


def _usable(job: MetricsJob, now: dt.datetime) -> bool:
    """Whether the job's result (or its being under way) serves, or it must be requested again."""
    if job.status == MetricsJobStatus.DONE:
        return job.finished_at is not None and now - job.finished_at < RESULT_FRESH
    if job.status == MetricsJobStatus.FAILED:
        return False
    return now - job.requested_at < RUNNING_STUCK  # pending or running


def metrics_job_request(*, key: str) -> MetricsJob:
    """The job for ``key``: its fresh result or the run under way, else requested anew (queued
    once the request commits). Concurrent requests for one key queue one run."""
    from metrics.tasks import compute_dashboard_figures

    now = timezone.now()
    with transaction.atomic():
        job = MetricsJob.objects.select_for_update().filter(key=key).first()
        if job is not None and _usable(job, now):
            return job
        if job is None:
            try:
                with transaction.atomic():
                    job = MetricsJob.objects.create(key=key, requested_at=now)
            except IntegrityError:  # another request created it first: theirs is queued
                return MetricsJob.objects.get(key=key)
        else:
            job.status, job.result, job.error = MetricsJobStatus.PENDING, None, ""
            job.requested_at, job.started_at, job.finished_at = now, None, None
            job.save()
        transaction.on_commit(lambda: compute_dashboard_figures.delay(job.pk))
    return job


def metrics_job_run(*, job_id: int) -> None:
    """Compute a dashboard job's figures and store them (the worker's side)."""
    job = MetricsJob.objects.filter(pk=job_id).first()
    if job is None or job.status == MetricsJobStatus.DONE:
        return
    MetricsJob.objects.filter(pk=job_id).update(status=MetricsJobStatus.RUNNING, started_at=timezone.now())
    try:
        result = _compute(job.key)
    except Exception as problem:
        logger.exception("metrics.job_failed", extra={"job": job_id})
        MetricsJob.objects.filter(pk=job_id).update(
            status=MetricsJobStatus.FAILED, error=str(problem)[:1000], finished_at=timezone.now()
        )
        raise
    MetricsJob.objects.filter(pk=job_id).update(status=MetricsJobStatus.DONE, result=result, finished_at=timezone.now())


def _compute(key: str) -> dict[str, Any]:
    """The stored result of the job ``key`` names: an API read's body (metrics/read_jobs.py) or a
    dashboard period's figures."""
    from metrics.read_jobs import KEY_PREFIX, read_job_compute

    if key.startswith(KEY_PREFIX):
        return read_job_compute(key)
    period, cohort_start, window_days = _parse_key(key)
    return figures_dump(period_figures_compute(period=period, cohort_start=cohort_start, window_days=window_days))


def live_scan_is_small(*, first: dt.datetime, end: dt.datetime) -> bool:
    """Whether a live read of the completed purchases in [first, end) reads few enough to run during
    a request: the day totals count them exactly (the whole days around a bound off midnight)."""
    zone = store_tz()
    end_day = local_day_of_midnight(end) or end.astimezone(zone).date() + dt.timedelta(days=1)
    scanned = completed_orders_between(first_day=first.astimezone(zone).date(), end_day=end_day)
    if scanned is None:  # rollups not in the store's zone yet: count, but never past the limit
        in_range = Purchase.objects.filter(placed_at__gte=first, placed_at__lt=end).order_by()
        scanned = in_range.values("pk")[: INLINE_SCAN_PURCHASES + 1].count()
    return scanned <= INLINE_SCAN_PURCHASES


def _parse_key(key: str) -> tuple[Period, dt.datetime, int]:
    _, start, end, cohort_start, window = key.split(" ")
    return (
        Period(start=dt.datetime.fromisoformat(start), end=dt.datetime.fromisoformat(end)),
        dt.datetime.fromisoformat(cohort_start),
        int(window.removeprefix("W")),
    )


# --- Stored as JSON ------------------------------------------------------------------------------------


def figures_dump(figures: PeriodFigures) -> dict[str, Any]:
    def plain(value: Any) -> Any:
        if isinstance(value, dt.datetime | dt.date):
            return value.isoformat()
        return str(value) if isinstance(value, Decimal) else value  # the cents kept as text

    return {
        "retention": {f.name: plain(getattr(figures.retention, f.name)) for f in dataclasses.fields(Retention)},
        "summary": {
            **{f.name: plain(getattr(figures.summary, f.name)) for f in dataclasses.fields(Summary) if f.name != "nps"},
            "nps": dataclasses.asdict(figures.summary.nps),
        },
        "cohorts": [{"month": c.month.isoformat(), "size": c.size, "active": c.active} for c in figures.cohorts],
    }


def _typed(name: str, value: Any) -> Any:
    if name in ("start", "end"):
        return dt.datetime.fromisoformat(value)
    return Decimal(value) if name in ("revenue", "clv_spend") else value


def figures_load(data: dict[str, Any]) -> PeriodFigures:
    table = Retention(**{name: _typed(name, value) for name, value in data["retention"].items()})
    raw = {name: _typed(name, value) for name, value in data["summary"].items() if name != "nps"}
    figures = Summary(**raw, nps=Nps(**data["summary"]["nps"]))
    cohorts = [
        Cohort(month=dt.date.fromisoformat(row["month"]), size=row["size"], active=row["active"])
        for row in data["cohorts"]
    ]
    return PeriodFigures(retention=table, summary=figures, cohorts=cohorts)
