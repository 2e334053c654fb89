"""Bulk purchase ingestion: up to 1,000 purchases in a handful of set-based statements.

The rules are those of ``purchase_record`` (same validation, same idempotency by content digest,
same cart conversion, same stats); only the way they are applied differs: one INSERT for the
purchases, one for their items, one UPDATE for carts and one for customer stats, instead of a
round of queries per purchase. On anything unexpected from the database the batch falls back to
``purchase_record`` per item, so a bad item still fails only itself.
"""

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from campaigns.attribution import purchases_attribute  # campaigns: attribution hook
from customers.models import Cart, CartStatus, Customer, Purchase, PurchaseStatus
from customers.services import validation as v
from customers.services.customers import customer_stats_add_purchases
from customers.services.loyalty import loyalty_after_purchases, points_welcome_for_customers
from customers.services.purchases import PurchaseInput, products_ensure, purchase_record
from retention_crm.errors import ApplicationError, Conflict

logger = logging.getLogger(__name__)

MAX_BULK_PURCHASES = 1_000


@dataclass(frozen=True)
class BulkResult:
    external_id: str | None
    status: str  # created | exists | error
    error: dict[str, Any] | None = None


def _error(raw: Any, error: ApplicationError) -> BulkResult:
    external_id = raw.get("external_id") if isinstance(raw, dict) else None
    return BulkResult(
        external_id=external_id if isinstance(external_id, str) else None,
        status="error",
        error=error.as_dict()["error"],
    )


def _conflict(external_id: str) -> Conflict:
    return Conflict(
        f"Purchase {external_id!r} already exists with different content.",
        code="purchase_conflict",
        fields={"external_id": ["already used for a different purchase"]},
    )


def purchases_record_bulk(*, raw_purchases: list[Any]) -> list[BulkResult]:
    """Record up to 1,000 purchases; one result per item, in request order.

    An item is ``created``, ``exists`` (the same content was stored before, or earlier in this
    batch) or ``error`` (invalid, or its external_id is taken by other content). A bad item
    fails only itself.

    On PostgreSQL the customers the batch names are created first, in a short transaction of
    their own (with their welcome bonus), then the purchases in one transaction. A concurrent
    batch naming the same new customer so waits for that short transaction only, not for this
    whole batch. Called inside a caller's transaction, everything commits together.
    """
    if not isinstance(raw_purchases, list):
        raise v.invalid("purchases", "must be a list")
    if len(raw_purchases) > MAX_BULK_PURCHASES:
        raise v.invalid("purchases", f"at most {MAX_BULK_PURCHASES} purchases per request")

    results: list[BulkResult | None] = [None] * len(raw_purchases)
    first_seen: dict[str, tuple[int, str]] = {}  # external_id -> (index, digest) of its first valid item
    candidates: list[tuple[int, PurchaseInput, str]] = []
    for index, raw in enumerate(raw_purchases):
        try:
            item = PurchaseInput.clean(raw)
        except ApplicationError as error:
            results[index] = _error(raw, error)
            continue
        digest = item.digest()
        if item.external_id in first_seen:
            same = first_seen[item.external_id][1] == digest
            results[index] = (
                BulkResult(item.external_id, "exists") if same else _error(raw, _conflict(item.external_id))
            )
            continue
        first_seen[item.external_id] = (index, digest)
        candidates.append((index, item, digest))

    stored = dict(
        Purchase.objects.filter(external_id__any=list(first_seen)).values_list("external_id", "content_digest")
    )
    new: list[tuple[int, PurchaseInput, str]] = []
    for index, item, digest in candidates:
        if item.external_id not in stored:
            new.append((index, item, digest))
        elif stored[item.external_id] == digest:
            results[index] = BulkResult(item.external_id, "exists")
        else:
            results[index] = _error(raw_purchases[index], _conflict(item.external_id))

    if new and connection.vendor == "postgresql":
        customer_ids = _customers_ensure(sorted({item.customer for _, item, _ in new}))
        with transaction.atomic():
            with connection.cursor() as cursor:
                # A batch's statements look costly to the planner (a thousand lookups each), so it
                # would JIT-compile them: ~10 ms each, more than the lookups themselves take.
                cursor.execute("SET LOCAL jit = off")
            try:
                with transaction.atomic():
                    _insert_set_based(new, customer_ids, results)
            except DatabaseError:
                logger.warning("purchases.bulk.fallback", extra={"items": len(new)}, exc_info=True)
                _insert_one_by_one(new, raw_purchases, results)
    elif new:
        with transaction.atomic():
            _insert_one_by_one(new, raw_purchases, results)

    # Items that lost a race to a concurrent request with the same external_id.
    pending = {index: (item, digest) for index, item, digest in new}
    for index, result in enumerate(results):
        if result is None:
            item, digest = pending[index]
            existing = Purchase.objects.filter(external_id=item.external_id).values_list("content_digest", flat=True)
            same = existing.first() == digest
            results[index] = (
                BulkResult(item.external_id, "exists")
                if same
                else _error(raw_purchases[index], _conflict(item.external_id))
            )
    return results  # type: ignore[return-value]


@transaction.atomic
def _customers_ensure(names: list[str]) -> dict[str, int]:
    """The ids of the named customers, creating the unknown ones with their welcome bonus."""
    known = set(Customer.objects.filter(external_id__any=names).values_list("external_id", flat=True))
    unknown = [name for name in names if name not in known]
    if unknown:
        Customer.objects.bulk_create([Customer(external_id=name) for name in unknown], ignore_conflicts=True)
    ids = dict(Customer.objects.filter(external_id__any=names).values_list("external_id", "pk"))
    # A name another request created meanwhile is credited once: the bonus's key is per customer.
    points_welcome_for_customers(customer_ids=[ids[name] for name in unknown])
    return ids


def _insert_one_by_one(
    new: list[tuple[int, PurchaseInput, str]], raw_purchases: list[Any], results: list[BulkResult | None]
) -> None:
    for index, item, _ in new:
        try:
            with transaction.atomic():
                _, created = purchase_record(data=item)
        except ApplicationError as error:
            results[index] = _error(raw_purchases[index], error)
            continue
        results[index] = BulkResult(item.external_id, "created" if created else "exists")


_INSERT_PURCHASES = """
    INSERT INTO customers_purchase
        (external_id, customer_id, placed_at, total, currency, status, cart_id, cart_external_id,
         points_redeemed, content_digest, created_at)
    SELECT * FROM unnest(
        %s::varchar[], %s::bigint[], %s::timestamptz[], %s::numeric[], %s::varchar[], %s::varchar[],
        %s::bigint[], %s::varchar[], %s::integer[], %s::varchar[], %s::timestamptz[])
    ON CONFLICT (external_id) DO NOTHING
    RETURNING id, external_id
"""

_INSERT_ITEMS = """
    INSERT INTO customers_purchaseitem (purchase_id, sku, name, category, quantity, unit_price)
    SELECT * FROM unnest(%s::bigint[], %s::varchar[], %s::varchar[], %s::varchar[], %s::integer[], %s::numeric[])
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


def _insert_set_based(
    new: list[tuple[int, PurchaseInput, str]], customer_ids: dict[str, int], results: list[BulkResult | None]
) -> None:
    """PostgreSQL: write the whole batch in a few statements, then apply its effects.

    The purchases and items go in before the customers are locked: inserting them takes no lock
    a concurrent batch waits on, so only the short part that updates the customers queues up.
    """
    products_ensure(tuple(line for _, item, _ in new for line in item.items))
    named_carts = {item.cart_id for _, item, _ in new if item.cart_id}
    cart_ids = dict(Cart.objects.filter(external_id__any=named_carts).values_list("external_id", "pk"))

    now = timezone.now()
    columns: list[list[Any]] = [[] for _ in range(11)]
    for _, item, digest in new:
        row = (
            item.external_id,
            customer_ids[item.customer],
            item.placed_at,
            item.total,
            item.currency,
            item.status,
            cart_ids.get(item.cart_id),
            item.cart_id,
            item.points_redeemed,
            digest,
            now,
        )
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    with connection.cursor() as cursor:
        cursor.execute(_INSERT_PURCHASES, columns)
        inserted = dict((external_id, pk) for pk, external_id in cursor.fetchall())

    item_rows = [
        (inserted[item.external_id], line.sku, line.name, line.category, line.quantity, line.unit_price)
        for _, item, _ in new
        if item.external_id in inserted
        for line in item.items
    ]
    if item_rows:
        with connection.cursor() as cursor:
            cursor.execute(_INSERT_ITEMS, [list(column) for column in zip(*item_rows, strict=True)])

    completed = [item for _, item, _ in new if item.external_id in inserted and item.status == PurchaseStatus.COMPLETED]
    _purchases_apply(
        completed=completed,
        customer_ids=customer_ids,
        inserted=inserted,
        buyers={customer_ids[item.customer] for _, item, _ in new if item.external_id in inserted},
        now=now,
    )
    for index, item, _ in new:
        if item.external_id in inserted:
            results[index] = BulkResult(item.external_id, "created")


def _purchases_apply(
    *,
    completed: list[PurchaseInput],
    customer_ids: dict[str, int],
    inserted: dict[str, int],
    buyers: set[int],
    now: dt.datetime,
) -> None:
    """Carts, stats, loyalty and attribution for the inserted purchases, under the customers' locks."""
    # One lock pass in a fixed order: concurrent batches touching the same customers queue up here.
    list(
        Customer.objects.select_for_update(no_key=True)
        .filter(pk__any=sorted(buyers))
        .order_by("pk")
        .values_list("pk", flat=True)
    )
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
    loyalty_after_purchases(purchase_ids=list(inserted.values()))
    # Campaigns (SPEC §4 attribution): the batch's completed purchases, in one statement.
    purchases_attribute(purchase_ids=[inserted[item.external_id] for item in completed])
