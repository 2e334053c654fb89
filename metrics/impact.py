"""Campaign impact (SPEC §5): treated (sent) vs control (held_out). Waits for the campaigns app.

What is here now is the seam the campaigns engineer plugs into; nothing else in metrics changes:

* ``group_customer_ids(campaign=..., group=...)`` returns the customers of one group as a
  queryset of primary keys, e.g. ``Message.objects.filter(campaign_id=campaign, status="sent")
  .values("customer_id")``. Every figure family takes that as ``customer_ids`` and stays one
  statement with a subquery: ``retention(..., customer_ids=...)``, ``summary(...)``,
  ``cohort_matrix(...)`` and the RFM queries. The retention API already routes its ``campaign``
  and ``group`` parameters here.
* ``campaign_impact(campaign=...)`` will add, per group: counts, conversion within the
  attribution window, revenue per customer, share still active 30 and 90 days after the message,
  and the absolute uplift with a 95 % confidence interval and p-value (two-proportion z-test),
  plus the incremental revenue estimate. ``two_proportion_z_test`` below is ready for it.

Until campaigns exist, asking for a group is a 400 that says so, never a 500.
"""

import math
from dataclasses import dataclass

from django.db.models import QuerySet

from retention_crm.errors import ApplicationError

GROUPS = ("treated", "control")


def campaigns_unavailable() -> ApplicationError:
    return ApplicationError(
        "campaigns are not available yet: the campaign and group parameters need the campaigns app.",
        code="campaigns_unavailable",
        fields={"campaign": ["campaigns are not available yet"]},
    )


def group_customer_ids(*, campaign: str | None, group: str | None) -> QuerySet | None:
    """The customers of a campaign's treated or control group, as a subquery; None for everyone."""
    if campaign in (None, "") and group in (None, ""):
        return None
    if group not in (None, "") and group not in GROUPS:
        raise ApplicationError(
            f"group must be one of {', '.join(GROUPS)}.", code="invalid", fields={"group": ["unknown group"]}
        )
    raise campaigns_unavailable()


@dataclass(frozen=True)
class Uplift:
    difference: float  # treated rate - control rate
    ci_low: float
    ci_high: float
    p_value: float


def two_proportion_z_test(*, treated_hits: int, treated: int, control_hits: int, control: int) -> Uplift | None:
    """Absolute uplift of the treated rate over the control rate, its 95 % Wald interval, and the
    two-sided p-value of the pooled two-proportion z-test. None when a group is empty."""
    if not treated or not control:
        return None
    p1, p2 = treated_hits / treated, control_hits / control
    difference = p1 - p2
    spread = math.sqrt(p1 * (1 - p1) / treated + p2 * (1 - p2) / control)
    pooled = (treated_hits + control_hits) / (treated + control)
    pooled_spread = math.sqrt(pooled * (1 - pooled) * (1 / treated + 1 / control))
    z = difference / pooled_spread if pooled_spread else 0.0
    p_value = math.erfc(abs(z) / math.sqrt(2))
    return Uplift(difference, difference - 1.959963984540054 * spread, difference + 1.959963984540054 * spread, p_value)
