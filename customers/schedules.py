"""Beat schedules of the customers app, seeded into django-celery-beat so staff see and edit them.

Seeding is idempotent: a schedule that exists (perhaps moved or disabled by staff) is left as it is.
"""

from typing import Any

from retention_crm.schedules import Schedule, schedules_ensure

SCHEDULE_QUEUE = "default"

# Store time; spread over the night so the passes do not compete for the same rows.
LOYALTY_SCHEDULES = (
    Schedule(
        name="loyalty: birthday bonuses",
        task="loyalty.birthday_bonuses",
        queue=SCHEDULE_QUEUE,
        hour=0,
        minute=5,
        description=(
            "Credits the birthday bonus to customers whose birthday it is in their own time zone (once a year)."
        ),
    ),
    Schedule(
        name="loyalty: expire points",
        task="loyalty.expire_points",
        queue=SCHEDULE_QUEUE,
        hour=0,
        minute=15,
        description="Writes expire entries for what is left of lots past their expiry, oldest first.",
    ),
    Schedule(
        name="loyalty: recompute tiers",
        task="loyalty.recompute_tiers",
        queue=SCHEDULE_QUEUE,
        hour=0,
        minute=30,
        description="Moves customers up or down by completed spend in the trailing 365 days.",
    ),
)


def loyalty_schedules_ensure(*, periodic_task_model: Any = None, crontab_model: Any = None) -> int:
    """Create the loyalty beat schedules that do not exist yet; returns how many were created."""
    return schedules_ensure(LOYALTY_SCHEDULES, periodic_task_model=periodic_task_model, crontab_model=crontab_model)
