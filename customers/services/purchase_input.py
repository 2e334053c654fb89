"""What a purchase is on the way in: the validated input types (``PurchaseInput`` with its
``LineItemInput`` lines) and their content digest, shared by the single and the bulk purchase
services, the CSV import and the set-based statements (customers/services/purchase_sets.py)."""

import base64
import datetime as dt
import hashlib
from dataclasses import dataclass, field
from decimal import Decimal
from json.encoder import encode_basestring_ascii as _json_string
from typing import Any

from customers.models import PurchaseStatus
from retention_crm import validation as v
from retention_crm.errors import ApplicationError, Conflict

MAX_ITEMS_PER_ORDER = 1_000
MAX_POINTS = 2**31 - 1
PURCHASE_REQUIRED_FIELDS = ("external_id", "customer", "placed_at", "total")
PURCHASE_STATUSES = PurchaseStatus.values  # read once: building the list costs more than checking it


# The digest's first form (hex of the whole SHA-256), which purchases stored before the short one keep.
LEGACY_DIGEST_LENGTH = 64


def purchase_conflict(external_id: str) -> Conflict:
    """The error for an order id already used by a purchase of other content (409)."""
    return Conflict(
        f"Purchase {external_id!r} already exists with different content.",
        code="purchase_conflict",
        fields={"external_id": ["already used for a different purchase"]},
    )


_ITEM_FIELDS = frozenset({"sku", "name", "category", "quantity", "unit_price"})


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
        if not _ITEM_FIELDS.issuperset(raw):
            raise v.invalid(prefix, f"unknown fields: {', '.join(sorted(set(raw) - _ITEM_FIELDS))}")
        return cls(
            sku=v.clean_external_id(raw.get("sku"), f"{prefix}.sku"),
            name=v.clean_text(raw.get("name"), f"{prefix}.name", 255),
            category=v.clean_text(raw.get("category"), f"{prefix}.category", 128),
            quantity=v.clean_count(raw.get("quantity"), f"{prefix}.quantity", minimum=1, maximum=v.MAX_QUANTITY),
            unit_price=v.clean_money(raw.get("unit_price"), f"{prefix}.unit_price"),
        )


# Item lines already validated in a batch, by their cells: a shop's export repeats its catalogue's
# lines (the same SKU, name, category, quantity and price) across orders, and validating a line
# costs more than looking it up. Only lines of text cells (a CSV's) are kept: as keys, 1, 1.0 and
# True would be one, though not all are a valid quantity; a text is never equal to any of them.
ItemsSeen = dict[tuple[tuple[str, Any], ...], LineItemInput]


def _item_clean(raw: Any, index: int, seen: ItemsSeen | None) -> LineItemInput:
    if seen is None or type(raw) is not dict:
        return LineItemInput.clean(raw, index)
    key = tuple(raw.items())
    try:
        item = seen.get(key)
    except TypeError:  # a cell that cannot be a key (a list): never kept, so never seen
        return LineItemInput.clean(raw, index)
    if item is None:
        item = LineItemInput.clean(raw, index)
        if set(map(type, raw.values())) == {str}:
            seen[key] = item
    return item


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
    def clean(cls, raw: dict[str, Any], *, items_seen: "ItemsSeen | None" = None) -> "PurchaseInput":
        """Validate the SPEC §6 purchase shape; raises ApplicationError naming the field.

        ``items_seen`` (a batch's) reuses the lines validated earlier in the batch."""
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
            items=tuple(_item_clean(item, i, items_seen) for i, item in enumerate(items)),
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
        return hashlib.sha256(self.content_json().encode()).digest()

    def content_json(self) -> str:
        """The content the digest is taken of, as ``json.dumps(content, sort_keys=True)`` spells
        it (the stored digests were made that way), written out directly: an import hashes every
        order, and the general encoder took a tenth of its Python time. Keys in sorted order."""
        items = ", ".join(
            f"[{_json_string(i.sku)}, {_json_string(i.name)}, {_json_string(i.category)}, {i.quantity}, "
            f'"{i.unit_price}"]'
            for i in self.items
        )
        return (
            f'{{"cart_id": {_json_string(self.cart_id)}, "currency": {_json_string(self.currency)}, '
            f'"customer": {_json_string(self.customer)}, "external_id": {_json_string(self.external_id)}, '
            f'"items": [{items}], "placed_at": "{self.placed_at.astimezone(dt.UTC).isoformat()}", '
            f'"points_redeemed": {self.points_redeemed}, "status": {_json_string(self.status)}, '
            f'"total": "{self.total}"}}'
        )
