"""Beat schedules of the customers app, seeded into django-celery-beat so staff see and edit them.

Seeding is idempotent: a schedule that exists (perhaps moved or disabled by staff) is left as it is.
"""

from typing import Any

from retention_crm.schedules import DailySchedule, daily_schedules_ensure

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
    """Create the loyalty beat schedules that do not exist yet; returns how many were created."""
    return daily_schedules_ensure(
        LOYALTY_SCHEDULES, queue=SCHEDULE_QUEUE, periodic_task_model=periodic_task_model, crontab_model=crontab_model
    )
