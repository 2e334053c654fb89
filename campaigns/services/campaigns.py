"""Writes for campaigns: create, update, status changes. Every rule about a campaign's fields lives here;
the API and the admin editor both call these."""

from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from campaigns.audience import audience_clean
from campaigns.content.topics import topic_clean
from campaigns.journey import reentry_clean, steps_clean
from campaigns.models import (
    ATTRIBUTION_DAYS_MAX,
    HOLDOUT_PERCENT_MAX,
    Campaign,
    CampaignStatus,
    Entry,
    EntryState,
    ExitOn,
    ExitReason,
    Message,
    MessageStatus,
    SuppressionReason,
)
from campaigns.offers import offer_clean
from campaigns.templating import storable_text, templates_validate
from campaigns.triggers import trigger_get
from customers.models import Channel
from retention_crm import validation as v
from retention_crm.errors import ApplicationError, Conflict, NotFound

CAMPAIGN_FIELDS = (
    "name",
    "trigger",
    "channel",
    "status",
    "subject",
    "body",
    "body_html",
    "topic",
    "params",
    "audience",
    "offer",
    "holdout_percent",
    "attribution_days",
    "steps",
    "exit_on",
)
# The API's fields: the model's, and ``reentry`` ("never" or {"after_days": N}; stored as a number).
INPUT_FIELDS = (*CAMPAIGN_FIELDS, "reentry")
REQUIRED_ON_CREATE = ("name", "trigger")
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
    v.refuse_unknown_fields(data, {*INPUT_FIELDS, "id"})
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
    values["steps"] = steps_clean(current("steps", []), channel=values["channel"])
    subject = current("subject", "") or ""
    body = current("body", "") or ""
    if not isinstance(subject, str):
        raise v.invalid("subject", "must be text")
    if not isinstance(body, str):
        raise v.invalid("body", "must be text")
    body_html = current("body_html", "") or ""
    if not isinstance(body_html, str):
        raise v.invalid("body_html", "must be text")
    # With steps, the messages are the steps'; the campaign's own subject and body are optional.
    if not values["steps"] or subject or body or body_html:
        templates_validate(subject=subject, body=body, channel=values["channel"], body_html=body_html)
    values["subject"], values["body"], values["body_html"] = subject, body, body_html
    values["topic"] = topic_clean(current("topic"), trigger=trigger.name)
    values["exit_on"] = v.clean_choice(current("exit_on", ExitOn.PURCHASE), "exit_on", ExitOn.values)
    if "reentry" in data or instance is None:
        values["reentry_after_days"] = reentry_clean(data.get("reentry"), has_steps=bool(values["steps"]))
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
    removed = _steps_change_check(campaign, cleaned.values["steps"])
    for name, value in cleaned.values.items():
        setattr(campaign, name, value)
    campaign.save()
    if removed:
        entries_end_at_steps(campaign=campaign, step_keys=removed, reason=ExitReason.STEP_REMOVED)
    if campaign.status == CampaignStatus.ARCHIVED:
        entries_end_all(campaign=campaign, reason=ExitReason.ARCHIVED)
    return campaign


def _structure(steps: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """What may change only while paused: which steps, of which kind, in which order, going where,
    and a message step's variants."""
    return [
        (
            step["key"],
            step["type"],
            step.get("yes"),
            step.get("no"),
            # An A/B test's design: its variants and their weights decide who gets which.
            tuple((variant["key"], variant["weight"]) for variant in step.get("variants") or ()),
        )
        for step in steps
    ]


def _step_keys(campaign: Campaign, steps: list[dict[str, Any]]) -> set[str]:
    return {step["key"] for step in steps} if steps else {"message"}


def _steps_change_check(campaign: Campaign, steps: list[dict[str, Any]]) -> set[str]:
    """Adding, removing or reordering steps needs the campaign paused (SPEC §4.1); texts may change
    while it is active. Returns the keys of steps removed."""
    if _structure(campaign.steps or []) == _structure(steps):
        return set()
    if campaign.status == CampaignStatus.ACTIVE:
        raise Conflict(
            "Adding, removing or reordering steps needs the campaign paused; pause it first.",
            code="campaign_active",
            fields={"steps": ["pause the campaign to change its steps"]},
        )
    return _step_keys(campaign, campaign.steps or []) - _step_keys(campaign, steps)


def entries_end_at_steps(*, campaign: Campaign, step_keys: set[str], reason: str) -> int:
    """Entries waiting at these steps end; their messages not sent yet are suppressed."""
    ended = Entry.objects.filter(campaign=campaign, state=EntryState.ACTIVE, step_key__in=step_keys).update(
        state=EntryState.EXITED, exit_reason=reason, ended_at=timezone.now(), next_at=None
    )
    Message.objects.filter(campaign=campaign, status=MessageStatus.QUEUED, step_key__in=step_keys).update(
        status=MessageStatus.SUPPRESSED, reason=SuppressionReason.EXITED
    )
    return ended


def entries_end_all(*, campaign: Campaign, reason: str) -> int:
    return Entry.objects.filter(campaign=campaign, state=EntryState.ACTIVE).update(
        state=EntryState.EXITED, exit_reason=reason, ended_at=timezone.now(), next_at=None
    )


@transaction.atomic
def campaign_status_set(*, campaign_id: int, status: str) -> Campaign:
    """Activate, pause or archive. Pausing keeps queued messages queued; they go out on reactivation."""
    status = v.clean_choice(status, "status", CampaignStatus.values)
    campaign = campaign_get_locked(campaign_id=campaign_id)
    _check_move(campaign, status)
    if campaign.status != status:
        campaign.status = status
        campaign.save(update_fields=["status", "updated_at"])
        if status == CampaignStatus.ARCHIVED:
            entries_end_all(campaign=campaign, reason=ExitReason.ARCHIVED)
    return campaign


def campaign_get(*, campaign_id: Any) -> Campaign:
    try:
        return Campaign.objects.get(pk=int(campaign_id))
    except (Campaign.DoesNotExist, TypeError, ValueError, OverflowError):
        raise NotFound(f"No campaign with id {campaign_id!r}.", code="campaign_not_found") from None


def campaign_get_locked(*, campaign_id: Any) -> Campaign:
    campaign = campaign_get(campaign_id=campaign_id)
    return Campaign.objects.select_for_update().get(pk=campaign.pk)
