"""Purchases written set-based on PostgreSQL: the statements the single and the bulk purchase
services share, so one order and a thousand go through the same few statements.

``purchases_insert`` writes the purchases (resolving the carts they name) and their items (adding
products seen for the first time); ``purchases_apply`` then, under the customers' locks, converts
carts, runs loyalty, writes each buyer's row once (stats, points, tier) and attributes the
completed ones to campaigns. Array parameters go as one text each (``sql_array``). The caller
validates, makes sure the customers exist and holds the transaction.
"""

import datetime as dt
from decimal import Decimal
from typing import NamedTuple

from django.db import transaction

from campaigns.attribution import purchases_attribute  # campaigns: attribution hook
from campaigns.exits import entries_exit_on_purchase  # campaigns: journeys end on a purchase
from customers.loyalty.services.earning import (
    BuyerMoves,
    NewPurchase,
    buyers_lock,
    loyalty_for_new_purchases,
    referrals_for_new_purchases,
)
from customers.models import CartStatus, PurchaseStatus
from customers.services.purchase_input import PurchaseInput
from metrics.rollup_fold import rollups_fold_soon  # metrics: fold the rollups once the batch commits
from retention_crm.bound_cursor import bound_cursor, sql_array

# The cart is looked up per line through its unique index, and not at all for a line without one:
# as a join, the planner hashes the whole cart table for every batch.
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
    {on_conflict}
    RETURNING id, external_id, cart_id
"""
# A purchase whose external_id is taken (stored before, or by a concurrent request) is skipped;
# the caller tells a repeat from a conflict by the content digest.
_INSERT_PURCHASES_SKIPPING_TAKEN = _INSERT_PURCHASES.format(on_conflict="ON CONFLICT (external_id) DO NOTHING")
_INSERT_PURCHASES_ALL = _INSERT_PURCHASES.format(on_conflict="")

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
    batch: list[tuple[PurchaseInput, str]],
    customer_ids: dict[str, int],
    *,
    now: dt.datetime,
    skip_taken: bool = True,
) -> dict[str, Inserted]:
    """Insert the purchases, given with their content digests, and their items; returns those
    inserted by external_id. Two statements whatever the batch size.

    A purchase whose external_id is taken is left out, or with ``skip_taken=False`` (for a caller
    that has just looked the ids up: a taken one can only be a concurrent request's) fails the
    statement with an IntegrityError. Skipping costs a speculative insertion per row, about a
    fifth of the statement's time."""
    if not batch:
        return {}
    with bound_cursor() as cursor:
        cursor.execute(
            _INSERT_PURCHASES_SKIPPING_TAKEN if skip_taken else _INSERT_PURCHASES_ALL,
            {
                "now": now,
                "external_id": sql_array(item.external_id for item, _ in batch),
                "customer": sql_array(customer_ids[item.customer] for item, _ in batch),
                "placed_at": sql_array(item.placed_at for item, _ in batch),
                "total": sql_array(item.total for item, _ in batch),
                "currency": sql_array(item.currency for item, _ in batch),
                "status": sql_array(item.status for item, _ in batch),
                "cart": sql_array(item.cart_id for item, _ in batch),
                "points": sql_array(item.points_redeemed for item, _ in batch),
                "digest": sql_array(digest for _, digest in batch),
            },
        )
        rows = cursor.fetchall()
    inserted = {external_id: Inserted(pk, cart_id, now) for pk, external_id, cart_id in rows}
    if inserted:
        transaction.on_commit(rollups_fold_soon, robust=True)
    lines = [
        (inserted[item.external_id].id, line)
        for item, _ in batch
        if item.external_id in inserted
        for line in item.items
    ]
    if lines:
        with bound_cursor() as cursor:
            cursor.execute(
                _INSERT_ITEMS,
                {
                    "purchase": sql_array(purchase_id for purchase_id, _ in lines),
                    "sku": sql_array(line.sku for _, line in lines),
                    "name": sql_array(line.name for _, line in lines),
                    "category": sql_array(line.category for _, line in lines),
                    "quantity": sql_array(line.quantity for _, line in lines),
                    "unit_price": sql_array(line.unit_price for _, line in lines),
                },
            )
    return inserted


# Each buyer's row is written once per batch: its purchase stats (summed here from the batch's
# completed purchases), the points loyalty credited and its new tier together (a row written three
# times writes its ten index entries three times). The caller holds the customers' locks, so adding
# is exact and far cheaper than re-aggregating.
_MOVE_BUYERS = """
    UPDATE customers_customer AS customer SET
        orders_count = customer.orders_count + coalesce(bought.orders, 0),
        total_spent = customer.total_spent + coalesce(bought.spent, 0),
        first_purchase_at = LEAST(customer.first_purchase_at, bought.first_at),
        last_purchase_at = GREATEST(customer.last_purchase_at, bought.last_at),
        points_balance = customer.points_balance + moved.points,
        tier = COALESCE(moved.tier, customer.tier)
    FROM unnest(%s::bigint[], %s::bigint[], %s::varchar[]) AS moved(customer_id, points, tier)
    LEFT JOIN (
        SELECT customer_id, count(*) AS orders, sum(total) AS spent, min(placed_at) AS first_at,
               max(placed_at) AS last_at
        FROM unnest(%s::bigint[], %s::numeric[], %s::timestamptz[]) AS p(customer_id, total, placed_at)
        GROUP BY customer_id
    ) AS bought USING (customer_id)
    WHERE customer.id = moved.customer_id
"""


def _buyers_move(completed: list[tuple[int, Decimal, dt.datetime]], moves: BuyerMoves) -> None:
    """One UPDATE for every buyer whose row changes (see _MOVE_BUYERS); ``completed`` holds the
    batch's completed purchases as (customer_id, total, placed_at)."""
    changed = sorted({pk for pk, _, _ in completed} | set(moves.points) | set(moves.tiers))
    if not changed:
        return
    with bound_cursor() as cursor:
        cursor.execute(
            _MOVE_BUYERS,
            [
                sql_array(changed),
                sql_array(moves.points.get(pk, 0) for pk in changed),
                sql_array(moves.tiers.get(pk) for pk in changed),
                sql_array(pk for pk, _, _ in completed),
                sql_array(total for _, total, _ in completed),
                sql_array(placed_at for _, _, placed_at in completed),
            ],
        )


def purchases_apply(
    purchases: list[PurchaseInput],
    inserted: dict[str, Inserted],
    customer_ids: dict[str, int],
    *,
    now: dt.datetime,
) -> None:
    """Carts, stats, loyalty and attribution for the purchases just inserted, under the customers'
    locks (taken here in id order; a caller holding some already takes them again at no cost)."""
    new = [item for item in purchases if item.external_id in inserted]
    if not new:
        return
    completed = [item for item in new if item.status == PurchaseStatus.COMPLETED]
    # Campaigns (SPEC §4 attribution): the completed purchases, in one statement. It writes no
    # customer row, so it runs before the locks, keeping the part that queues up short.
    purchases_attribute(purchase_ids=[inserted[item.external_id].id for item in completed])
    # Journeys (SPEC §4.1 goal exit): entries of these buyers end in the same transaction.
    entries_exit_on_purchase(purchase_ids=[inserted[item.external_id].id for item in completed])
    # One lock pass in a fixed order: concurrent batches touching the same customers queue up here.
    buyers = buyers_lock([customer_ids[item.customer] for item in new])
    bought_completed = [(customer_ids[item.customer], item.total, item.placed_at) for item in completed]
    latest: dict[int, dt.datetime] = {}  # each buyer's latest purchase decides its open carts
    for customer_id, _, placed_at in bought_completed:
        latest[customer_id] = max(latest.get(customer_id, placed_at), placed_at)
    if latest:
        with bound_cursor() as cursor:
            cursor.execute(
                _CONVERT_CARTS,
                [
                    CartStatus.CONVERTED,
                    now,
                    sql_array(latest),
                    sql_array(latest.values()),
                    CartStatus.OPEN,
                    CartStatus.ABANDONED,
                    sql_array(item.cart_id for item in completed if item.cart_id),
                ],
            )
    # Loyalty (SPEC §3): tiers and points earned for the whole batch, then each buyer's row once.
    bought = [
        NewPurchase(
            inserted[item.external_id].id,
            customer_ids[item.customer],
            item.total,
            item.placed_at,
            item.status == PurchaseStatus.COMPLETED,
        )
        for item in new
    ]
    moves = loyalty_for_new_purchases(purchases=bought, buyers=buyers, now=now)
    _buyers_move(bought_completed, moves)
    # Referral bonuses go to the referrers, after the buyers' rows have moved (a referrer may be one).
    referrals_for_new_purchases(purchases=bought, buyers=buyers, now=now)
