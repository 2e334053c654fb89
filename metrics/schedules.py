"""Beat schedules of the metrics app, seeded into django-celery-beat so staff see and edit them.

Seeding is idempotent: a schedule that exists (perhaps moved or disabled by staff) is left as it is.
"""

from typing import Any

from retention_crm.schedules import Schedule, schedules_ensure

SCHEDULE_QUEUE = "metrics"

# Store time, after the loyalty passes (00:05-00:30), so scores see the night's tier changes settled.
METRICS_SCHEDULES = (
    Schedule(
        name="metrics: refresh customer scores",
        task="metrics.refresh_customer_scores",
        queue=SCHEDULE_QUEUE,
        hour=1,
        minute=0,
        description="Recomputes every customer's RFM scores and churn risk (BG/NBD fitted on the shop's history).",
    ),
    Schedule(
        name="metrics: daily snapshot",
        task="metrics.take_daily_snapshots",
        queue=SCHEDULE_QUEUE,
        hour=1,
        minute=30,
        description="Stores yesterday's headline figures (CRR, churn, orders, NPS) for the trend charts.",
    ),
)


ROLLUP_SCHEDULES = (
    Schedule(
        name="metrics: compact rollups",
        task="metrics.compact_rollups",
        queue=SCHEDULE_QUEUE,
        every_minutes=1,
        description="Folds the purchase triggers' rollup changes into the day chain, so reads sum few rows.",
    ),
)


def metrics_schedules_ensure(
    *,
    schedules: tuple[Schedule, ...] = METRICS_SCHEDULES + ROLLUP_SCHEDULES,
    periodic_task_model: Any = None,
    interval_model: Any = None,
    crontab_model: Any = None,
) -> int:
    """Create the metrics beat schedules that do not exist yet; returns how many were created."""
    return schedules_ensure(
        schedules,
        periodic_task_model=periodic_task_model,
        interval_model=interval_model,
        crontab_model=crontab_model,
    )
