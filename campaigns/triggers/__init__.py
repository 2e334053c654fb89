"""The seven triggers of SPEC §4, one module each, looked up by name."""

from campaigns.triggers import (
    abandoned_cart,
    birthday,
    churn_risk,
    points_expiring,
    post_purchase,
    reactivation,
    welcome,
)
from campaigns.triggers.base import Candidates, EvaluationContext, Param, TriggerDefinition
from retention_crm.errors import ApplicationError

TRIGGERS: dict[str, TriggerDefinition] = {
    module.TRIGGER.name: module.TRIGGER
    for module in (abandoned_cart, reactivation, birthday, welcome, post_purchase, points_expiring, churn_risk)
}


def trigger_get(name: str) -> TriggerDefinition:
    try:
        return TRIGGERS[name]
    except (KeyError, TypeError):
        raise ApplicationError(
            f"trigger: unknown trigger {name!r}; use {', '.join(TRIGGERS)}",
            code="invalid",
            fields={"trigger": [f"one of {', '.join(TRIGGERS)}"]},
        ) from None


__all__ = ["TRIGGERS", "Candidates", "EvaluationContext", "Param", "TriggerDefinition", "trigger_get"]
