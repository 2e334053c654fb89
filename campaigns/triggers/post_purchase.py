"""Post-purchase (review or NPS request): a completed purchase placed in
``[now - days_after - 1 day, now - days_after]`` (SPEC §4). One message per purchase."""

import datetime as dt
from typing import Any

from campaigns.sql import Sql, value
from campaigns.triggers.base import Candidates, EvaluationContext, Param, TriggerDefinition


class PostPurchase(TriggerDefinition):
    name = "post_purchase"
    label = "Post-purchase"
    description = "A completed purchase placed days_after days ago (a one-day window)."
    params = (Param("days_after", "Days after", "Days after the purchase", 7, 0, 365),)

    def candidates(self, *, params: dict[str, Any], ctx: EvaluationContext) -> Candidates:
        latest = ctx.now - dt.timedelta(days=params["days_after"])
        return Candidates(
            from_=Sql("customers_purchase p JOIN customers_customer c ON c.id = p.customer_id"),
            where=Sql.format(
                "p.status = 'completed' AND p.placed_at >= {earliest} AND p.placed_at <= {latest}",
                earliest=value(latest - dt.timedelta(days=1), "timestamptz"),
                latest=value(latest, "timestamptz"),
            ),
            dedupe_key=Sql("'p:' || p.id"),
            purchase_id=Sql("p.id"),
            data=Sql("jsonb_build_object('purchase', p.external_id, 'placed_at', p.placed_at, 'total', p.total)"),
        )


TRIGGER = PostPurchase()
