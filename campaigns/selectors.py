"""Reads of the campaigns app: lists, a campaign's report (status counts and impact), its groups.

Impact (SPEC §5, campaign impact) compares the treated group (customers sent a message) with the
control group (held out), each message opening a window of the campaign's ``attribution_days``
from its send (for the control group: from when it would have been sent). Per group: customers,
those with a completed purchase in one of their windows (conversion), the revenue of those
purchases, revenue per customer; then the absolute uplift of the conversion rate with its 95 %
confidence interval and the p-value of the two-proportion z-test (``metrics.stats``), and the
incremental revenue estimate (revenue per treated customer over the control's, times the treated).
"""

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db import connection
from django.db.models import Count, QuerySet
from django.utils import timezone

from campaigns.groups import GROUPS
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
from metrics.stats import two_proportion_z_test

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
                # psycopg sends a timedelta as an interval; the stubs' parameter types omit it.
                "window": dt.timedelta(days=window_days),  # type: ignore[dict-item]
                "now": timezone.now(),
            },
        )
        found = {(grp, days): (mature, active) for grp, days, mature, active in cursor.fetchall()}

    def figure(grp: str, days: int) -> dict[str, Any]:
        mature, active = found.get((grp, days), (0, 0))
        return {"customers": mature, "share": active / mature if mature else None}

    return {grp: {f"{days}d": figure(grp, days) for days in STILL_ACTIVE_AFTER_DAYS} for grp in GROUPS}


def _group_figures_live(*, campaign: Campaign) -> dict[str, GroupFigures]:
    statuses = [*map(str, SENT_STATUSES), str(MessageStatus.HELD_OUT)]
    with connection.cursor() as cursor:
        cursor.execute(
            _GROUP_FIGURES,
            {
                "campaign": campaign.pk,
                "statuses": statuses,
                # psycopg sends a timedelta as an interval; the stubs' parameter types omit it.
                "window": dt.timedelta(days=campaign.attribution_days),  # type: ignore[dict-item]
            },
        )
        rows = {row[0]: row[1:] for row in cursor.fetchall()}
    zero = (0, 0, Decimal(0), 0, Decimal(0))
    return {
        name: GroupFigures(
            customers=figures[0],
            converted=figures[1],
            revenue=Decimal(figures[2]),
            attributed_purchases=figures[3],
            attributed_revenue=Decimal(figures[4]),
        )
        for name, figures in ((name, rows.get(name, zero)) for name in GROUPS)
    }


def impact_from(
    *, campaign: Campaign, groups: dict[str, GroupFigures], still_active: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """The impact report from its figures: one formatting for the live and the kept figures."""
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


def campaign_impact_live(*, campaign: Campaign) -> dict[str, Any]:
    """The reference: every figure computed from the messages and the purchases themselves."""
    return impact_from(
        campaign=campaign,
        groups=_group_figures_live(campaign=campaign),
        still_active=campaign_still_active(campaign=campaign),
    )


def campaign_impact(*, campaign: Campaign) -> dict[str, Any]:
    """SPEC §5 campaign impact from the kept per-message outcomes (one statement); equal to
    ``campaign_impact_live``."""
    outcomes = report_outcomes(campaign=campaign)
    return impact_from(campaign=campaign, groups=outcomes.groups, still_active=outcomes.still_active)


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
        """``metrics.stats.Uplift`` (difference, CI, p-value), None while a group is empty."""
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


def campaign_list_figures_live(*, campaign_ids: list[int]) -> dict[int, ListFigures]:
    """Sent, conversion and uplift for a page of campaigns, in one statement (no query per campaign).
    Conversion is counted exactly as in ``campaign_impact``: the reference of ``campaign_list_figures``."""
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


def campaign_steps_report_live(*, campaign: Campaign) -> list[dict[str, Any]]:
    """SPEC §4.1 report per step: entered, waiting, sent, suppressed, exited (by the goal),
    converted; per variant: sent, converted, conversion rate, uplift against the first variant."""

    journey = journey_of(campaign)
    params: dict[str, Any] = {
        "campaign": campaign.pk,
        "sent": [str(status) for status in SENT_STATUSES],
        "window": dt.timedelta(days=campaign.attribution_days),
    }
    with connection.cursor() as cursor:
        cursor.execute(_STEP_MESSAGES, params)
        messages = {row[0]: row[1:] for row in cursor.fetchall()}
    with_variants = [step.key for step in journey.steps if step.variants]
    counts = variant_counts(campaign=campaign, step_keys=with_variants)
    return steps_from(campaign=campaign, messages=messages, variants=counts)


def steps_from(
    *,
    campaign: Campaign,
    messages: dict[str, tuple[int, int, int]],
    variants: dict[tuple[str, str], tuple[int, int]],
) -> list[dict[str, Any]]:
    """The per-step report from the messages' figures per step (sent, suppressed, converted) and
    per variant (sent, converted), with the entries' figures read here (two small statements)."""
    journey = journey_of(campaign)
    with connection.cursor() as cursor:
        cursor.execute(_STEP_ENTRIES, {"campaign": campaign.pk})
        entries = {row[0]: row[1:] for row in cursor.fetchall()}
    entered = dict(StepCount.objects.filter(campaign=campaign).values_list("step_key", "entered"))
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
                "variants": variant_figures(step, variants) if step.variants else [],
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


def campaign_report_live(*, campaign: Campaign) -> dict[str, Any]:
    """The reference report: every figure from the messages and purchases themselves."""
    report = {
        "counts": campaign_status_counts(campaign_id=campaign.pk),
        "reasons": campaign_reason_counts(campaign_id=campaign.pk),
        "impact": campaign_impact_live(campaign=campaign),
        "steps": campaign_steps_report_live(campaign=campaign),
    }
    winners = campaign_winners(campaign=campaign)
    if winners:
        report["winner"] = winners
    return report


def campaign_entries(*, campaign: Campaign, customer: str | None = None, state: str | None = None) -> QuerySet[Entry]:
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


# --- The report from the kept figures (campaigns/outcome_sql.py) ---------------------------------
#
# The same figures as the live functions above, read from the totals the database keeps per
# campaign instead of each member's purchases: a few rows per campaign, whatever its size. The
# live functions stay the reference (tests/campaigns/test_report_at_scale.py).

_MESSAGE_COUNTS = """
    SELECT c.status, c.reason, c.step_key, sum(c.messages)
    FROM campaigns_messagecount c WHERE c.campaign_id = %(campaign)s
    GROUP BY 1, 2, 3 HAVING sum(c.messages) <> 0
"""

# Two grouping sets over the campaign's totals: per group (treated / control) and per (step,
# variant). A checkpoint counts once it has come (``now``), as in _STILL_ACTIVE: the minutes that
# are wholly past it from the totals, and the one minute it falls in from the outcome rows.
_OUTCOMES = """
    WITH edge AS (
        SELECT o.treated,
               count(*) FILTER (WHERE o.touched_at <= %(cut30)s) AS first_30,
               count(*) FILTER (WHERE o.touched_at <= %(cut30)s AND o.active_30) AS active_30,
               0 AS first_90, 0 AS active_90
        FROM campaigns_messageoutcome o
        WHERE o.campaign_first AND o.campaign_id = %(campaign)s
          AND o.touched_at >= date_bin('1 minute', %(cut30)s, {origin})
          AND o.touched_at < date_bin('1 minute', %(cut30)s, {origin}) + interval '1 minute'
        GROUP BY 1
        UNION ALL
        SELECT o.treated, 0, 0,
               count(*) FILTER (WHERE o.touched_at <= %(cut90)s),
               count(*) FILTER (WHERE o.touched_at <= %(cut90)s AND o.active_90)
        FROM campaigns_messageoutcome o
        WHERE o.campaign_first AND o.campaign_id = %(campaign)s
          AND o.touched_at >= date_bin('1 minute', %(cut90)s, {origin})
          AND o.touched_at < date_bin('1 minute', %(cut90)s, {origin}) + interval '1 minute'
        GROUP BY 1
    ),
    rows_ AS (
        SELECT t.treated, t.step_key, t.variant_key, t.customers, t.converted, t.revenue, t.attributed_purchases,
               t.attributed_revenue,
               CASE WHEN t.touched_minute + interval '1 minute' <= %(cut30)s THEN t.first_members END AS first_30,
               CASE WHEN t.touched_minute + interval '1 minute' <= %(cut30)s THEN t.active_30 END AS active_30,
               CASE WHEN t.touched_minute + interval '1 minute' <= %(cut90)s THEN t.first_members END AS first_90,
               CASE WHEN t.touched_minute + interval '1 minute' <= %(cut90)s THEN t.active_90 END AS active_90,
               t.sent, t.sent_converted
        FROM campaigns_reporttotal t WHERE t.campaign_id = %(campaign)s
        UNION ALL
        SELECT e.treated, NULL, NULL, 0, 0, 0, 0, 0, e.first_30, e.active_30, e.first_90, e.active_90, 0, 0
        FROM edge e
    )
    SELECT grouping(r.step_key, r.variant_key) = 3 AS per_group, r.treated, r.step_key, r.variant_key,
           sum(r.customers)::bigint, sum(r.converted)::bigint, coalesce(sum(r.revenue), 0),
           sum(r.attributed_purchases)::bigint, coalesce(sum(r.attributed_revenue), 0),
           coalesce(sum(r.first_30), 0)::bigint, coalesce(sum(r.active_30), 0)::bigint,
           coalesce(sum(r.first_90), 0)::bigint, coalesce(sum(r.active_90), 0)::bigint,
           sum(r.sent)::bigint, sum(r.sent_converted)::bigint
    FROM rows_ r
    GROUP BY GROUPING SETS ((r.treated), (r.step_key, r.variant_key))
""".format(origin="timestamptz '2000-01-01 00:00:00+00'")


@dataclass(frozen=True)
class ReportOutcomes:
    groups: dict[str, GroupFigures]
    still_active: dict[str, dict[str, Any]]
    variants: dict[tuple[str, str], tuple[int, int]]  # (step, variant) -> (sent, converted), touched sends

    def step_converted(self, step_key: str) -> int:
        return sum(converted for (step, _), (_, converted) in self.variants.items() if step == step_key)


def _share(mature: int, active: int) -> dict[str, Any]:
    return {"customers": mature, "share": active / mature if mature else None}


def report_outcomes(*, campaign: Campaign) -> ReportOutcomes:
    """The impact and per-step conversion figures of a campaign, from its outcome rows (one statement)."""
    with connection.cursor() as cursor:
        now = timezone.now()
        cursor.execute(
            _OUTCOMES,
            {
                "campaign": campaign.pk,
                "cut30": now - dt.timedelta(days=STILL_ACTIVE_AFTER_DAYS[0]),
                "cut90": now - dt.timedelta(days=STILL_ACTIVE_AFTER_DAYS[1]),
            },
        )
        rows = cursor.fetchall()
    groups = {name: GroupFigures(0, 0, Decimal(0), 0, Decimal(0)) for name in GROUPS}
    still = {name: {f"{days}d": _share(0, 0) for days in STILL_ACTIVE_AFTER_DAYS} for name in GROUPS}
    variants: dict[tuple[str, str], tuple[int, int]] = {}
    for per_group, treated, step, variant, *figures in rows:
        customers, converted, revenue, attributed, attributed_revenue, m30, a30, m90, a90, sent, hits = figures
        if not per_group:
            if step is None:  # the checkpoints' edge rows: no step
                continue
            variants[(step, variant)] = (sent, hits)
            continue
        name = "treated" if treated else "control"
        # As the live statement: a group without members reports nothing, attributions included.
        if customers:
            groups[name] = GroupFigures(customers, converted, Decimal(revenue), attributed, Decimal(attributed_revenue))
        still[name] = {"30d": _share(m30, a30), "90d": _share(m90, a90)}
    return ReportOutcomes(groups=groups, still_active=still, variants=variants)


def _message_counts(*, campaign_id: int) -> dict[tuple[str, str, str], int]:
    with connection.cursor() as cursor:
        cursor.execute(_MESSAGE_COUNTS, {"campaign": campaign_id})
        return {(status, reason, step): int(n) for status, reason, step, n in cursor.fetchall()}


def _status_counts_from(counts: dict[tuple[str, str, str], int]) -> dict[str, int]:
    totals = dict.fromkeys(MessageStatus.values, 0)
    for (status, _, _), n in counts.items():
        totals[status] += n
    return totals


def _reason_counts_from(counts: dict[tuple[str, str, str], int]) -> dict[str, int]:
    """As ``campaign_reason_counts``: suppressed and queued messages with a reason."""
    reasons: dict[str, int] = {}
    for (status, reason, _), n in counts.items():
        if reason and status in (MessageStatus.SUPPRESSED, MessageStatus.QUEUED):
            reasons[f"{status}:{reason}"] = reasons.get(f"{status}:{reason}", 0) + n
    return reasons


def _step_messages_from(
    counts: dict[tuple[str, str, str], int], outcomes: ReportOutcomes
) -> dict[str, tuple[int, int, int]]:
    """Per step: sent (every sent status), suppressed, and touched sends followed by a purchase."""
    sent_statuses = {str(status) for status in SENT_STATUSES}
    steps: dict[str, list[int]] = {}
    for (status, _, step), n in counts.items():
        figures = steps.setdefault(step, [0, 0, 0])
        figures[0] += n if status in sent_statuses else 0
        figures[1] += n if status == MessageStatus.SUPPRESSED else 0
    for step, figures in steps.items():
        figures[2] = outcomes.step_converted(step)
    return {step: (sent, suppressed, converted) for step, (sent, suppressed, converted) in steps.items()}


def campaign_steps_report(*, campaign: Campaign) -> list[dict[str, Any]]:
    """``campaign_steps_report_live`` from the counts index and the kept outcomes."""
    counts = _message_counts(campaign_id=campaign.pk)
    outcomes = report_outcomes(campaign=campaign)
    return steps_from(campaign=campaign, messages=_step_messages_from(counts, outcomes), variants=outcomes.variants)


def campaign_report(*, campaign: Campaign) -> dict[str, Any]:
    """``campaign_report_live`` in five statements whatever the campaign's size: the counts, the
    outcomes, the journey's entries and entered counts, the winners."""
    counts = _message_counts(campaign_id=campaign.pk)
    outcomes = report_outcomes(campaign=campaign)
    report = {
        "counts": _status_counts_from(counts),
        "reasons": _reason_counts_from(counts),
        "impact": impact_from(campaign=campaign, groups=outcomes.groups, still_active=outcomes.still_active),
        "steps": steps_from(
            campaign=campaign, messages=_step_messages_from(counts, outcomes), variants=outcomes.variants
        ),
    }
    winners = campaign_winners(campaign=campaign)
    if winners:
        report["winner"] = winners
    return report


# Per campaign of a list page: messages sent, and the groups' members and converted customers.
_LIST_OUTCOMES = """
    WITH sent AS (
        SELECT c.campaign_id, sum(c.messages) AS sent FROM campaigns_messagecount c
        WHERE c.campaign_id = ANY(%(campaigns)s) AND c.status = ANY(%(sent)s) GROUP BY 1
    ),
    groups AS (
        SELECT t.campaign_id, t.treated, sum(t.customers) AS customers, sum(t.converted) AS converted
        FROM campaigns_reporttotal t WHERE t.campaign_id = ANY(%(campaigns)s)
        GROUP BY 1, 2
    )
    SELECT k.id, coalesce(sent.sent, 0)::bigint,
           coalesce(treated.customers, 0)::bigint, coalesce(treated.converted, 0)::bigint,
           coalesce(control.customers, 0)::bigint, coalesce(control.converted, 0)::bigint
    FROM unnest(%(campaigns)s::bigint[]) AS k(id)
    LEFT JOIN sent ON sent.campaign_id = k.id
    LEFT JOIN groups treated ON treated.campaign_id = k.id AND treated.treated
    LEFT JOIN groups control ON control.campaign_id = k.id AND NOT control.treated
"""


def campaign_list_figures(*, campaign_ids: list[int]) -> dict[int, ListFigures]:
    """``campaign_list_figures_live`` from the kept outcomes, in one statement for the page."""
    if not campaign_ids:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(_LIST_OUTCOMES, {"campaigns": list(campaign_ids), "sent": [str(s) for s in SENT_STATUSES]})
        return {row[0]: ListFigures(*row[1:]) for row in cursor.fetchall()}
