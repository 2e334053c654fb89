"""Beat schedules of the metrics app, seeded into django-celery-beat so staff see and edit them.

Seeding is idempotent: a schedule that exists (perhaps moved or disabled by staff) is left as it is.
"""

from typing import Any

from retention_crm.schedules import DailySchedule, daily_schedules_ensure

# Store time, after the loyalty passes (00:05-00:30), so scores see the night's tier changes settled.
METRICS_SCHEDULES = (
    DailySchedule(
        "metrics: refresh customer scores",
        "metrics.refresh_customer_scores",
        1,
        0,
        "Recomputes every customer's RFM scores and churn risk (BG/NBD fitted on the shop's history).",
    ),
    DailySchedule(
        "metrics: daily snapshot",
        "metrics.take_daily_snapshots",
        1,
        30,
        "Stores yesterday's headline figures (CRR, churn, orders, NPS) for the trend charts.",
    ),
)
SCHEDULE_QUEUE = "metrics"


def metrics_schedules_ensure(*, periodic_task_model: Any = None, crontab_model: Any = None) -> int:
    """Create the metrics beat schedules that do not exist yet; returns how many were created."""
    return daily_schedules_ensure(
        METRICS_SCHEDULES, queue=SCHEDULE_QUEUE, periodic_task_model=periodic_task_model, crontab_model=crontab_model
    )
