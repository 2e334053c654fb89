"""The Celery application: configuration comes from Django settings (CELERY_* names)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "retention_crm.settings")

app = Celery("retention_crm")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def retrying_task_options(*, queue: str, retry_backoff_max: int, soft_time_limit: int, time_limit: int) -> dict:
    """Options every task of ours shares: retried with jittered backoff when the database drops
    the connection or is briefly unavailable (the tasks are idempotent), up to 5 times."""
    from django.db import InterfaceError, OperationalError

    return {
        "queue": queue,
        "autoretry_for": (OperationalError, InterfaceError),
        "retry_backoff": True,
        "retry_backoff_max": retry_backoff_max,
        "retry_jitter": True,
        "max_retries": 5,
        "soft_time_limit": soft_time_limit,
        "time_limit": time_limit,
    }
