"""Who a campaign would reach now, before it runs: the editor's audience estimate, and for the
preview's customer whether they are eligible now and, if not, why.

Both read the eligibility the evaluation uses (SPEC §4, campaigns/services/evaluation.py): the
trigger's candidates at ``now`` (its own module's SQL), a customer who is not erased, the channel's
consent and address, the audience filter; and for a saved campaign, minus the occasions (dedupe
keys) it already has a message for. Each answer is one SELECT over that set, with no Python loop
over customers; nothing is written.
"""

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from campaigns.audience import audience_clean
from campaigns.content.topics import topic_allowed_sql
from campaigns.models import HOLDOUT_PERCENT_MAX
from campaigns.services.evaluation import customer_conditions
from campaigns.services.policy import customer_tz_sql
from campaigns.services.steps_sql import HOLDOUT_BUCKETS, holdout_bucket, holdout_sql
from campaigns.sql import Sql, all_of, value
from campaigns.triggers import Candidates, EvaluationContext, trigger_get
from customers.models import Channel
from retention_crm import validation as v

AUDIENCE_LABELS = {
    "tier": "tier",
    "rfm_segment": "RFM segment",
    "tags": "tags (any of)",
    "exclude_tags": "tags (none of)",
    "min_total_spent": "min total spent",
    "max_total_spent": "max total spent",
    "consent": "also consented to",
}


@dataclass(frozen=True)
class Target:
    """A campaign's who-and-when, as the editor holds it (saved or not), validated."""

    trigger: str
    params: dict[str, Any]  # resolved: every parameter with its value
    channel: str
    audience: dict[str, Any]
    holdout_percent: int
    campaign_id: int | None = None  # a saved campaign: its ledger and its control-group hash apply
    topic_id: int | None = None  # customers out of the topic never enter (SPEC §4.2)

    @classmethod
    def clean(
        cls,
        *,
        trigger: str,
        params: Any,
        channel: str,
        audience: Any,
        holdout_percent: Any = 10,
        campaign_id: int | None = None,
        topic: Any = None,
    ) -> "Target":
        """Raises ApplicationError naming the field, like the campaign's own validation."""
        definition = trigger_get(trigger)
        holdout = v.clean_count(
            holdout_percent if holdout_percent not in (None, "") else 10,
            "holdout_percent",
            maximum=HOLDOUT_PERCENT_MAX,
        )
        return cls(
            trigger=definition.name,
            params=definition.resolve(definition.clean_params(params)),
            channel=v.clean_choice(channel or Channel.EMAIL, "channel", Channel.values),
            audience=audience_clean(audience),
            holdout_percent=holdout,
            campaign_id=campaign_id,
            # The editor posts the topic's id; "" (or junk) means the trigger's default topic.
            topic_id=int(topic) if isinstance(topic, str) and topic.strip().isdigit() and len(topic) < 18 else None,
        )


def _candidates(target: Target, now: dt.datetime) -> Candidates:
    ctx = EvaluationContext(now=now, store_timezone=settings.TIME_ZONE, customer_tz=Sql("customer_tz.name"))
    return trigger_get(target.trigger).candidates(params=target.params, ctx=ctx)


def _not_entered(target: Target, dedupe_key: Sql) -> Sql:
    """The occasion has no message of this campaign yet (always true for an unsaved campaign)."""
    if target.campaign_id is None:
        return Sql("TRUE")
    return Sql.format(
        "NOT EXISTS (SELECT 1 FROM campaigns_message m WHERE m.campaign_id = {campaign} AND m.dedupe_key = {key})",
        campaign=value(target.campaign_id, "bigint"),
        key=dedupe_key,
    )


def _customer_conditions(target: Target) -> list[tuple[str, Sql | str]]:
    return [
        *customer_conditions(channel=target.channel, audience=target.audience),
        ("topic", topic_allowed_sql(topic_id=target.topic_id, customer="c.id", trigger=target.trigger)),
    ]


# --- The audience estimate --------------------------------------------------------------------------


@dataclass(frozen=True)
class AudienceEstimate:
    eligible: int  # customers the trigger and the audience select now
    would_enter: int  # of those, customers with an occasion the campaign has no message for yet
    held_out: int  # of those, in the control group (exact for a saved campaign, else estimated)
    held_out_exact: bool
    computed_at: dt.datetime

    @property
    def text(self) -> str:
        people = "customer" if self.would_enter == 1 else "customers"
        line = f"About {self.would_enter:,} {people} would enter now"
        if self.would_enter and self.held_out:
            about = "" if self.held_out_exact else "about "
            line += f" ({about}{self.held_out:,} of them held out as the control group)"
        line += "."
        already = self.eligible - self.would_enter
        if already:
            line += f" {already:,} more already had this campaign for the same occasion."
        return line


def campaign_audience_estimate(*, target: Target, now: dt.datetime | None = None) -> AudienceEstimate:
    """How many customers the next run would take in: one counting SELECT over the eligible set."""
    now = now or timezone.now()
    candidates = _candidates(target, now)
    campaign_id = value(target.campaign_id or 0, "bigint")
    statement = Sql.format(
        "WITH eligible AS ("
        " SELECT c.id AS customer_id, {fresh} AS fresh, {holdout} < {buckets} AS held_out"
        " FROM {from_} CROSS JOIN LATERAL (SELECT {tz} AS name) customer_tz"
        " WHERE {conditions}"
        ")"
        " SELECT count(DISTINCT customer_id),"
        "  count(DISTINCT customer_id) FILTER (WHERE fresh),"
        "  count(DISTINCT customer_id) FILTER (WHERE fresh AND held_out)"
        " FROM eligible",
        fresh=_not_entered(target, candidates.dedupe_key),
        holdout=holdout_sql(campaign_id, "c.id"),
        buckets=value(target.holdout_percent * HOLDOUT_BUCKETS // 100, "integer"),
        from_=candidates.from_,
        tz=customer_tz_sql(),
        conditions=all_of([candidates.where, *(condition for _, condition in _customer_conditions(target))]),
    )
    with connection.cursor() as cursor:
        cursor.execute(statement.text, statement.params)
        eligible, would_enter, held_out = cursor.fetchone()
    exact = target.campaign_id is not None
    if not exact:  # no campaign id yet, so no hash: the expected share
        held_out = round(would_enter * target.holdout_percent / 100)
    return AudienceEstimate(eligible, would_enter, held_out, exact, now)


# --- One customer, for the preview ------------------------------------------------------------------


@dataclass(frozen=True)
class Eligibility:
    eligible: bool
    reasons: list[str] = field(default_factory=list)  # why not, in words
    held_out: bool = False  # eligible, and in the control group (a saved campaign)

    @property
    def text(self) -> str:
        if self.eligible and self.held_out:
            return "Eligible now, in the control group: the next run holds them out and sends them nothing."
        if self.eligible:
            return "Eligible now: the next run would send them this message."
        return "Not eligible now: " + "; ".join(self.reasons) + "."

    def as_dict(self) -> dict[str, Any]:
        return {"eligible": self.eligible, "held_out": self.held_out, "reasons": self.reasons, "text": self.text}


def _days_ago(moment: dt.datetime, now: dt.datetime) -> str:
    days = (now - moment).days
    return "today" if days == 0 else f"{days:,} day{'s' if days != 1 else ''} ago"


def _customer_fact(trigger: str, facts: dict[str, Any], now: dt.datetime) -> str:
    """The one fact about the customer a trigger turns on, for the explanation."""
    if trigger in ("reactivation", "churn_risk", "post_purchase"):
        last = facts["last_purchase_at"]
        return "no completed purchase yet" if last is None else f"last completed purchase {_days_ago(last, now)}"
    if trigger == "welcome":
        return f"signed up {_days_ago(facts['created_at'], now)}"
    if trigger == "birthday":
        born = facts["birth_date"]
        return "no birth date on file" if born is None else f"birthday {born:%d %B}"
    if trigger == "points_expiring":
        return f"points balance {facts['points_balance']:,}"
    return ""


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _trigger_requirement(trigger: str, params: dict[str, Any]) -> str:
    """What the trigger needs of a customer, with this campaign's parameters, in words."""
    p = {name: _number(value) for name, value in params.items() if value is not None}
    if trigger == "reactivation":
        upper = f" (and one within {p['max_inactive_days']} days)" if "max_inactive_days" in p else ""
        return f"no completed purchase for {p['inactive_days']} days{upper}"
    if trigger == "churn_risk":
        return f"a churn-risk score of at least {p['threshold']} (refreshed nightly)"
    if trigger == "welcome":
        return f"a sign-up at least {p['delay_hours']} hours and at most {p['max_age_days']} days ago"
    if trigger == "birthday":
        days = params["days_before"]
        return "a birthday today" if not days else f"a birthday in {days} day{'s' if days != 1 else ''}"
    if trigger == "post_purchase":
        return f"a completed purchase placed {p['days_after']} days ago (a one-day window)"
    if trigger == "points_expiring":
        return f"points expiring within {p['days_ahead']} days"
    if trigger == "abandoned_cart":
        return f"an open cart with items, unchanged for {p['delay_hours']} hours, and no completed purchase since"
    return trigger_get(trigger).description.rstrip(".")


def _trigger_explanation(target: Target, facts: dict[str, Any], now: dt.datetime) -> str:
    label = trigger_get(target.trigger).label.lower()
    fact = _customer_fact(target.trigger, facts, now)
    needs = _trigger_requirement(target.trigger, target.params)
    return f"the {label} trigger needs {needs}" + (f"; here: {fact}" if fact else "")


def _audience_explanation(key: str, audience: dict[str, Any]) -> str:
    wanted = audience[key]
    shown = ", ".join(wanted) if isinstance(wanted, list) else wanted
    if key == "exclude_tags":
        return f"outside the audience: they have a tag among {shown}"
    if key == "consent":
        return f"outside the audience: they have not also consented to {shown}"
    return f"outside the audience: {AUDIENCE_LABELS[key]} must be {shown}"


def customer_eligibility(*, target: Target, customer_id: int | None, now: dt.datetime | None = None) -> Eligibility:
    """Whether the next run would take this customer in, and if not every rule that keeps them out.

    One statement: the customer's conditions side by side, and the trigger's candidates for this
    customer (its occasions: a cart, a purchase, or the customer themselves).
    """
    now = now or timezone.now()
    candidates = _candidates(target, now)
    named = _customer_conditions(target)
    customer = value(customer_id, "bigint")
    columns = Sql.join([Sql.format("coalesce(({condition}), FALSE)", condition=c) for _, c in named], ", ")
    statement = Sql.format(
        "SELECT {columns}, occasions.total, occasions.fresh,"
        "  c.last_purchase_at, c.created_at, c.birth_date, c.points_balance"
        " FROM customers_customer c"
        " CROSS JOIN LATERAL ("
        "   SELECT count(*) AS total, count(*) FILTER (WHERE {fresh}) AS fresh"
        "   FROM {from_} CROSS JOIN LATERAL (SELECT {tz} AS name) customer_tz"
        "   WHERE c.id = {customer} AND {where}"
        " ) occasions"
        " WHERE c.id = {customer}",
        columns=columns,
        fresh=_not_entered(target, candidates.dedupe_key),
        from_=candidates.from_,
        tz=customer_tz_sql(),
        customer=customer,
        where=candidates.where.wrap(),
    )
    with connection.cursor() as cursor:
        cursor.execute(statement.text, statement.params)
        row = cursor.fetchone()
    if row is None:
        return Eligibility(False, ["no such customer"])
    *checks, occasions, fresh = row[:-4]
    facts = dict(zip(("last_purchase_at", "created_at", "birth_date", "points_balance"), row[-4:], strict=True))
    passed = dict(zip([name for name, _ in named], checks, strict=True))
    channel = Channel(target.channel).label.lower()
    reasons = []
    if not passed["not_erased"]:
        reasons.append("the customer is erased")
    if not passed["consent"]:
        reasons.append(f"no {channel} consent")
    if not passed["address"]:
        reasons.append(f"no address for {channel}")
    if not passed["topic"]:
        reasons.append("they opted out of the campaign's topic")
    for name, ok in passed.items():
        if name.startswith("audience.") and not ok:
            reasons.append(_audience_explanation(name.removeprefix("audience."), target.audience))
    if not occasions:
        reasons.append(_trigger_explanation(target, facts, now))
    elif not fresh:
        reasons.append("they already had this campaign for the same occasion (one message per occasion, ever)")
    if reasons:
        return Eligibility(False, reasons)
    held_out = False
    if target.campaign_id is not None and customer_id is not None:  # (no such customer answered above)
        held_out = holdout_bucket(target.campaign_id, customer_id) < target.holdout_percent * HOLDOUT_BUCKETS // 100
    return Eligibility(True, [], held_out)


__all__ = ["AudienceEstimate", "Eligibility", "Target", "campaign_audience_estimate", "customer_eligibility"]
