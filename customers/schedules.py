"""Beat schedules of the customers app, seeded into django-celery-beat so staff see and edit them.

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


# Store time; spread over the night so the passes do not compete for the same rows.
LOYALTY_SCHEDULES = (
    DailySchedule(
        "loyalty: birthday bonuses",
        "loyalty.birthday_bonuses",
        0,
        5,
        "Credits the birthday bonus to customers whose birthday it is in their own time zone (once a year).",
    ),
    DailySchedule(
        "loyalty: expire points",
        "loyalty.expire_points",
        0,
        15,
        "Writes expire entries for what is left of lots past their expiry, oldest first.",
    ),
    DailySchedule(
        "loyalty: recompute tiers",
        "loyalty.recompute_tiers",
        0,
        30,
        "Moves customers up or down by completed spend in the trailing 365 days.",
    ),
)
SCHEDULE_QUEUE = "default"


def loyalty_schedules_ensure(*, periodic_task_model: Any = None, crontab_model: Any = None) -> int:
    """Create the loyalty beat schedules that do not exist yet; returns how many were created.

    Migrations pass their historical models; at run time the real ones are used.
    """
    if periodic_task_model is None or crontab_model is None:
        from django_celery_beat.models import CrontabSchedule, PeriodicTask

        periodic_task_model, crontab_model = PeriodicTask, CrontabSchedule
    created = 0
    for schedule in LOYALTY_SCHEDULES:
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
