"""Abandoned cart: an open cart with items, untouched for ``delay_hours``, and no completed purchase
by its owner since its last change (SPEC §4). One message per cart and version of the cart: a cart
changed after a reminder is a new cart to remind about."""

import datetime as dt
from typing import Any

from campaigns.sql import Sql, epoch_us, value
from campaigns.triggers.base import Candidates, EvaluationContext, Param, TriggerDefinition, invalid


class AbandonedCart(TriggerDefinition):
    name = "abandoned_cart"
    label = "Abandoned cart"
    description = "An open cart with items, unchanged for delay_hours, and no completed purchase since."
    params = (
        Param("delay_hours", "Delay (hours)", "Hours since the cart's last change", 1, 0, 720, integer=False),
        Param(
            "max_age_hours",
            "Max age (hours)",
            "Optional: leave carts untouched for longer than this alone",
            None,
            1,
            8760,
            integer=False,
        ),
    )

    def check(self, resolved: dict[str, Any]) -> None:
        if resolved["max_age_hours"] is not None and resolved["max_age_hours"] <= resolved["delay_hours"]:
            raise invalid("params.max_age_hours", "must be greater than delay_hours")

    def candidates(self, *, params: dict[str, Any], ctx: EvaluationContext) -> Candidates:
        latest_update = ctx.now - dt.timedelta(hours=params["delay_hours"])
        where = Sql.format(
            "cart.status = 'open' AND cart.updated_at <= {latest}"
            " AND EXISTS (SELECT 1 FROM customers_cartitem item WHERE item.cart_id = cart.id)"
            # The customer's stats hold the latest completed purchase (kept current on every write).
            " AND (c.last_purchase_at IS NULL OR c.last_purchase_at <= cart.updated_at)",
            latest=value(latest_update, "timestamptz"),
        )
        if params["max_age_hours"] is not None:
            oldest = ctx.now - dt.timedelta(hours=params["max_age_hours"])
            where = where + " AND cart.updated_at > " + value(oldest, "timestamptz")
        return Candidates(
            from_=Sql("customers_cart cart JOIN customers_customer c ON c.id = cart.customer_id"),
            where=where,
            dedupe_key=Sql(f"'cart:' || cart.id || ':' || {epoch_us('cart.updated_at')}"),
            cart_id=Sql("cart.id"),
            data=Sql("jsonb_build_object('cart', cart.external_id, 'cart_updated_at', cart.updated_at)"),
        )


TRIGGER = AbandonedCart()
