"""Writes for carts: the shop replaces a cart's content whenever it changes."""

import datetime as dt
from typing import Any

from django.db import transaction
from django.utils import timezone

from customers.models import Cart, CartItem, CartStatus
from customers.services.customers import customer_get_or_create_locked
from customers.services.purchase_input import MAX_ITEMS_PER_ORDER, LineItemInput
from customers.services.purchases import products_ensure
from retention_crm import validation as v


@transaction.atomic
def cart_upsert(
    *,
    external_id: str,
    customer: str,
    items: list[Any],
    updated_at: dt.datetime | None = None,
) -> tuple[Cart, bool]:
    """Create or replace a cart and its items; returns (cart, created).

    Any change reopens the cart and moves ``updated_at``, so the abandoned-cart trigger measures
    its delay from the last change. An empty item list empties the cart.
    """
    external_id = v.clean_external_id(external_id)
    if not isinstance(items, list | tuple):
        raise v.invalid("items", "must be a list")
    if len(items) > MAX_ITEMS_PER_ORDER:
        raise v.invalid("items", f"at most {MAX_ITEMS_PER_ORDER} items")
    lines = [LineItemInput.clean(item, i) for i, item in enumerate(items)]
    at = v.clean_happened_at(updated_at, "updated_at") if updated_at else timezone.now()
    owner, _ = customer_get_or_create_locked(external_id=customer)

    cart = Cart.objects.select_for_update().filter(external_id=external_id).first()
    created = cart is None
    if cart is None:
        cart = Cart.objects.create(external_id=external_id, customer=owner, updated_at=at, created_at=at)
    else:
        cart.customer = owner
        cart.status = CartStatus.OPEN
        cart.updated_at = at
        cart.converted_at = None
        cart.save(update_fields=["customer", "status", "updated_at", "converted_at"])
        cart.items.all().delete()
    if lines:
        products_ensure(tuple(lines))
    CartItem.objects.bulk_create(
        [
            CartItem(
                cart=cart,
                sku=line.sku,
                name=line.name,
                category=line.category,
                quantity=line.quantity,
                unit_price=line.unit_price,
            )
            for line in lines
        ]
    )
    return cart, created
