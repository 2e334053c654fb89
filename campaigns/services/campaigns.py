"""Writes for campaigns: create, update, status changes. Every rule about a campaign's fields lives here;
the API and the admin editor both call these."""

from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from campaigns.audience import audience_clean
from campaigns.models import (
    ATTRIBUTION_DAYS_MAX,
    HOLDOUT_PERCENT_MAX,
    Campaign,
    CampaignStatus,
)
from campaigns.offers import offer_clean
from campaigns.templating import storable_text, templates_validate
from campaigns.triggers import trigger_get
from customers.models import Channel
from customers.services import validation as v
from retention_crm.errors import ApplicationError, Conflict, NotFound

CAMPAIGN_FIELDS = (
    "name",
    "trigger",
    "channel",
    "status",
    "subject",
    "body",
    "params",
    "audience",
    "offer",
    "holdout_percent",
    "attribution_days",
)
REQUIRED_ON_CREATE = ("name", "trigger", "body")
NAME_MAX_LENGTH = 200
# Which status a campaign may move to from each status. Archived is the end.
STATUS_MOVES = {
    CampaignStatus.DRAFT: {CampaignStatus.ACTIVE, CampaignStatus.ARCHIVED},
    CampaignStatus.ACTIVE: {CampaignStatus.PAUSED, CampaignStatus.ARCHIVED},
    CampaignStatus.PAUSED: {CampaignStatus.ACTIVE, CampaignStatus.ARCHIVED},
    CampaignStatus.ARCHIVED: set(),
}
CREATE_STATUSES = (CampaignStatus.DRAFT, CampaignStatus.ACTIVE, CampaignStatus.PAUSED)


@dataclass(frozen=True)
class CampaignData:
    """A campaign's fields, validated together (params depend on trigger, subject on channel)."""

    values: dict[str, Any]


def campaign_clean(*, data: Any, instance: Campaign | None = None) -> CampaignData:
    """Validate a campaign (SPEC §4/§6 shape): all fields on create, the given ones on update.

    Raises ApplicationError naming the field: unknown fields, an unknown trigger, parameters the
    trigger does not take or out of range, a bad audience or offer, a template that does not compile.
    """
    if not isinstance(data, dict):
        raise ApplicationError("A campaign must be a JSON object.", code="invalid")
    v.refuse_unknown_fields(data, {*CAMPAIGN_FIELDS, "id"})
    if instance is None:
        for name in REQUIRED_ON_CREATE:
            if data.get(name) in (None, ""):
                raise v.invalid(name, "is required")

    def current(name: str, default: Any = None) -> Any:
        if name in data:
            return data[name]
        return getattr(instance, name) if instance is not None else default

    values: dict[str, Any] = {}
    name = current("name")
    if not isinstance(name, str) or not name.strip():
        raise v.invalid("name", "is required")
    values["name"] = storable_text(v.clean_text(name.strip(), "name", NAME_MAX_LENGTH), "name")
    trigger = trigger_get(current("trigger"))
    values["trigger"] = trigger.name
    values["channel"] = v.clean_choice(current("channel", Channel.EMAIL), "channel", Channel.values)
    if instance is None:
        values["status"] = v.clean_choice(current("status", CampaignStatus.DRAFT), "status", list(CREATE_STATUSES))
    elif "status" in data:
        values["status"] = v.clean_choice(data["status"], "status", CampaignStatus.values)
    subject = current("subject", "") or ""
    body = current("body", "") or ""
    if not isinstance(subject, str):
        raise v.invalid("subject", "must be text")
    if not isinstance(body, str):
        raise v.invalid("body", "must be text")
    templates_validate(subject=subject, body=body, channel=values["channel"])
    values["subject"], values["body"] = subject, body
    # Parameters belong to a trigger: changing the trigger without new params starts from its defaults.
    if "params" in data:
        raw_params = data["params"]
    elif instance is None or trigger.name != instance.trigger:
        raw_params = {}
    else:
        raw_params = instance.params
    values["params"] = trigger.clean_params(raw_params)
    values["audience"] = audience_clean(current("audience", {}))
    values["offer"] = offer_clean(current("offer", {}))
    values["holdout_percent"] = v.clean_count(
        current("holdout_percent", 10), "holdout_percent", minimum=0, maximum=HOLDOUT_PERCENT_MAX
    )
    values["attribution_days"] = v.clean_count(
        current("attribution_days", 7), "attribution_days", minimum=1, maximum=ATTRIBUTION_DAYS_MAX
    )
    return CampaignData(values=values)


@transaction.atomic
def campaign_create(*, data: Any, user: Any = None) -> Campaign:
    """Create a campaign from the SPEC §6 shape; ``user`` is the staff member, if one (API keys are not)."""
    cleaned = campaign_clean(data=data)
    staff = user if isinstance(user, get_user_model()) and user.is_authenticated else None
    return Campaign.objects.create(**cleaned.values, created_by=staff)


def _check_move(campaign: Campaign, to: str) -> None:
    if to != campaign.status and to not in STATUS_MOVES[CampaignStatus(campaign.status)]:
        raise Conflict(
            f"A {campaign.status} campaign cannot become {to}.",
            code="invalid_status",
            fields={"status": [f"cannot move from {campaign.status} to {to}"]},
        )


@transaction.atomic
def campaign_update(*, campaign_id: int, data: Any) -> Campaign:
    """Change the given fields. An archived campaign is read-only."""
    campaign = campaign_get_locked(campaign_id=campaign_id)
    if campaign.status == CampaignStatus.ARCHIVED:
        raise Conflict("An archived campaign cannot be changed.", code="archived")
    cleaned = campaign_clean(data=data, instance=campaign)
    if "status" in cleaned.values:
        _check_move(campaign, cleaned.values["status"])
    for name, value in cleaned.values.items():
        setattr(campaign, name, value)
    campaign.save()
    return campaign


@transaction.atomic
def campaign_status_set(*, campaign_id: int, status: str) -> Campaign:
    """Activate, pause or archive. Pausing keeps queued messages queued; they go out on reactivation."""
    status = v.clean_choice(status, "status", CampaignStatus.values)
    campaign = campaign_get_locked(campaign_id=campaign_id)
    _check_move(campaign, status)
    if campaign.status != status:
        campaign.status = status
        campaign.save(update_fields=["status", "updated_at"])
    return campaign


def campaign_get(*, campaign_id: Any) -> Campaign:
    try:
        return Campaign.objects.get(pk=int(campaign_id))
    except (Campaign.DoesNotExist, TypeError, ValueError, OverflowError):
        raise NotFound(f"No campaign with id {campaign_id!r}.", code="campaign_not_found") from None


def campaign_get_locked(*, campaign_id: Any) -> Campaign:
    campaign = campaign_get(campaign_id=campaign_id)
    return Campaign.objects.select_for_update().get(pk=campaign.pk)


def campaign_touch(*, campaign_id: int) -> None:
    Campaign.objects.filter(pk=campaign_id).update(last_evaluated_at=timezone.now())
