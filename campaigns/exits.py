"""Ending journey entries from outside the campaigns app (SPEC §4.1): a purchase reaches the goal,
a consent revoked or an erase ends the customer's entries. Called by the customers app's services
in the transaction that records the change; one statement each, for any number of customers.

Kept apart from the campaign services (like ``attribution.py``) so the customers app can import it
without sending, templates or Celery. Advancing re-checks the same conditions for every due
entry, so an entry whose change came by another way still never gets a later step.
"""

from collections.abc import Iterable

from django.db import connection
from django.utils import timezone

from retention_crm.bound_cursor import bound_cursor, sql_array

# Open entries of campaigns that exit on purchase, entered before a completed purchase of theirs,
# end with reason "goal"; a journey's messages not yet sent are suppressed (reason "goal"). A
# campaign without steps keeps SPEC §4's single-message rules: its queued message still goes out.
_EXIT_ON_PURCHASE = """
    WITH bought AS (
        SELECT p.customer_id, max(p.placed_at) AS placed_at
        FROM customers_purchase p
        WHERE p.id = ANY(%(purchases)s::bigint[]) AND p.status = 'completed'
        GROUP BY p.customer_id
    ),
    ended AS (
        UPDATE campaigns_entry e SET state = 'exited', exit_reason = 'goal', ended_at = %(now)s, next_at = NULL
        FROM bought b, campaigns_campaign k
        WHERE e.customer_id = b.customer_id AND e.state = 'active' AND e.entered_at < b.placed_at
          AND k.id = e.campaign_id AND k.exit_on = 'purchase'
        RETURNING e.id
    )
    UPDATE campaigns_message m SET status = 'suppressed', reason = 'goal'
    FROM bought b, campaigns_entry e, campaigns_campaign k
    WHERE m.customer_id = b.customer_id AND m.status = 'queued' AND m.entry_id = e.id
      AND e.entered_at < b.placed_at AND k.id = m.campaign_id AND k.exit_on = 'purchase'
      AND k.steps <> '[]'::jsonb
"""

_EXIT_CUSTOMER = """
    UPDATE campaigns_entry e SET state = 'exited', exit_reason = %(reason)s, ended_at = %(now)s, next_at = NULL
    FROM campaigns_campaign k
    WHERE e.customer_id = ANY(%(customers)s) AND e.state = 'active' AND k.id = e.campaign_id
      AND (%(channel)s::text IS NULL OR k.channel = %(channel)s)
"""


def entries_exit_on_purchase(*, purchase_ids: Iterable[int]) -> None:
    """The goal: the purchases' customers leave the journeys they entered before buying."""
    ids = list(purchase_ids)
    if ids:
        with bound_cursor() as cursor:
            cursor.execute(_EXIT_ON_PURCHASE, {"purchases": sql_array(ids), "now": timezone.now()})


def entries_exit_for_customers(*, customer_ids: Iterable[int], reason: str, channel: str | None = None) -> int:
    """End the customers' open entries (``erased``; or ``no_consent`` for campaigns on ``channel``)."""
    ids = list(customer_ids)
    if not ids:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(_EXIT_CUSTOMER, {"customers": ids, "reason": reason, "now": timezone.now(), "channel": channel})
        return cursor.rowcount
