"""Celery entry points of the campaigns app. Thin: ids in, one service call.

Two queues, one retry policy each (for database hiccups only; a channel's errors are handled per
message by the sender, with its own backoff). Every task is safe to run twice or concurrently: the
database decides (unique dedupe keys, conditional claims), never the task.
"""

import logging
from dataclasses import asdict

from celery import shared_task
from kombu.exceptions import OperationalError as BrokerError

from campaigns.models import Campaign, CampaignStatus
from campaigns.services import (
    campaign_run,
    journeys_advance_due,
    messages_dispatch_due,
    messages_expire_stale,
    messages_requeue_stale,
    messages_send_batch,
)
from retention_crm.celery import retrying_task_options
from retention_crm.errors import ApplicationError

logger = logging.getLogger(__name__)

# One evaluation is one statement, seconds even over a million customers; leave room.
EVALUATE_SOFT_TIME_LIMIT = 600
EVALUATE_TIME_LIMIT = 660
# A send batch is CAMPAIGN_SEND_BATCH_SIZE (500) messages; at a slow provider (100 ms each) about 50 s.
SEND_SOFT_TIME_LIMIT = 240
SEND_TIME_LIMIT = 300
# A send task re-enqueues itself while its batches come back full, this many times in a row at most;
# the dispatcher (every minute) carries on after that.
MAX_SEND_HOPS = 200

TRIGGERS_TASK_KWARGS = retrying_task_options(
    queue="triggers", retry_backoff_max=300, soft_time_limit=EVALUATE_SOFT_TIME_LIMIT, time_limit=EVALUATE_TIME_LIMIT
)
SENDS_TASK_KWARGS = retrying_task_options(
    queue="sends", retry_backoff_max=120, soft_time_limit=SEND_SOFT_TIME_LIMIT, time_limit=SEND_TIME_LIMIT
)


@shared_task(name="campaigns.evaluate_active", **TRIGGERS_TASK_KWARGS)
def evaluate_active() -> list[int]:
    """Beat, every 5 minutes: one evaluation task per active campaign."""
    ids = list(Campaign.objects.filter(status=CampaignStatus.ACTIVE).order_by("pk").values_list("pk", flat=True))
    for campaign_id in ids:
        evaluate.delay(campaign_id)
    return ids


@shared_task(name="campaigns.evaluate", **TRIGGERS_TASK_KWARGS)
def evaluate(campaign_id: int) -> dict[str, int]:
    try:
        return campaign_run(campaign_id=campaign_id).counts()
    except ApplicationError as error:  # paused or archived since it was enqueued, or deleted
        logger.info("campaign.evaluate_skipped", extra={"campaign_id": campaign_id, "reason": error.code})
        return {}


@shared_task(name="campaigns.advance_journeys", **TRIGGERS_TASK_KWARGS)
def advance_journeys() -> dict[str, int]:
    """Beat, every minute: journey entries whose wait is over move on (waits live in the database)."""
    return {str(campaign_id): created for campaign_id, created in journeys_advance_due().items()}


@shared_task(name="campaigns.send_batch", **SENDS_TASK_KWARGS)
def send_batch(campaign_id: int, hop: int = 0) -> dict[str, int]:
    result = messages_send_batch(campaign_id=campaign_id)
    if result.full and hop < MAX_SEND_HOPS:
        try:
            send_batch.delay(campaign_id, hop + 1)
        except BrokerError:
            # The messages wait in the database; the dispatcher starts a sender once the broker is back.
            logger.warning("campaign.requeue_failed", extra={"campaign_id": campaign_id}, exc_info=True)
    return asdict(result)


@shared_task(name="campaigns.dispatch_due", **SENDS_TASK_KWARGS)
def dispatch_due() -> dict[str, int]:
    """Beat, every minute: senders for due messages (deferred ones coming due, retries, lost tasks)."""
    return {str(campaign_id): due for campaign_id, due in messages_dispatch_due().items()}


@shared_task(name="campaigns.requeue_stale", **SENDS_TASK_KWARGS)
def requeue_stale() -> int:
    """Beat, every 5 minutes: messages a dead worker left in sending go back to the queue."""
    return messages_requeue_stale()


@shared_task(name="campaigns.expire_stale", **SENDS_TASK_KWARGS)
def expire_stale() -> int:
    """Beat, daily: queued messages a week overdue (e.g. of a long-paused campaign) are suppressed."""
    return messages_expire_stale()
