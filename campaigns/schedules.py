"""Beat schedules of the campaigns app, seeded into django-celery-beat so staff see and edit them.

Seeding is idempotent: a schedule that exists (perhaps moved or disabled by staff) is left as it is.
"""

from dataclasses import dataclass
from typing import Any

from django.conf import settings


@dataclass(frozen=True)
class Schedule:
    name: str
    task: str
    queue: str
    description: str
    every_minutes: int | None = None  # an interval schedule ...
    daily_at: tuple[int, int] | None = None  # ... or a daily one, (hour, minute) store time


CAMPAIGN_SCHEDULES = (
    Schedule(
        "campaigns: evaluate active campaigns",
        "campaigns.evaluate_active",
        "triggers",
        "Evaluates every active campaign's trigger and queues the new messages.",
        every_minutes=5,
    ),
    Schedule(
        "campaigns: dispatch due messages",
        "campaigns.dispatch_due",
        "sends",
        "Starts senders for messages that are due: deferred ones, retries, and any whose task was lost.",
        every_minutes=1,
    ),
    Schedule(
        "campaigns: requeue stuck sends",
        "campaigns.requeue_stale",
        "sends",
        "Puts messages a dead worker left in 'sending' back in the queue (same idempotency key).",
        every_minutes=5,
    ),
    Schedule(
        "campaigns: expire overdue messages",
        "campaigns.expire_stale",
        "sends",
        "Suppresses queued messages more than a week overdue, e.g. those of a long-paused campaign.",
        daily_at=(3, 0),
    ),
)


def campaign_schedules_ensure(
    *, periodic_task_model: Any = None, interval_model: Any = None, crontab_model: Any = None
) -> int:
    """Create the campaign beat schedules that do not exist yet; returns how many were created.

    Migrations pass their historical models; at run time the real ones are used.
    """
    if periodic_task_model is None:
        from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

        periodic_task_model, interval_model, crontab_model = PeriodicTask, IntervalSchedule, CrontabSchedule
    created = 0
    for schedule in CAMPAIGN_SCHEDULES:
        if periodic_task_model.objects.filter(name=schedule.name).exists():
            continue
        when: dict[str, Any] = {}
        if schedule.every_minutes is not None:
            when["interval"], _ = interval_model.objects.get_or_create(every=schedule.every_minutes, period="minutes")
        else:
            hour, minute = schedule.daily_at or (0, 0)
            when["crontab"], _ = crontab_model.objects.get_or_create(
                minute=str(minute),
                hour=str(hour),
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
