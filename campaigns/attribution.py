"""Attribution (SPEC §4): each completed purchase goes to at most one message — the latest ``sent``
or ``held_out`` message to that customer whose campaign's ``attribution_days`` window, from the
send (for the control group: from when it would have been sent), contains the purchase.

Called by the purchase services in the transaction that records purchases, for one purchase or a
whole bulk batch: one INSERT ... SELECT either way. Kept apart from the rest of the campaigns app
so the customers app can import it without pulling in sending, templates or Celery.

The window is ``[touched_at, touched_at + attribution_days)``. ``touched_at`` is set when a message
is sent (or created in the control group) and cleared by a hard bounce; delivered, opened and
clicked messages were sent and keep it.
"""

from collections.abc import Iterable

from django.utils import timezone

from retention_crm.bound_cursor import bound_cursor, sql_array

_ATTRIBUTE = """
    INSERT INTO campaigns_attribution (purchase_id, message_id, campaign_id, attributed_at)
    SELECT p.id, touch.id, touch.campaign_id, %s
    FROM customers_purchase p
    CROSS JOIN LATERAL (
        SELECT m.id, m.campaign_id
        FROM campaigns_message m
        JOIN campaigns_campaign campaign ON campaign.id = m.campaign_id
        WHERE m.customer_id = p.customer_id
          AND m.touched_at IS NOT NULL
          AND m.touched_at <= p.placed_at
          AND p.placed_at < m.touched_at + campaign.attribution_days * interval '1 day'
          AND m.status IN ('sent', 'delivered', 'opened', 'clicked', 'held_out')
        ORDER BY m.touched_at DESC, m.id DESC
        LIMIT 1
    ) AS touch
    WHERE p.id = ANY(%s::bigint[]) AND p.status = 'completed'
    ON CONFLICT (purchase_id) DO NOTHING
"""


def purchases_attribute(*, purchase_ids: Iterable[int]) -> int:
    """Attribute the given purchases (those completed and within a window); returns how many were.

    Idempotent: a purchase already attributed keeps its message.
    """
    ids = list(purchase_ids)
    if not ids:
        return 0
    with bound_cursor() as cursor:
        cursor.execute(_ATTRIBUTE, [timezone.now(), sql_array(ids)])
        return cursor.rowcount
