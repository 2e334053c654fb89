"""Points expiring: the customer holds points that expire within ``days_ahead`` (SPEC §4). One
message per customer and earliest expiry date (store time): the next batch of lots to expire is a
new reminder.

The set of customers and their expiring points comes from the loyalty app's set-based selector
``points_expiring_within``, embedded as a subquery: this module knows nothing of the ledger's
tables.
"""

from typing import Any

from campaigns.sql import Sql, queryset_sql, value
from campaigns.triggers.base import Candidates, EvaluationContext, Param, TriggerDefinition
from customers.loyalty.selectors import points_expiring_within

# How far ahead a message's ``points.expiring`` looks: this trigger's default ``days_ahead``, and
# the window of every campaign on another trigger.
DEFAULT_EXPIRING_DAYS = 14


class PointsExpiring(TriggerDefinition):
    name = "points_expiring"
    label = "Points expiring"
    description = "Loyalty points expire within days_ahead days."
    params = (
        Param("days_ahead", "Days ahead", "Points expiring within this many days", DEFAULT_EXPIRING_DAYS, 1, 365),
    )

    def expiring_days(self, params: Any) -> int:
        """A campaign's window for its expiring points: its ``days_ahead``, given or default.
        Parameters that are not a number (the editor's unsaved input) get the default."""
        try:
            return int(self.resolve(params if isinstance(params, dict) else {})["days_ahead"])
        except (TypeError, ValueError):
            return DEFAULT_EXPIRING_DAYS

    def candidates(self, *, params: dict[str, Any], ctx: EvaluationContext) -> Candidates:
        expiring = queryset_sql(points_expiring_within(days=params["days_ahead"], now=ctx.now))
        expiry_day = Sql.format(
            "(expiring.earliest_expiry AT TIME ZONE {tz})::date", tz=value(ctx.store_timezone, "text")
        )
        return Candidates(
            from_=Sql.format(
                "({expiring}) expiring JOIN customers_customer c ON c.id = expiring.customer_id", expiring=expiring
            ),
            where=Sql("expiring.points > 0"),
            dedupe_key=Sql.format("'c:' || c.id || ':expiry:' || {day}", day=expiry_day),
            data=Sql(
                "jsonb_build_object('expiring_points', expiring.points, 'earliest_expiry', expiring.earliest_expiry)"
            ),
        )


TRIGGER = PointsExpiring()


def expiring_days_for(*, trigger: str, params: Any) -> int:
    """How many days ahead a campaign's template context counts expiring points (``points.expiring``,
    ``points.expiring_days``): this trigger's ``days_ahead``, the default for every other trigger."""
    return TRIGGER.expiring_days(params) if trigger == TRIGGER.name else DEFAULT_EXPIRING_DAYS
