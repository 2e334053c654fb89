"""Reads of the campaigns app: lists, a campaign's report (status counts and impact), its groups.

Impact (SPEC §5, campaign impact) compares the treated group (customers sent a message) with the
control group (held out), each message opening a window of the campaign's ``attribution_days``
from its send (for the control group: from when it would have been sent). Per group: customers,
those with a completed purchase in one of their windows (conversion), the revenue of those
purchases, revenue per customer; then the absolute uplift of the conversion rate with its 95 %
confidence interval and the p-value of the two-proportion z-test (``metrics.impact``), and the
incremental revenue estimate (revenue per treated customer over the control's, times the treated).
"""

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db import connection
from django.db.models import Count, QuerySet
from django.utils import timezone

from campaigns.journey import journey_of
from campaigns.models import (
    SENT_STATUSES,
    Attribution,
    Campaign,
    Entry,
    Message,
    MessageStatus,
    StepCount,
    VariantWinner,
)
from campaigns.services.winners import variant_counts, variant_figures
from metrics.impact import two_proportion_z_test
from retention_crm.errors import ApplicationError

GROUPS = ("treated", "control")
CENT = Decimal("0.01")


def campaign_list(*, status: str | None = None, trigger: str | None = None) -> QuerySet[Campaign]:
    campaigns = Campaign.objects.order_by("-id")
    if status:
        campaigns = campaigns.filter(status=status)
    if trigger:
        campaigns = campaigns.filter(trigger=trigger)
    return campaigns


def campaign_status_counts(*, campaign_id: int) -> dict[str, int]:
    """Messages per status, every status of SPEC §4 present (0 when none)."""
    found = dict(
        Message.objects.filter(campaign_id=campaign_id)
        .order_by()
        .values_list("status")
        .annotate(n=Count("pk"))
        .values_list("status", "n")
    )
    return {status: found.get(status, 0) for status in MessageStatus.values}


def campaign_reason_counts(*, campaign_id: int) -> dict[str, int]:
    """Why messages were suppressed, and how many queued ones wait for the frequency cap."""
    rows = (
        Message.objects.filter(campaign_id=campaign_id, status__in=[MessageStatus.SUPPRESSED, MessageStatus.QUEUED])
        .exclude(reason="")
        .order_by()
        .values_list("status", "reason")
        .annotate(n=Count("pk"))
    )
    return {f"{status}:{reason}": n for status, reason, n in rows}


def campaign_group_customer_ids(*, campaign_id: int, group: str) -> QuerySet:
    """The customers of a campaign's treated (sent) or control (held_out) group, as a subquery of
    ids — the seam ``metrics.impact.group_customer_ids`` plugs into for CRR/churn per group."""
    if group not in GROUPS:
        raise ApplicationError(
            f"group must be one of {', '.join(GROUPS)}.", code="invalid", fields={"group": ["unknown group"]}
        )
    statuses = [MessageStatus.HELD_OUT] if group == "control" else list(SENT_STATUSES)
    return Message.objects.filter(campaign_id=campaign_id, status__in=statuses).values("customer_id").distinct()


@dataclass(frozen=True)
class GroupFigures:
    customers: int
    converted: int
    revenue: Decimal
    attributed_purchases: int
    attributed_revenue: Decimal

    @property
    def conversion_rate(self) -> float | None:
        return self.converted / self.customers if self.customers else None

    @property
    def revenue_per_customer(self) -> Decimal | None:
        if not self.customers:
            return None
        return (self.revenue / self.customers).quantize(CENT, rounding=ROUND_HALF_UP)

    def as_dict(self) -> dict[str, Any]:
        return {
            "customers": self.customers,
            "converted": self.converted,
            "conversion_rate": self.conversion_rate,
            "revenue": str(self.revenue.quantize(CENT)),
            "revenue_per_customer": None if self.revenue_per_customer is None else str(self.revenue_per_customer),
            "attributed_purchases": self.attributed_purchases,
            "attributed_revenue": str(self.attributed_revenue.quantize(CENT)),
        }


# One scan of the campaign's touched messages and, through the (customer, placed_at) index, the
# purchases in their windows. A purchase inside two windows of one customer counts once.
_GROUP_FIGURES = """
    WITH touches AS (
        SELECT m.customer_id, m.touched_at,
               CASE WHEN m.status = 'held_out' THEN 'control' ELSE 'treated' END AS grp
        FROM campaigns_message m
        WHERE m.campaign_id = %(campaign)s AND m.touched_at IS NOT NULL AND m.status = ANY(%(statuses)s)
    ),
    members AS (SELECT grp, count(DISTINCT customer_id) AS customers FROM touches GROUP BY grp),
    converted AS (
        SELECT DISTINCT t.grp, p.customer_id, p.id, p.total
        FROM touches t
        JOIN customers_purchase p ON p.customer_id = t.customer_id AND p.status = 'completed'
             AND p.placed_at >= t.touched_at AND p.placed_at < t.touched_at + %(window)s
    ),
    outcomes AS (
        SELECT grp, count(DISTINCT customer_id) AS converted, sum(total) AS revenue FROM converted GROUP BY grp
    ),
    attributed AS (
        SELECT CASE WHEN m.status = 'held_out' THEN 'control' ELSE 'treated' END AS grp,
               count(*) AS purchases, sum(p.total) AS revenue
        FROM campaigns_attribution a
        JOIN campaigns_message m ON m.id = a.message_id
        JOIN customers_purchase p ON p.id = a.purchase_id AND p.status = 'completed'
        WHERE a.campaign_id = %(campaign)s
        GROUP BY 1
    )
    SELECT members.grp, members.customers, coalesce(outcomes.converted, 0), coalesce(outcomes.revenue, 0),
           coalesce(attributed.purchases, 0), coalesce(attributed.revenue, 0)
    FROM members
    LEFT JOIN outcomes ON outcomes.grp = members.grp
    LEFT JOIN attributed ON attributed.grp = members.grp
"""


# "Still active" N days after the message: metrics' active(t) (a completed purchase in
# [t - W, t)) at t = touched_at + N days, among members for whom t has already come.
STILL_ACTIVE_AFTER_DAYS = (30, 90)
_STILL_ACTIVE = """
    WITH touches AS (
        SELECT DISTINCT ON (m.customer_id) m.customer_id, m.touched_at,
               CASE WHEN m.status = 'held_out' THEN 'control' ELSE 'treated' END AS grp
        FROM campaigns_message m
        WHERE m.campaign_id = %(campaign)s AND m.touched_at IS NOT NULL AND m.status = ANY(%(statuses)s)
        ORDER BY m.customer_id, m.touched_at
    ),
    checkpoints AS (
        SELECT t.grp, t.customer_id, t.touched_at + make_interval(days => d.days) AS at, d.days
        FROM touches t CROSS JOIN unnest(%(days)s::int[]) AS d(days)
    )
    SELECT c.grp, c.days, count(*) AS mature,
           count(*) FILTER (WHERE EXISTS (
               SELECT 1 FROM customers_purchase p
               WHERE p.customer_id = c.customer_id AND p.status = 'completed'
                 AND p.placed_at >= c.at - %(window)s AND p.placed_at < c.at)) AS active
    FROM checkpoints c
    WHERE c.at <= %(now)s
    GROUP BY c.grp, c.days
"""


def campaign_still_active(*, campaign: Campaign, window_days: int = 90) -> dict[str, dict[str, Any]]:
    """Per group and checkpoint (30, 90 days after the message): how many members have reached it
    and the share of those still active then."""
    statuses = [*map(str, SENT_STATUSES), str(MessageStatus.HELD_OUT)]
    with connection.cursor() as cursor:
        cursor.execute(
            _STILL_ACTIVE,
            {
                "campaign": campaign.pk,
                "statuses": statuses,
                "days": list(STILL_ACTIVE_AFTER_DAYS),
                "window": dt.timedelta(days=window_days),
                "now": timezone.now(),
            },
        )
        found = {(grp, days): (mature, active) for grp, days, mature, active in cursor.fetchall()}

    def figure(grp: str, days: int) -> dict[str, Any]:
        mature, active = found.get((grp, days), (0, 0))
        return {"customers": mature, "share": active / mature if mature else None}

    return {grp: {f"{days}d": figure(grp, days) for days in STILL_ACTIVE_AFTER_DAYS} for grp in GROUPS}


def campaign_impact(*, campaign: Campaign) -> dict[str, Any]:
    statuses = [*map(str, SENT_STATUSES), str(MessageStatus.HELD_OUT)]
    with connection.cursor() as cursor:
        cursor.execute(
            _GROUP_FIGURES,
            {"campaign": campaign.pk, "statuses": statuses, "window": dt.timedelta(days=campaign.attribution_days)},
        )
        rows = {row[0]: row[1:] for row in cursor.fetchall()}
    zero = (0, 0, Decimal(0), 0, Decimal(0))
    groups = {
        name: GroupFigures(
            customers=figures[0],
            converted=figures[1],
            revenue=Decimal(figures[2]),
            attributed_purchases=figures[3],
            attributed_revenue=Decimal(figures[4]),
        )
        for name, figures in ((name, rows.get(name, zero)) for name in GROUPS)
    }
    treated, control = groups["treated"], groups["control"]
    uplift = two_proportion_z_test(
        treated_hits=treated.converted,
        treated=treated.customers,
        control_hits=control.converted,
        control=control.customers,
    )
    incremental = None
    if treated.revenue_per_customer is not None and control.revenue_per_customer is not None:
        incremental = str(
            ((treated.revenue / treated.customers - control.revenue / control.customers) * treated.customers).quantize(
                CENT, rounding=ROUND_HALF_UP
            )
        )
    still_active = campaign_still_active(campaign=campaign)
    return {
        "attribution_days": campaign.attribution_days,
        "treated": {**treated.as_dict(), "still_active": still_active["treated"]},
        "control": {**control.as_dict(), "still_active": still_active["control"]},
        "uplift": None
        if uplift is None
        else {
            "absolute": uplift.difference,
            "ci_low": uplift.ci_low,
            "ci_high": uplift.ci_high,
            "p_value": uplift.p_value,
        },
        "incremental_revenue": incremental,
    }


@dataclass(frozen=True)
class ListFigures:
    """A campaign's headline figures for the campaign list: sends, and conversion treated vs control."""

    sent: int
    treated: int
    treated_converted: int
    control: int
    control_converted: int

    @property
    def treated_rate(self) -> float | None:
        return self.treated_converted / self.treated if self.treated else None

    @property
    def control_rate(self) -> float | None:
        return self.control_converted / self.control if self.control else None

    @property
    def uplift(self) -> Any:
        """``metrics.impact.Uplift`` (difference, CI, p-value), None while a group is empty."""
        return two_proportion_z_test(
            treated_hits=self.treated_converted,
            treated=self.treated,
            control_hits=self.control_converted,
            control=self.control,
        )


# The conversion figures of _GROUP_FIGURES (same touches, same windows, a customer converted when a
# completed purchase falls in one of their windows), for many campaigns in one statement, each with
# its own attribution_days; plus the messages sent.
_LIST_FIGURES = """
    WITH touches AS (
        SELECT m.campaign_id, m.customer_id, m.touched_at, make_interval(days => k.attribution_days) AS window_,
               CASE WHEN m.status = 'held_out' THEN 'control' ELSE 'treated' END AS grp
        FROM campaigns_message m JOIN campaigns_campaign k ON k.id = m.campaign_id
        WHERE m.campaign_id = ANY(%(campaigns)s) AND m.touched_at IS NOT NULL AND m.status = ANY(%(statuses)s)
    ),
    groups AS (
        SELECT t.campaign_id, t.grp, count(DISTINCT t.customer_id) AS customers,
               count(DISTINCT t.customer_id) FILTER (WHERE EXISTS (
                   SELECT 1 FROM customers_purchase p
                   WHERE p.customer_id = t.customer_id AND p.status = 'completed'
                     AND p.placed_at >= t.touched_at AND p.placed_at < t.touched_at + t.window_)) AS converted
        FROM touches t GROUP BY 1, 2
    ),
    sent AS (
        SELECT m.campaign_id, count(*) AS sent FROM campaigns_message m
        WHERE m.campaign_id = ANY(%(campaigns)s) AND m.status = ANY(%(sent)s) GROUP BY 1
    )
    SELECT k.id, coalesce(sent.sent, 0),
           coalesce(treated.customers, 0), coalesce(treated.converted, 0),
           coalesce(control.customers, 0), coalesce(control.converted, 0)
    FROM unnest(%(campaigns)s::bigint[]) AS k(id)
    LEFT JOIN sent ON sent.campaign_id = k.id
    LEFT JOIN groups treated ON treated.campaign_id = k.id AND treated.grp = 'treated'
    LEFT JOIN groups control ON control.campaign_id = k.id AND control.grp = 'control'
"""


def campaign_list_figures(*, campaign_ids: list[int]) -> dict[int, ListFigures]:
    """Sent, conversion and uplift for a page of campaigns, in one statement (no query per campaign).
    Conversion is counted exactly as in ``campaign_impact``."""
    if not campaign_ids:
        return {}
    statuses = [*map(str, SENT_STATUSES), str(MessageStatus.HELD_OUT)]
    with connection.cursor() as cursor:
        cursor.execute(
            _LIST_FIGURES,
            {"campaigns": list(campaign_ids), "statuses": statuses, "sent": [str(s) for s in SENT_STATUSES]},
        )
        return {row[0]: ListFigures(*row[1:]) for row in cursor.fetchall()}


# Per step: messages sent / suppressed and sent ones followed by a purchase within the window; entries
# waiting at the step now and those that left it by the goal. Two scans, of the campaign's messages
# and of its entries (both through indexes led by campaign_id).
_STEP_MESSAGES = """
    SELECT m.step_key,
           count(*) FILTER (WHERE m.status = ANY(%(sent)s)) AS sent,
           count(*) FILTER (WHERE m.status = 'suppressed') AS suppressed,
           count(*) FILTER (WHERE m.status = ANY(%(sent)s) AND m.touched_at IS NOT NULL AND EXISTS (
               SELECT 1 FROM customers_purchase p
               WHERE p.customer_id = m.customer_id AND p.status = 'completed'
                 AND p.placed_at >= m.touched_at AND p.placed_at < m.touched_at + %(window)s)) AS converted
    FROM campaigns_message m WHERE m.campaign_id = %(campaign)s
    GROUP BY m.step_key
"""
_STEP_ENTRIES = """
    SELECT e.step_key,
           count(*) FILTER (WHERE e.state = 'active') AS waiting,
           count(*) FILTER (WHERE e.state = 'exited' AND e.exit_reason = 'goal') AS exited
    FROM campaigns_entry e WHERE e.campaign_id = %(campaign)s AND (e.state = 'active' OR e.exit_reason = 'goal')
    GROUP BY e.step_key
"""


def campaign_steps_report(*, campaign: Campaign) -> list[dict[str, Any]]:
    """SPEC §4.1 report per step: entered, waiting, sent, suppressed, exited (by the goal),
    converted; per variant: sent, converted, conversion rate, uplift against the first variant."""

    journey = journey_of(campaign)
    params = {
        "campaign": campaign.pk,
        "sent": [str(status) for status in SENT_STATUSES],
        "window": dt.timedelta(days=campaign.attribution_days),
    }
    with connection.cursor() as cursor:
        cursor.execute(_STEP_MESSAGES, params)
        messages = {row[0]: row[1:] for row in cursor.fetchall()}
        cursor.execute(_STEP_ENTRIES, params)
        entries = {row[0]: row[1:] for row in cursor.fetchall()}
    entered = dict(StepCount.objects.filter(campaign=campaign).values_list("step_key", "entered"))
    with_variants = [step.key for step in journey.steps if step.variants]
    counts = variant_counts(campaign=campaign, step_keys=with_variants)
    report = []
    for step in journey.steps:
        sent, suppressed, converted = messages.get(step.key, (0, 0, 0))
        waiting, exited = entries.get(step.key, (0, 0))
        report.append(
            {
                "key": step.key,
                "type": step.type,
                "entered": entered.get(step.key, 0),
                "waiting": waiting,
                "sent": sent,
                "suppressed": suppressed,
                "exited": exited,
                "converted": converted,
                "variants": variant_figures(step, counts) if step.variants else [],
            }
        )
    return report


def campaign_winners(*, campaign: Campaign) -> dict[str, Any] | None:
    """The winners ``auto_winner`` steps picked: step key -> variant, when, and the figures."""

    winners = {
        w.step_key: {"variant": w.variant_key, "decided_at": w.decided_at.isoformat(), "figures": w.figures}
        for w in VariantWinner.objects.filter(campaign=campaign).order_by("step_key")
    }
    return winners or None


def campaign_report(*, campaign: Campaign) -> dict[str, Any]:
    report = {
        "counts": campaign_status_counts(campaign_id=campaign.pk),
        "reasons": campaign_reason_counts(campaign_id=campaign.pk),
        "impact": campaign_impact(campaign=campaign),
        "steps": campaign_steps_report(campaign=campaign),
    }
    winners = campaign_winners(campaign=campaign)
    if winners:
        report["winner"] = winners
    return report


def campaign_entries(*, campaign: Campaign, customer: str | None = None, state: str | None = None) -> QuerySet:
    """A journey's entries, newest first, optionally of one customer (external id) or state."""

    entries = Entry.objects.filter(campaign=campaign).select_related("customer").order_by("-id")
    if customer:
        entries = entries.filter(customer__external_id=customer)
    if state:
        entries = entries.filter(state=state)
    return entries


def customer_messages(*, customer_id: int) -> QuerySet[Message]:
    """A customer's messages, newest first, with their campaigns."""
    return Message.objects.filter(customer_id=customer_id).select_related("campaign").order_by("-created_at", "-id")


def message_attributions(*, message: Message) -> QuerySet[Attribution]:
    return Attribution.objects.filter(message=message).select_related("purchase")
