"""How campaign figures and message states read to staff: one formatting path for the campaign
editor, the campaign and message lists, and the metrics dashboard.

- The impact report (treated vs the held-out control, SPEC §5): rates in percent, their difference
  in percentage points (pp), and a verdict in plain words on whether the difference is more than
  chance (the two-proportion z-test at 95 %).
- Message statuses and reasons by their labels ("Held out (control group)", "Frequency cap"),
  never the stored codes.
- A journey's report per step and variant (SPEC §4.1), the picked A/B winner marked.
- Why a queued message waits. Nothing extra is stored for that: the contact policy (quiet hours,
  frequency cap) decides in the evaluation and sending statements (campaigns/services/evaluation.py
  and sending.py) and leaves its decision in the row — ``reason = 'frequency_cap'`` for the cap, a
  ``send_at`` moved to the end of the quiet hours (exactly ``quiet_hours_end`` in the customer's
  time zone) for the night, ``attempts`` and ``error`` for a retry. ``wait_reason`` reads it back.
"""

import datetime as dt
import math
import zoneinfo
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from campaigns.models import CampaignStatus, MessageStatus, SuppressionReason
from retention_crm.money import money

DASH = "—"
SIGNIFICANCE = 0.05  # two-sided; "significant at 95 %"
Z_95 = 1.959963984540054
Z_POWER_80 = 0.8416212335729143
# The z-test's normal approximation needs about this many conversions and non-conversions expected
# in each group (the usual n·p >= 5 rule); below it a "not significant" says little.
MIN_EXPECTED = 5
MIN_GROUP = 30  # customers per group below which we call the sample too small, whatever the rates


# --- Numbers ---------------------------------------------------------------------------------------


def percent(rate: float | None) -> str:
    """A share as a percentage: 0.125 -> "12.5%"."""
    return DASH if rate is None else f"{100 * rate:.1f}%"


def points(difference: float | None) -> str:
    """A difference of two rates in percentage points, signed: 0.031 -> "+3.1 pp"."""
    return DASH if difference is None else f"{100 * difference:+.1f} pp"


def p_value_text(p_value: float | None) -> str:
    if p_value is None:
        return DASH
    return "p < 0.001" if p_value < 0.001 else f"p = {p_value:.3f}"


def count(number: int) -> str:
    return f"{number:,}"


# --- The impact report ---------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupRow:
    key: str  # treated | control
    label: str
    customers: str
    converted: str
    conversion: str
    revenue: str
    revenue_per_customer: str


@dataclass(frozen=True)
class Verdict:
    kind: str  # significant | significant_negative | not_significant | too_few | not_measurable
    text: str

    @property
    def significant(self) -> bool:
        return self.kind in ("significant", "significant_negative")


@dataclass(frozen=True)
class ImpactDisplay:
    attribution_days: int
    groups: list[GroupRow]
    uplift: str  # "+3.1 pp"
    ci: str  # "-0.4 to +6.6 pp"
    p_value: str
    verdict: Verdict
    incremental_revenue: str
    attributed_revenue: str

    @property
    def uplift_summary(self) -> str:
        """One line: "Uplift +3.1 pp (95% CI -0.4 to +6.6 pp, p = 0.083)"."""
        if self.uplift == DASH:
            return "Uplift: not measurable yet"
        return f"Uplift {self.uplift} (95% CI {self.ci}, {self.p_value})"


def _needed_per_group(p1: float, p2: float) -> int | None:
    """Customers per group a z-test needs to find a difference of this size at 95 % with 80 % power."""
    difference = abs(p1 - p2)
    if difference == 0:
        return None
    mean = (p1 + p2) / 2
    numerator = Z_95 * math.sqrt(2 * mean * (1 - mean)) + Z_POWER_80 * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    return math.ceil((numerator / difference) ** 2)


def verdict(
    *,
    treated: int,
    treated_converted: int,
    control: int,
    control_converted: int,
    uplift: dict[str, float] | None,
    holdout_percent: int | None = None,
) -> Verdict:
    """Whether the treated group converted differently from the control group, in plain words."""
    if uplift is None:
        if not control and holdout_percent == 0:
            return Verdict("not_measurable", "Not measurable: the campaign holds out no control group (holdout 0%).")
        if not treated and not control:
            return Verdict("not_measurable", "No result yet: nothing sent or held out so far.")
        if not control:
            return Verdict("not_measurable", "Not measurable yet: no customer held out as the control group so far.")
        return Verdict("not_measurable", "Not measurable yet: nothing sent so far.")
    difference, p_value = uplift["absolute"], uplift["p_value"]
    size = f"{abs(100 * difference):.1f} pp"
    if p_value < SIGNIFICANCE and difference > 0:
        return Verdict("significant", f"Significant at 95%: treated customers converted {size} more.")
    if p_value < SIGNIFICANCE:
        return Verdict(
            "significant_negative",
            f"Significant at 95%: treated customers converted {size} less — the message seems to hurt.",
        )
    pooled = (treated_converted + control_converted) / (treated + control)
    expected = min(n * share for n in (treated, control) for share in (pooled, 1 - pooled))
    needed = _needed_per_group(treated_converted / treated, control_converted / control)
    hint = f" About {needed:,} customers per group would tell a difference this size." if needed else ""
    if min(treated, control) < MIN_GROUP:
        return Verdict(
            "too_few",
            f"Not significant yet: too few messages ({treated:,} sent, {control:,} held out) "
            f"to tell {points(difference)} from chance.{hint}",
        )
    if expected < MIN_EXPECTED:
        return Verdict(
            "too_few",
            f"Not significant yet: too few conversions ({treated_converted:,} treated, "
            f"{control_converted:,} control) to tell {points(difference)} from chance.{hint}",
        )
    return Verdict(
        "not_significant",
        f"Not significant: the {points(difference)} difference could be chance ({p_value_text(p_value)}).{hint}",
    )


def impact_display(impact: dict[str, Any], *, holdout_percent: int | None = None) -> ImpactDisplay:
    """The report of ``campaigns.selectors.campaign_impact`` (the API's ``impact``), for people."""
    labels = {"treated": "Treated (sent)", "control": "Control (held out)"}
    groups = [
        GroupRow(
            key=key,
            label=labels[key],
            customers=count(impact[key]["customers"]),
            converted=count(impact[key]["converted"]),
            conversion=percent(impact[key]["conversion_rate"]),
            revenue=money(impact[key]["revenue"]),
            revenue_per_customer=money(impact[key]["revenue_per_customer"]),
        )
        for key in ("treated", "control")
    ]
    uplift = impact["uplift"]
    ci = DASH
    if uplift is not None:
        # The Wald interval can overshoot what a difference of two rates can be (small groups);
        # shown clipped to -100..+100 pp, the API keeps the computed bounds.
        low, high = max(uplift["ci_low"], -1.0), min(uplift["ci_high"], 1.0)
        ci = f"{100 * low:+.1f} to {100 * high:+.1f} pp"
    return ImpactDisplay(
        attribution_days=impact["attribution_days"],
        groups=groups,
        uplift=points(uplift["absolute"] if uplift else None),
        ci=ci,
        p_value=p_value_text(uplift["p_value"] if uplift else None),
        verdict=verdict(
            treated=impact["treated"]["customers"],
            treated_converted=impact["treated"]["converted"],
            control=impact["control"]["customers"],
            control_converted=impact["control"]["converted"],
            uplift=uplift,
            holdout_percent=holdout_percent,
        ),
        incremental_revenue=money(impact["incremental_revenue"]),
        attributed_revenue=money(impact["treated"]["attributed_revenue"]),
    )


def uplift_cell(uplift: Any, *, significant: bool | None) -> str:
    """The campaign list's short form: "+3.1 pp, significant" / "+0.4 pp, not significant yet"."""
    if uplift is None:
        return DASH
    return f"{points(uplift)}, {'significant' if significant else 'not significant yet'}"


# --- A journey's steps (SPEC §4.1) ---------------------------------------------------------------


@dataclass(frozen=True)
class VariantRow:
    key: str
    weight: str
    sent: str
    converted: str
    conversion: str
    uplift: str  # against the first variant; the first reads "baseline"
    ci: str
    p_value: str
    winner: bool


@dataclass(frozen=True)
class StepRow:
    key: str
    type: str
    entered: str
    waiting: str
    sent: str
    suppressed: str
    exited: str
    converted: str
    variants: list[VariantRow]
    winner: str | None


def _interval(low: float | None, high: float | None) -> str:
    if low is None or high is None:
        return DASH
    return f"{100 * max(low, -1.0):+.1f} to {100 * min(high, 1.0):+.1f} pp"


def steps_report_display(steps: list[dict[str, Any]], *, winners: dict[str, Any] | None = None) -> list[StepRow]:
    """The per-step report (``selectors.campaign_steps_report``) for people, with the picked winners."""
    winners = winners or {}
    rows = []
    for step in steps:
        winner = (winners.get(step["key"]) or {}).get("variant")
        variants = [
            VariantRow(
                key=variant["key"],
                weight=count(variant["weight"]),
                sent=count(variant["sent"]),
                converted=count(variant["converted"]),
                conversion=percent(variant["conversion_rate"]),
                uplift="baseline" if index == 0 else points(variant["uplift"]),
                ci=DASH if index == 0 else _interval(variant["ci_low"], variant["ci_high"]),
                p_value=DASH if index == 0 else p_value_text(variant["p_value"]),
                winner=variant["key"] == winner,
            )
            for index, variant in enumerate(step["variants"])
        ]
        rows.append(
            StepRow(
                key=step["key"],
                type=step["type"],
                entered=count(step["entered"]),
                waiting=count(step["waiting"]),
                sent=count(step["sent"]),
                suppressed=count(step["suppressed"]),
                exited=count(step["exited"]),
                converted=count(step["converted"]),
                variants=variants,
                winner=winner,
            )
        )
    return rows


# --- Message states ------------------------------------------------------------------------------


def status_label(status: str) -> str:
    """ "held_out" -> "Held out (control group)"; an unknown code is shown as it is."""
    try:
        return str(MessageStatus(status).label)
    except ValueError:
        return status


def reason_label(reason: str) -> str:
    if not reason:
        return ""
    try:
        return str(SuppressionReason(reason).label)
    except ValueError:
        return reason.replace("_", " ").capitalize()


def status_counts_display(counts: dict[str, int]) -> list[tuple[str, str, int]]:
    """(code, label, count) per status, in the model's order."""
    return [(status, status_label(status), counts.get(status, 0)) for status in MessageStatus.values]


def reason_counts_display(reasons: dict[str, int]) -> list[tuple[str, int]]:
    """ "suppressed:frequency_cap" -> ("Suppressed: Frequency cap", n); queued ones read as waiting."""
    rows = []
    for key, number in reasons.items():
        status, _, reason = key.partition(":")
        if status == MessageStatus.QUEUED:
            rows.append((f"Waiting: {reason_label(reason)}", number))
        else:
            rows.append((f"{status_label(status)}: {reason_label(reason)}", number))
    return rows


def _zone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name or settings.TIME_ZONE)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo(settings.TIME_ZONE)


def _local(moment: dt.datetime, zone: zoneinfo.ZoneInfo, now: dt.datetime) -> str:
    local = moment.astimezone(zone)
    today = now.astimezone(zone).date()
    if local.date() == today:
        day = "today"
    elif local.date() == today + dt.timedelta(days=1):
        day = "tomorrow"
    else:
        day = local.strftime("%a %d %b")
    return f"{local:%H:%M} {day}, {zone.key} time"


@dataclass(frozen=True)
class PolicyView:
    """The parts of the contact policy a wait reason quotes."""

    max_messages: int
    cap_days: int
    quiet_hours_start: dt.time
    quiet_hours_end: dt.time

    @property
    def quiet_hours(self) -> bool:
        return self.quiet_hours_start != self.quiet_hours_end


def wait_reason(
    *,
    status: str,
    reason: str,
    send_at: dt.datetime,
    attempts: int,
    error: str,
    customer_timezone: str,
    campaign_status: str,
    policy: PolicyView,
    now: dt.datetime,
    max_attempts: int,
) -> str:
    """Why a queued message has not gone out yet, from what the contact policy left in its row.

    Empty for a message that is not waiting (sent, held out, suppressed...).
    """
    if status == MessageStatus.SENDING:
        return "Being sent now."
    if status != MessageStatus.QUEUED:
        return ""
    zone = _zone(customer_timezone)
    if campaign_status != CampaignStatus.ACTIVE:
        state = CampaignStatus(campaign_status).label.lower()
        return f"Waits for the campaign: it is {state}; nothing goes out until it is active."
    local = send_at.astimezone(zone)
    at_quiet_end = policy.quiet_hours and local.time() == policy.quiet_hours_end
    until = _local(send_at, zone, now)
    if send_at <= now:
        if reason == SuppressionReason.FREQUENCY_CAP:
            return "Due now (the frequency cap has room again): goes out with the next send run."
        return "Due now: goes out with the next send run."
    if reason == SuppressionReason.FREQUENCY_CAP:
        then = " and then the quiet hours" if at_quiet_end else ""
        return f"Frequency cap ({policy.max_messages} per {policy.cap_days} days){then}: waits until {until}."
    if at_quiet_end:
        return f"Quiet hours ({policy.quiet_hours_start:%H:%M}-{policy.quiet_hours_end:%H:%M}): waits until {until}."
    if attempts and error:
        return f"Retry after a provider error (attempt {attempts + 1} of {max_attempts}) at {until}: {error[:120]}"
    return f"Scheduled for {until}."
