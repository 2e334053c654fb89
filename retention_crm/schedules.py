"""Seeding beat schedules into django-celery-beat, so staff see and edit them in the admin.

Seeding is idempotent: a schedule that exists (perhaps moved or disabled by staff) is left as it is.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings


@dataclass(frozen=True)
class Schedule:
    """A task run every few minutes (``every_minutes``) or daily at ``hour``:``minute``, store time."""

    name: str
    task: str
    queue: str
    description: str
    every_minutes: int | None = None
    hour: int = 0
    minute: int = 0


def schedules_ensure(
    schedules: Iterable[Schedule],
    *,
    periodic_task_model: Any = None,
    interval_model: Any = None,
    crontab_model: Any = None,
) -> int:
    """Create the schedules that do not exist yet; returns how many were created.

    Migrations pass their historical models; at run time the real ones are used.
    """
    if periodic_task_model is None:
        from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

        periodic_task_model, interval_model, crontab_model = PeriodicTask, IntervalSchedule, CrontabSchedule
    created = 0
    for schedule in schedules:
        if periodic_task_model.objects.filter(name=schedule.name).exists():
            continue
        when: dict[str, Any] = {}
        if schedule.every_minutes is not None:
            when["interval"], _ = interval_model.objects.get_or_create(every=schedule.every_minutes, period="minutes")
        else:
            when["crontab"], _ = crontab_model.objects.get_or_create(
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
            queue=schedule.queue,
            description=schedule.description,
            enabled=True,
            **when,
        )
        created += 1
    return created
