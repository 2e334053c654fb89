"""Celery entry points of the customers app. Thin: each calls one service.

The loyalty passes are idempotent (every entry has its own key, every batch its own transaction),
so a retry after a lost connection or a worker killed mid-pass finishes the work without doubling it.
"""

from dataclasses import asdict

from celery import shared_task

from customers.loyalty.services.daily import points_birthday_bonuses, points_expire_due, tiers_recompute_all
from retention_crm.celery import retrying_task_options

# The daily passes walk every customer in batches; give them more than the default time limits.
DAILY_PASS_SOFT_TIME_LIMIT = 3_600
DAILY_PASS_TIME_LIMIT = 3_900
DEFAULT_QUEUE_TASK_KWARGS = retrying_task_options(
    queue="default", retry_backoff_max=600, soft_time_limit=DAILY_PASS_SOFT_TIME_LIMIT, time_limit=DAILY_PASS_TIME_LIMIT
)


@shared_task(name="loyalty.expire_points", **DEFAULT_QUEUE_TASK_KWARGS)
def loyalty_expire_points() -> dict[str, int]:
    return asdict(points_expire_due())


@shared_task(name="loyalty.recompute_tiers", **DEFAULT_QUEUE_TASK_KWARGS)
def loyalty_recompute_tiers() -> int:
    return tiers_recompute_all()


@shared_task(name="loyalty.birthday_bonuses", **DEFAULT_QUEUE_TASK_KWARGS)
def loyalty_birthday_bonuses() -> int:
    return points_birthday_bonuses()
