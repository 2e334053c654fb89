"""Beat schedules of the campaigns app, seeded into django-celery-beat so staff see and edit them.

Seeding is idempotent: a schedule that exists (perhaps moved or disabled by staff) is left as it is.
"""

from typing import Any

from retention_crm.schedules import Schedule, schedules_ensure

CAMPAIGN_SCHEDULES = (
    Schedule(
        "campaigns: evaluate active campaigns",
        "campaigns.evaluate_active",
        "triggers",
        "Evaluates every active campaign's trigger and queues the new messages.",
        every_minutes=5,
    ),
    Schedule(
        "campaigns: advance journeys",
        "campaigns.advance_journeys",
        "triggers",
        "Moves every journey entry whose wait is over to its next step (messages, splits, tags).",
        every_minutes=1,
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
        hour=3,
    ),
)


def campaign_schedules_ensure(
    *, periodic_task_model: Any = None, interval_model: Any = None, crontab_model: Any = None
) -> int:
    """Create the campaign beat schedules that do not exist yet; returns how many were created."""
    return schedules_ensure(
        CAMPAIGN_SCHEDULES,
        periodic_task_model=periodic_task_model,
        interval_model=interval_model,
        crontab_model=crontab_model,
    )
