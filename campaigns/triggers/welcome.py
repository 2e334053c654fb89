"""Welcome: signed up at least ``delay_hours`` ago and at most ``max_age_days`` ago (SPEC §4).
One message per customer, ever."""

import datetime as dt
from typing import Any

from campaigns.sql import Sql, value
from campaigns.triggers.base import Candidates, EvaluationContext, Param, TriggerDefinition, invalid


class Welcome(TriggerDefinition):
    name = "welcome"
    label = "Welcome"
    description = "Signed up at least delay_hours ago, within the last max_age_days."
    params = (
        Param("delay_hours", "Delay (hours)", "Hours after sign-up", 0, 0, 720, integer=False),
        Param("max_age_days", "Max age (days)", "Older sign-ups are not welcomed any more", 7, 1, 365),
    )

    def check(self, resolved: dict[str, Any]) -> None:
        if resolved["delay_hours"] >= resolved["max_age_days"] * 24:
            raise invalid("params.delay_hours", "must be shorter than max_age_days")

    def candidates(self, *, params: dict[str, Any], ctx: EvaluationContext) -> Candidates:
        return Candidates(
            from_=Sql("customers_customer c"),
            where=Sql.format(
                "c.created_at <= {latest} AND c.created_at >= {oldest}",
                latest=value(ctx.now - dt.timedelta(hours=params["delay_hours"]), "timestamptz"),
                oldest=value(ctx.now - dt.timedelta(days=params["max_age_days"]), "timestamptz"),
            ),
            dedupe_key=Sql("'c:' || c.id"),
        )


TRIGGER = Welcome()
