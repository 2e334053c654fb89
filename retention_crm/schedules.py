"""Seeding daily beat schedules into django-celery-beat, so staff see and edit them in the admin.

Seeding is idempotent: a schedule that exists (perhaps moved or disabled by staff) is left as it is.
"""

from collections.abc import Iterable
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


def daily_schedules_ensure(
    schedules: Iterable[DailySchedule],
    *,
    queue: str,
    periodic_task_model: Any = None,
    crontab_model: Any = None,
) -> int:
    """Create the schedules that do not exist yet, at store time; returns how many were created.

    Migrations pass their historical models; at run time the real ones are used.
    """
    if periodic_task_model is None or crontab_model is None:
        from django_celery_beat.models import CrontabSchedule, PeriodicTask

        periodic_task_model, crontab_model = PeriodicTask, CrontabSchedule
    created = 0
    for schedule in schedules:
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
            queue=queue,
            description=schedule.description,
            enabled=True,
        )
        created += 1
    return created
