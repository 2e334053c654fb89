"""Send receipts: what makes a sent message known to be sent the moment the provider accepted it.

A real provider's send is followed at once, before that connection sends anything else, by the
message's receipt: its ``sent_at`` and provider id, written to its row while it is still
``sending``. The batch's outcomes (status, the report's bookkeeping, bonus points) are then
written set-based when the batch (or a lane of it) ends: one statement, whose report triggers run
once per batch rather than once per message, which a per-message status write would cost.

A worker that dies mid-batch leaves its messages in ``sending``. The sweeper completes those with
a receipt as ``sent`` (crediting their offer's bonus points, once, by the ledger's idempotency
key) and queues the others again. So the duplicate window stays one message per connection: the
one whose provider answer came and whose receipt did not.

A receipt commits without waiting for the disk flush (``CAMPAIGN_SEND_RECORD_ASYNC_COMMIT``): a
dead worker cannot lose it once PostgreSQL has it.
"""

import datetime as dt
from collections import defaultdict
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from campaigns.models import Campaign

_RECEIPT = (
    "UPDATE campaigns_message m SET sent_at = %s, provider_message_id = %s WHERE m.id = %s AND m.status = 'sending'"
)
# The same, committed without waiting for the disk flush: set_config(..., true) holds for the
# statement's own transaction, and the CTE is referenced so that it runs.
_RECEIPT_ASYNC = (
    "WITH commit_mode AS MATERIALIZED (SELECT set_config('synchronous_commit', 'off', true))"
    " UPDATE campaigns_message m SET sent_at = %s, provider_message_id = %s FROM commit_mode"
    " WHERE m.id = %s AND m.status = 'sending'"
)


def send_receipt_write(*, message_id: int, sent_at: dt.datetime, provider_id: str) -> None:
    """The message was accepted by the provider: record it before the connection sends again."""
    statement = _RECEIPT_ASYNC if settings.CAMPAIGN_SEND_RECORD_ASYNC_COMMIT else _RECEIPT
    with connection.cursor() as cursor:
        cursor.execute(statement, [sent_at, provider_id[:255], message_id])


_COMPLETE = """
    UPDATE campaigns_message m SET
        status = CASE WHEN m.clicked_at IS NOT NULL THEN 'clicked'
                      WHEN m.opened_at IS NOT NULL THEN 'opened'
                      WHEN m.delivered_at IS NOT NULL THEN 'delivered'
                      ELSE 'sent' END,
        touched_at = m.sent_at, cap_at = m.sent_at, error = ''
    WHERE m.status = 'sending' AND m.claimed_at <= %s AND m.sent_at IS NOT NULL
    RETURNING m.id, m.campaign_id, m.customer_id, m.uuid, m.step_key, m.variant_key
"""


@transaction.atomic
def messages_complete_receipted(*, claimed_before: dt.datetime) -> int:
    """Messages a dead worker sent (they have a receipt) become ``sent``, with their bonus points."""
    with connection.cursor() as cursor:
        cursor.execute(_COMPLETE, [claimed_before])
        rows = [
            dict(zip(("id", "campaign_id", "customer_id", "uuid", "step_key", "variant_key"), row, strict=True))
            for row in cursor.fetchall()
        ]
    if rows:
        _bonuses_grant(rows)
    return len(rows)


def _bonuses_grant(rows: list[dict[str, Any]]) -> None:
    from campaigns.journey import journey_of
    from campaigns.offers import bonus_key
    from campaigns.services.sending import Batch, message_step
    from customers.loyalty.services import BonusGrant, points_bonus_grant

    per_campaign: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        per_campaign[row["campaign_id"]].append(row)
    grants = []
    for campaign in Campaign.objects.filter(pk__in=list(per_campaign)):
        batch = Batch(campaign=campaign, rows=[], journey=journey_of(campaign))
        for row in per_campaign[campaign.pk]:
            points = int(message_step(batch, row).offer.get("bonus_points") or 0)
            if points:
                grants.append(
                    BonusGrant(
                        customer_id=row["customer_id"],
                        points=points,
                        key=bonus_key(str(row["uuid"])),
                        reason=f"Campaign offer: {campaign.name}",
                    )
                )
    if grants:
        points_bonus_grant(grants=grants)
