"""Writes for purchases: record (idempotent on external_id), refund, cancel."""

import base64
import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

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
from customers.services.loyalty import loyalty_after_status_change
from customers.services.purchase_sets import purchases_apply, purchases_insert
from retention_crm import validation as v
from retention_crm.errors import ApplicationError, Conflict, NotFound

MAX_ITEMS_PER_ORDER = 1_000
MAX_POINTS = 2**31 - 1
PURCHASE_REQUIRED_FIELDS = ("external_id", "customer", "placed_at", "total")
PURCHASE_STATUSES = PurchaseStatus.values  # read once: building the list costs more than checking it


# The digest's first form (hex of the whole SHA-256), which purchases stored before the short one keep.
LEGACY_DIGEST_LENGTH = 64


@dataclass(frozen=True)
class LineItemInput:
    sku: str
    quantity: int
    unit_price: Decimal
    name: str = ""
    category: str = ""

    @classmethod
    def clean(cls, raw: Any, index: int) -> "LineItemInput":
        prefix = f"items[{index}]"
        if isinstance(raw, LineItemInput):
            raw = raw.__dict__
        if not isinstance(raw, dict):
            raise v.invalid(prefix, "must be an object")
        unknown = set(raw) - {"sku", "name", "category", "quantity", "unit_price"}
        if unknown:
            raise v.invalid(prefix, f"unknown fields: {', '.join(sorted(unknown))}")
        return cls(
            sku=v.clean_external_id(raw.get("sku"), f"{prefix}.sku"),
            name=v.clean_text(raw.get("name"), f"{prefix}.name", 255),
            category=v.clean_text(raw.get("category"), f"{prefix}.category", 128),
            quantity=v.clean_count(raw.get("quantity"), f"{prefix}.quantity", minimum=1, maximum=v.MAX_QUANTITY),
            unit_price=v.clean_money(raw.get("unit_price"), f"{prefix}.unit_price"),
        )


@dataclass(frozen=True)
class PurchaseInput:
    """A purchase as the shop reports it, validated and normalised."""

    external_id: str
    customer: str
    placed_at: dt.datetime
    total: Decimal
    currency: str
    status: str = PurchaseStatus.COMPLETED
    items: tuple[LineItemInput, ...] = field(default_factory=tuple)
    cart_id: str = ""
    points_redeemed: int = 0

    @classmethod
    def clean(cls, raw: dict[str, Any]) -> "PurchaseInput":
        """Validate the SPEC §6 purchase shape; raises ApplicationError naming the field."""
        if not isinstance(raw, dict):
            raise ApplicationError("A purchase must be an object.", code="invalid")
        v.refuse_unknown_fields(raw, cls.__dataclass_fields__)
        for required in PURCHASE_REQUIRED_FIELDS:
            if raw.get(required) in (None, ""):
                raise v.invalid(required, "is required")
        items = raw.get("items") or []
        if not isinstance(items, list | tuple):
            raise v.invalid("items", "must be a list")
        if len(items) > MAX_ITEMS_PER_ORDER:
            raise v.invalid("items", f"at most {MAX_ITEMS_PER_ORDER} items")
        points = raw.get("points_redeemed")
        return cls(
            external_id=v.clean_external_id(raw["external_id"]),
            customer=v.clean_external_id(raw["customer"], "customer"),
            placed_at=v.clean_happened_at(raw["placed_at"], "placed_at"),
            total=v.clean_money(raw["total"], "total"),
            currency=v.clean_currency(raw.get("currency")),
            status=v.clean_choice(raw.get("status") or PurchaseStatus.COMPLETED, "status", PURCHASE_STATUSES),
            items=tuple(LineItemInput.clean(item, i) for i, item in enumerate(items)),
            cart_id=v.clean_external_id(raw["cart_id"], "cart_id") if raw.get("cart_id") else "",
            points_redeemed=0 if points in (None, "") else v.clean_count(points, "points_redeemed", maximum=MAX_POINTS),
        )

    def digest(self) -> str:
        """A fingerprint of the content, independent of how it was spelled (time zone, 10 vs 10.00):
        the first 128 bits of its SHA-256, 22 characters of base64url (the hex of all 256 took 64,
        a third of a purchase row; two contents that share an order id never collide in practice)."""
        return base64.urlsafe_b64encode(self._content_hash()[:16]).rstrip(b"=").decode()

    def same_content(self, stored_digest: str | None) -> bool:
        """Whether a stored purchase's digest is this content's, in either form (purchases stored
        before the short digest keep the 64-character hex of the whole hash)."""
        if stored_digest is not None and len(stored_digest) == LEGACY_DIGEST_LENGTH:
            return stored_digest == self._content_hash().hex()
        return stored_digest == self.digest()

    def _content_hash(self) -> bytes:
        content = {
            "external_id": self.external_id,
            "customer": self.customer,
            "placed_at": self.placed_at.astimezone(dt.UTC).isoformat(),
            "total": str(self.total),
            "currency": self.currency,
            "status": self.status,
            "items": [[i.sku, i.name, i.category, i.quantity, str(i.unit_price)] for i in self.items],
            "cart_id": self.cart_id,
            "points_redeemed": self.points_redeemed,
        }
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).digest()


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
        raise Conflict(
            f"Purchase {data.external_id!r} already exists with different content.",
            code="purchase_conflict",
            fields={"external_id": ["already used for a different purchase"]},
        )
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
