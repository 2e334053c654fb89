"""Writes for purchases: record (idempotent on external_id), refund, cancel."""

from typing import Any

from django.db import transaction
from django.utils import timezone

from customers.loyalty.services import loyalty_after_status_change
from customers.models import (
    Customer,
    Product,
    Purchase,
    PurchaseStatus,
)
from customers.services.customers import (
    customer_get_or_create_locked,
    customer_stats_refresh,
)
from customers.services.purchase_input import LineItemInput, PurchaseInput, purchase_conflict
from customers.services.purchase_sets import purchases_apply, purchases_insert
from retention_crm.errors import Conflict, NotFound


def _stored_fields(data: PurchaseInput, digest: str) -> dict[str, Any]:
    """The purchase's own columns, as stored from the input."""
    return {
        "external_id": data.external_id,
        "placed_at": data.placed_at,
        "total": data.total,
        "currency": data.currency,
        "status": data.status,
        "cart_external_id": data.cart_id,
        "points_redeemed": data.points_redeemed,
        "content_digest": digest,
    }


def _existing_or_conflict(data: PurchaseInput, digest: str) -> Purchase:
    existing = Purchase.objects.get(external_id=data.external_id)
    if not data.same_content(existing.content_digest):
        raise purchase_conflict(data.external_id)
    return existing


def products_ensure(items: tuple[LineItemInput, ...]) -> None:
    """Create catalogue entries for SKUs seen for the first time; known products are left alone."""
    by_sku = {item.sku: item for item in items}
    known = set(Product.objects.filter(sku__any=list(by_sku)).values_list("sku", flat=True))
    Product.objects.bulk_create(
        [
            Product(sku=sku, name=item.name, category=item.category)
            for sku, item in sorted(by_sku.items())
            if sku not in known
        ],
        ignore_conflicts=True,  # a product another request added meanwhile
    )


@transaction.atomic
def purchase_record(*, data: PurchaseInput) -> tuple[Purchase, bool]:
    """Record one purchase; returns (purchase, created).

    Idempotent on ``external_id``: the same content again returns the stored purchase; other
    content under a used id raises a 409 Conflict. An unknown customer is created. In the same
    transaction the customer's stats are refreshed and carts converted.

    The bulk ingest's statements for one purchase (a dozen, mostly plain SQL): the insert itself
    tells a new external_id from a used one (ON CONFLICT DO NOTHING); a conflict raises, which
    rolls back a customer this request created.
    """
    digest = data.digest()
    customer, _ = customer_get_or_create_locked(external_id=data.customer)
    customer_ids = {data.customer: customer.pk}
    now = timezone.now()
    inserted = purchases_insert([(data, digest)], customer_ids, now=now)
    if data.external_id not in inserted:
        return _existing_or_conflict(data, digest), False
    purchases_apply([data], inserted, customer_ids, now=now)
    row = inserted[data.external_id]
    purchase = Purchase(
        id=row.id, customer=customer, cart_id=row.cart_id, created_at=row.created_at, **_stored_fields(data, digest)
    )
    purchase._state.adding = False  # it is stored: what Django sets on instances it reads
    return purchase, True


def _purchase_locked(external_id: str) -> Purchase:
    purchase = Purchase.objects.filter(external_id=external_id).first()
    if purchase is None:
        raise NotFound(f"No purchase with external_id {external_id!r}.", code="purchase_not_found")
    # Lock the customer first, as purchase_record does, so the two never deadlock.
    Customer.objects.select_for_update(no_key=True).get(pk=purchase.customer_id)
    return Purchase.objects.select_for_update().get(pk=purchase.pk)


def _purchase_status_change(*, external_id: str, to: str) -> tuple[Purchase, bool]:
    purchase = _purchase_locked(external_id)
    if purchase.status == to:
        return purchase, False
    if purchase.status != PurchaseStatus.COMPLETED:
        raise Conflict(
            f"Purchase {external_id!r} is {purchase.status}; only a completed purchase can become {to}.",
            code="invalid_status",
        )
    purchase.status = to
    purchase.status_changed_at = timezone.now()
    purchase.save(update_fields=["status", "status_changed_at"])
    customer_stats_refresh(customer_ids=[purchase.customer_id])
    # Loyalty (SPEC §3): return redeemed points, take back earned ones, recompute the tier.
    loyalty_after_status_change(purchase_ids=[purchase.pk])
    return purchase, True


@transaction.atomic
def purchase_refund(*, external_id: str) -> tuple[Purchase, bool]:
    """Mark a completed purchase refunded; returns (purchase, changed). A repeat changes nothing.

    It stops counting in stats, metrics and triggers from now on.
    """
    return _purchase_status_change(external_id=external_id, to=PurchaseStatus.REFUNDED)


@transaction.atomic
def purchase_cancel(*, external_id: str) -> tuple[Purchase, bool]:
    """Mark a completed purchase cancelled; returns (purchase, changed). A repeat changes nothing."""
    return _purchase_status_change(external_id=external_id, to=PurchaseStatus.CANCELLED)
