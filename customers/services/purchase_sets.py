"""Purchases written set-based on PostgreSQL: the statements the single and the bulk purchase
services share, so one order and a thousand go through the same few statements.

``purchases_insert`` writes the purchases (resolving the carts they name) and their items (adding
products seen for the first time); ``purchases_apply`` then, under the customers' locks, converts
carts, adds to the stats, runs loyalty and attributes the completed ones to campaigns. The caller
validates, makes sure the customers exist and holds the transaction.
"""

import datetime as dt
from typing import TYPE_CHECKING, NamedTuple

from django.db import connection

from campaigns.attribution import purchases_attribute  # campaigns: attribution hook
from campaigns.exits import entries_exit_on_purchase  # campaigns: journeys end on a purchase
from customers.models import CartStatus, PurchaseStatus
from customers.services.customers import customer_stats_add_purchases
from customers.services.loyalty import customers_lock, loyalty_after_purchases

if TYPE_CHECKING:  # the purchase services import this module
    from customers.services.purchases import PurchaseInput

# A purchase whose external_id is taken (stored before, or by a concurrent request) is skipped
# here; the caller tells a repeat from a conflict by the content digest. The cart is looked up per
# line through its unique index, and not at all for a line without one: as a join, the planner
# hashes the whole cart table for every batch.
_INSERT_PURCHASES = """
    INSERT INTO customers_purchase
        (external_id, customer_id, placed_at, total, currency, status, cart_id, cart_external_id,
         points_redeemed, content_digest, created_at)
    SELECT line.external_id, line.customer_id, line.placed_at, line.total, line.currency, line.status,
           (SELECT cart.id FROM customers_cart cart
            WHERE cart.external_id = line.cart_external_id AND line.cart_external_id <> ''),
           line.cart_external_id, line.points_redeemed, line.content_digest, %(now)s
    FROM unnest(
        %(external_id)s::varchar[], %(customer)s::bigint[], %(placed_at)s::timestamptz[], %(total)s::numeric[],
        %(currency)s::varchar[], %(status)s::varchar[], %(cart)s::varchar[], %(points)s::integer[],
        %(digest)s::varchar[]
    ) AS line(external_id, customer_id, placed_at, total, currency, status, cart_external_id, points_redeemed,
              content_digest)
    ON CONFLICT (external_id) DO NOTHING
    RETURNING id, external_id, cart_id, created_at
"""

# The items, and a catalogue entry for each SKU seen for the first time (known ones untouched).
_INSERT_ITEMS = """
    WITH line AS (
        SELECT * FROM unnest(
            %(purchase)s::bigint[], %(sku)s::varchar[], %(name)s::varchar[], %(category)s::varchar[],
            %(quantity)s::integer[], %(unit_price)s::numeric[]
        ) AS l(purchase_id, sku, name, category, quantity, unit_price)
    ), new_products AS (
        INSERT INTO customers_product (sku, name, category)
        SELECT DISTINCT ON (line.sku) line.sku, line.name, line.category FROM line
        WHERE NOT EXISTS (SELECT 1 FROM customers_product known WHERE known.sku = line.sku)
        ORDER BY line.sku
        ON CONFLICT (sku) DO NOTHING
    )
    INSERT INTO customers_purchaseitem (purchase_id, sku, name, category, quantity, unit_price)
    SELECT purchase_id, sku, name, category, quantity, unit_price FROM line
"""

# A completed purchase converts the carts it names, and the customer's carts last updated
# before it was placed (SPEC §2); the latest purchase per customer decides the second part.
_CONVERT_CARTS = """
    UPDATE customers_cart AS cart SET status = %s, converted_at = %s
    FROM (SELECT unnest(%s::bigint[]) AS customer_id, unnest(%s::timestamptz[]) AS latest) AS bought
    WHERE cart.status IN (%s, %s)
      AND (cart.external_id = ANY(%s::varchar[])
           OR (cart.customer_id = bought.customer_id AND cart.updated_at < bought.latest))
"""


class Inserted(NamedTuple):
    id: int
    cart_id: int | None
    created_at: dt.datetime


def purchases_insert(
    batch: list[tuple["PurchaseInput", str]], customer_ids: dict[str, int], *, now: dt.datetime
) -> dict[str, Inserted]:
    """Insert the purchases, given with their content digests, and their items; returns those
    inserted by external_id. Two statements whatever the batch size."""
    if not batch:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            _INSERT_PURCHASES,
            {
                "now": now,
                "external_id": [item.external_id for item, _ in batch],
                "customer": [customer_ids[item.customer] for item, _ in batch],
                "placed_at": [item.placed_at for item, _ in batch],
                "total": [item.total for item, _ in batch],
                "currency": [item.currency for item, _ in batch],
                "status": [item.status for item, _ in batch],
                "cart": [item.cart_id for item, _ in batch],
                "points": [item.points_redeemed for item, _ in batch],
                "digest": [digest for _, digest in batch],
            },
        )
        rows = cursor.fetchall()
    inserted = {external_id: Inserted(pk, cart_id, created) for pk, external_id, cart_id, created in rows}
    lines = [
        (inserted[item.external_id].id, line)
        for item, _ in batch
        if item.external_id in inserted
        for line in item.items
    ]
    if lines:
        with connection.cursor() as cursor:
            cursor.execute(
                _INSERT_ITEMS,
                {
                    "purchase": [purchase_id for purchase_id, _ in lines],
                    "sku": [line.sku for _, line in lines],
                    "name": [line.name for _, line in lines],
                    "category": [line.category for _, line in lines],
                    "quantity": [line.quantity for _, line in lines],
                    "unit_price": [line.unit_price for _, line in lines],
                },
            )
    return inserted


def purchases_apply(
    purchases: list["PurchaseInput"],
    inserted: dict[str, Inserted],
    customer_ids: dict[str, int],
    *,
    now: dt.datetime,
    buyers_locked: bool = False,
) -> None:
    """Carts, stats, loyalty and attribution for the purchases just inserted, under the customers'
    locks (taken here in id order, unless the caller holds them: ``buyers_locked``)."""
    new = [item for item in purchases if item.external_id in inserted]
    buyers = sorted({customer_ids[item.customer] for item in new})
    if not buyers:
        return
    completed = [item for item in new if item.status == PurchaseStatus.COMPLETED]
    # Campaigns (SPEC §4 attribution): the completed purchases, in one statement. It writes no
    # customer row, so it runs before the locks, keeping the part that queues up short.
    purchases_attribute(purchase_ids=[inserted[item.external_id].id for item in completed])
    # Journeys (SPEC §4.1 goal exit): entries of these buyers end in the same transaction.
    entries_exit_on_purchase(purchase_ids=[inserted[item.external_id].id for item in completed])
    if not buyers_locked:
        # One lock pass in a fixed order: concurrent batches touching the same customers queue up here.
        customers_lock(buyers)
    latest: dict[int, dt.datetime] = {}
    for item in completed:
        customer_id = customer_ids[item.customer]
        latest[customer_id] = max(latest.get(customer_id, item.placed_at), item.placed_at)
    if latest:
        with connection.cursor() as cursor:
            cursor.execute(
                _CONVERT_CARTS,
                [
                    CartStatus.CONVERTED,
                    now,
                    list(latest),
                    list(latest.values()),
                    CartStatus.OPEN,
                    CartStatus.ABANDONED,
                    [item.cart_id for item in completed if item.cart_id],
                ],
            )
    customer_stats_add_purchases(
        purchases=[(customer_ids[item.customer], item.total, item.placed_at) for item in completed]
    )
    # Loyalty (SPEC §3): tiers, points earned and referral bonuses, for the whole batch.
    loyalty_after_purchases(
        purchase_ids=[inserted[item.external_id].id for item in new], now=now, locked_buyer_ids=buyers
    )
