"""Beat schedules of the metrics app, seeded into django-celery-beat so staff see and edit them.

Seeding is idempotent: a schedule that exists (perhaps moved or disabled by staff) is left as it is.
"""

from dataclasses import dataclass
from typing import Any

from django.conf import settings


@dataclass(frozen=True)
class DailySchedule:
    name: str
    task: str
    hour: int
    minute: int
    description: str


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
    """Create the metrics beat schedules that do not exist yet; returns how many were created.

    Migrations pass their historical models; at run time the real ones are used.
    """
    if periodic_task_model is None or crontab_model is None:
        from django_celery_beat.models import CrontabSchedule, PeriodicTask

        periodic_task_model, crontab_model = PeriodicTask, CrontabSchedule
    created = 0
    for schedule in METRICS_SCHEDULES:
        if periodic_task_model.objects.filter(name=schedule.name).exists():
            continue
        crontab, _ = crontab_model.objects.get_or_create(
            minute=str(schedule.minute),
            hour=str(schedule.hour),
            day_of_week="*",
            day_of_month="*",
            month_of_year="*",
            timezone=settings.TIME_ZONE,
        )
        periodic_task_model.objects.create(
            name=schedule.name,
            task=schedule.task,
            crontab=crontab,
            queue=SCHEDULE_QUEUE,
            description=schedule.description,
            enabled=True,
        )
        created += 1
    return created
