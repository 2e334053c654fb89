"""Campaign impact (SPEC §5): treated (sent) vs control (held_out).

* ``group_customer_ids(campaign=..., group=...)`` returns the customers of one group as a
  subquery of primary keys. Every figure family takes that as ``customer_ids`` and stays one
  statement with a subquery: ``retention(..., customer_ids=...)``, ``summary(...)``,
  ``cohort_matrix(...)`` and the RFM queries; the retention API routes its ``campaign`` and
  ``group`` parameters here.
* ``two_proportion_z_test`` gives the uplift with its 95 % interval and p-value; the campaign
  report (campaigns/selectors.py) uses it for conversion within the attribution window.
"""

import math
from dataclasses import dataclass

from django.db.models import QuerySet

from retention_crm.errors import ApplicationError, NotFound

GROUPS = ("treated", "control")


def group_customer_ids(*, campaign: str | None, group: str | None) -> QuerySet | None:
    """The customers of a campaign's treated or control group, as a subquery; None for everyone."""
    if campaign in (None, "") and group in (None, ""):
        return None
    if group not in GROUPS:
        raise ApplicationError(
            f"group must be one of {', '.join(GROUPS)} (together with campaign).",
            code="invalid",
            fields={"group": ["give treated or control together with campaign"]},
        )
    try:
        campaign_id = int(str(campaign))
    except ValueError:
        raise ApplicationError(
            "campaign must be a campaign id.", code="invalid", fields={"campaign": ["must be a campaign id"]}
        ) from None
    # Imported here: the campaigns app reads metrics too (churn risk audiences, the z-test).
    from campaigns.models import Campaign
    from campaigns.selectors import campaign_group_customer_ids

    if not Campaign.objects.filter(pk=campaign_id).exists():
        raise NotFound(f"No campaign with id {campaign_id}.", code="campaign_not_found")
    return campaign_group_customer_ids(campaign_id=campaign_id, group=group)


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
