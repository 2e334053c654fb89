"""Churn risk: the customer's stored churn-risk score (metrics §5, refreshed nightly) is at least
``threshold``. One message per customer and last purchase: a customer who buys and drifts away
again is a new case.

The audience comes from the metrics app's selector ``customers_with_churn_risk_at_least``,
embedded as a subquery.
"""

from typing import Any

from campaigns.sql import Sql, epoch_us, queryset_sql
from campaigns.triggers.base import Candidates, EvaluationContext, Param, TriggerDefinition
from metrics.selectors import customers_with_churn_risk_at_least


class ChurnRisk(TriggerDefinition):
    name = "churn_risk"
    label = "Churn risk"
    description = "The customer's churn-risk score (refreshed nightly) is at least threshold."
    params = (
        Param("threshold", "Threshold", "Churn risk from 0 (buying to rhythm) to 1 (gone)", 0.7, 0, 1, integer=False),
    )

    def candidates(self, *, params: dict[str, Any], ctx: EvaluationContext) -> Candidates:
        at_risk = queryset_sql(customers_with_churn_risk_at_least(float(params["threshold"])).values("pk"))
        return Candidates(
            from_=Sql("customers_customer c"),
            where=Sql.format("c.last_purchase_at IS NOT NULL AND c.id IN ({at_risk})", at_risk=at_risk),
            dedupe_key=Sql(f"'c:' || c.id || ':last:' || {epoch_us('c.last_purchase_at')}"),
            data=Sql("jsonb_build_object('last_purchase_at', c.last_purchase_at)"),
        )


TRIGGER = ChurnRisk()
