"""Reactivation: the last completed purchase is at least ``inactive_days`` old and, when
``max_inactive_days`` is set, less than that (SPEC §4). One message per customer and last purchase:
a customer who buys again and lapses again is reminded again."""

import datetime as dt
from typing import Any

from campaigns.sql import Sql, epoch_us, value
from campaigns.triggers.base import Candidates, EvaluationContext, Param, TriggerDefinition, invalid


class Reactivation(TriggerDefinition):
    name = "reactivation"
    label = "Reactivation"
    description = "No completed purchase for inactive_days (and, if set, for less than max_inactive_days)."
    params = (
        Param("inactive_days", "Inactive for (days)", "Days since the last completed purchase", 90, 1, 3650),
        Param(
            "max_inactive_days",
            "Inactive for less than (days)",
            "Optional: customers silent longer than this are left alone",
            None,
            2,
            36500,
        ),
    )

    def check(self, resolved: dict[str, Any]) -> None:
        if resolved["max_inactive_days"] is not None and resolved["max_inactive_days"] <= resolved["inactive_days"]:
            raise invalid("params.max_inactive_days", "must be greater than inactive_days")

    def candidates(self, *, params: dict[str, Any], ctx: EvaluationContext) -> Candidates:
        where = "c.last_purchase_at <= " + value(ctx.now - dt.timedelta(days=params["inactive_days"]), "timestamptz")
        if params["max_inactive_days"] is not None:
            oldest = ctx.now - dt.timedelta(days=params["max_inactive_days"])
            where = where + " AND c.last_purchase_at > " + value(oldest, "timestamptz")
        return Candidates(
            from_=Sql("customers_customer c"),
            where=where,
            dedupe_key=Sql(f"'c:' || c.id || ':last:' || {epoch_us('c.last_purchase_at')}"),
            data=Sql("jsonb_build_object('last_purchase_at', c.last_purchase_at)"),
        )


TRIGGER = Reactivation()
