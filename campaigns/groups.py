"""A campaign's treated and control groups: the campaigns app's front door for reading figures per
group (the metrics API's retention by ``campaign`` and ``group`` calls ``group_customer_ids``).

The treated group are the customers the campaign sent to, the control group those it held out.
"""

from django.db.models import QuerySet

from campaigns.models import SENT_STATUSES, Campaign, Message, MessageStatus
from retention_crm.errors import ApplicationError, NotFound

GROUPS = ("treated", "control")


def campaign_group_customer_ids(*, campaign_id: int, group: str) -> QuerySet:
    """The customers of a campaign's treated (sent) or control (held_out) group, as a subquery of ids."""
    if group not in GROUPS:
        raise ApplicationError(
            f"group must be one of {', '.join(GROUPS)}.", code="invalid", fields={"group": ["unknown group"]}
        )
    statuses = [MessageStatus.HELD_OUT] if group == "control" else list(SENT_STATUSES)
    return Message.objects.filter(campaign_id=campaign_id, status__in=statuses).values("customer_id").distinct()


def group_customer_ids(*, campaign: str | None, group: str | None) -> QuerySet | None:
    """The customers of a campaign's treated or control group named by request parameters, as a
    subquery; None for everyone. Every figure family takes it as ``customer_ids`` and stays one
    statement with a subquery (retention, summary, cohorts, RFM)."""
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
    if not Campaign.objects.filter(pk=campaign_id).exists():
        raise NotFound(f"No campaign with id {campaign_id}.", code="campaign_not_found")
    return campaign_group_customer_ids(campaign_id=campaign_id, group=group)
