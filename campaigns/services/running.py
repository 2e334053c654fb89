"""Running a campaign (SPEC §4, §4.1): enter the trigger's candidates, then advance every due entry.

``campaign_evaluate`` is the two in one transaction; ``campaign_run`` (API, admin, beat) also hands
the due messages to the senders once committed; ``journeys_advance_due`` (beat, every minute)
advances active journeys whose entries are due, without re-running their triggers.
"""

import datetime as dt
import logging

from django.db import connection, transaction
from django.utils import timezone

from campaigns.models import Campaign, CampaignStatus
from campaigns.services.advancing import journey_advance
from campaigns.services.campaigns import campaign_get
from campaigns.services.evaluation import EvaluationResult, entries_enter
from campaigns.services.policy import contact_policy_get
from campaigns.services.winners import winners_decide
from retention_crm.errors import Conflict

logger = logging.getLogger(__name__)


def campaign_evaluate(*, campaign_id: int, now: dt.datetime | None = None) -> EvaluationResult:
    """Enter the candidates the trigger selects at ``now`` and advance the journey; returns the
    messages this run created. Idempotent: a second run, or a concurrent one, creates nothing twice."""
    now = now or timezone.now()
    campaign = campaign_get(campaign_id=campaign_id)
    policy = contact_policy_get()
    result = EvaluationResult()
    with transaction.atomic():
        winners = winners_decide(campaign=campaign, now=now)
        entries_enter(campaign=campaign, policy=policy, now=now, winners=winners, result=result)
        journey_advance(campaign=campaign, policy=policy, now=now, winners=winners, result=result)
        Campaign.objects.filter(pk=campaign.pk).update(last_evaluated_at=now)
    logger.info("campaign.evaluated", extra={"campaign_id": campaign.pk, **result.counts(), "exited": result.exited})
    return result


def campaign_advance(*, campaign_id: int, now: dt.datetime | None = None) -> EvaluationResult:
    """Advance the journey's due entries only (no new entries)."""
    now = now or timezone.now()
    campaign = campaign_get(campaign_id=campaign_id)
    result = EvaluationResult()
    with transaction.atomic():
        winners = winners_decide(campaign=campaign, now=now)
        journey_advance(campaign=campaign, policy=contact_policy_get(), now=now, winners=winners, result=result)
    return result


def _require_active(campaign: Campaign) -> None:
    if campaign.status != CampaignStatus.ACTIVE:
        raise Conflict(
            f"Campaign {campaign.pk} is {campaign.status}; only an active campaign runs. Activate it first.",
            code="campaign_not_active",
        )


def campaign_run(*, campaign_id: int, now: dt.datetime | None = None) -> EvaluationResult:
    """Run now (API, admin, beat): evaluate and advance an active campaign, then hand its due
    messages to the senders once the messages are committed."""
    from campaigns.services.sending import sends_enqueue

    campaign = campaign_get(campaign_id=campaign_id)
    _require_active(campaign)
    with transaction.atomic():
        result = campaign_evaluate(campaign_id=campaign.pk, now=now)
        if result.due_now:
            sends_enqueue(campaign_id=campaign.pk, due=result.due_now)
    return result


def campaigns_with_due_entries(*, now: dt.datetime | None = None) -> list[int]:
    """Active campaigns with at least one entry due (one index probe per campaign)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT k.id FROM campaigns_campaign k WHERE k.status = 'active' AND EXISTS ("
            " SELECT 1 FROM campaigns_entry e WHERE e.campaign_id = k.id AND e.state = 'active'"
            " AND e.next_at <= %s)"
            " ORDER BY k.id",
            [now or timezone.now()],
        )
        return [campaign_id for (campaign_id,) in cursor.fetchall()]


def journeys_advance_due(*, now: dt.datetime | None = None) -> dict[int, int]:
    """Beat, every minute: advance every active journey with due entries and start its senders.
    Returns campaign id -> messages created."""
    from campaigns.services.sending import sends_enqueue

    now = now or timezone.now()
    created = {}
    for campaign_id in campaigns_with_due_entries(now=now):
        with transaction.atomic():
            result = campaign_advance(campaign_id=campaign_id, now=now)
            if result.due_now:
                sends_enqueue(campaign_id=campaign_id, due=result.due_now)
        created[campaign_id] = result.queued + result.held_out + result.suppressed + result.deferred
    return created
