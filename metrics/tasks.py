"""Celery entry points of the metrics app, on the ``metrics`` queue. Thin: each calls one service.

Both are idempotent (scores are an upsert of the whole table in one transaction; a snapshot is one
row per day), so a retry after a lost connection or a killed worker just does the work again.
"""

from typing import Any

from celery import shared_task

from metrics.churn_risk import customer_scores_refresh
from metrics.rollup_fold import FOLD_TASK, rollups_fold
from metrics.rollups import rollups_compact
from metrics.snapshots import snapshots_fill
from retention_crm.celery import retrying_task_options

# At a million customers the refresh reads ten million purchases and fits a model: minutes, not seconds.
NIGHTLY_SOFT_TIME_LIMIT = 3_600
NIGHTLY_TIME_LIMIT = 3_900
METRICS_TASK_KWARGS = retrying_task_options(
    queue="metrics", retry_backoff_max=600, soft_time_limit=NIGHTLY_SOFT_TIME_LIMIT, time_limit=NIGHTLY_TIME_LIMIT
)


@shared_task(name="metrics.refresh_customer_scores", **METRICS_TASK_KWARGS)
def refresh_customer_scores() -> dict[str, Any]:
    result = customer_scores_refresh()
    return {"customers": result.customers, "bgnbd_customers": result.bgnbd_customers}


@shared_task(name="metrics.take_daily_snapshots", **METRICS_TASK_KWARGS)
def take_daily_snapshots() -> list[str]:
    return [day.isoformat() for day in snapshots_fill()]


# Right after purchases commit (metrics.rollup_fold.rollups_fold_soon): one batch's changes. Busy
# lock: another fold is taking them already.
@shared_task(name=FOLD_TASK, queue="metrics", ignore_result=True)
def fold_purchase_changes() -> int | None:
    return rollups_fold()


# Every minute: short, and a missed run only leaves more rows for the next one.
@shared_task(name="metrics.compact_rollups", queue="metrics", ignore_result=True)
def compact_rollups() -> int | None:
    return rollups_compact()


# A dashboard period the rollups cannot answer (metrics/jobs.py); one try: the page requests again.
@shared_task(
    name="metrics.compute_dashboard_figures",
    queue="metrics",
    soft_time_limit=NIGHTLY_SOFT_TIME_LIMIT,
    time_limit=NIGHTLY_TIME_LIMIT,
)
def compute_dashboard_figures(job_id: int) -> None:
    from metrics.jobs import metrics_job_run

    metrics_job_run(job_id=job_id)
