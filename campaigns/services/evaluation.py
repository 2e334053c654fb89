"""Entering: one INSERT ... SELECT per campaign puts the trigger's candidates into its journey
(SPEC §4, §4.1).

The statement, built from parts:

1. ``eligible``: the trigger's candidates at ``now`` (its own module's SQL), restricted to customers
   who are not erased, have granted the campaign's channel, have an address for it, and match the
   audience filter;
2. ``fresh``: minus the dedupe keys the campaign already has an entry for (an anti-join on the
   unique index, so re-evaluating every few minutes costs a scan, not a rewrite), and minus
   customers the re-entry rule keeps out;
3. ``entering``: the control group, decided once per entry by a stable hash of (campaign, customer);
4. when the first step is a message (every campaign without steps), its messages are planned in
   the same statement (quiet hours, the frequency cap; ``steps_sql.message_ctes``), the entries are
   inserted already past that step, and their messages with them;
5. ``ON CONFLICT DO NOTHING``: two evaluations at once (two workers, or a run now during a
   scheduled run) create each entry once, and never a second open entry for one customer.

No Python loop over customers: the answer is a few counts.
"""

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection

from campaigns.audience import audience_sql, granted_sql
from campaigns.channels.registry import address_sql
from campaigns.content.topics import topic_allowed_sql
from campaigns.journey import Journey, journey_of
from campaigns.models import Campaign, MessageStatus, SuppressionReason
from campaigns.services.policy import Policy, customer_tz_sql
from campaigns.services.steps_sql import (
    HOLDOUT_BUCKETS,
    arrival,
    holdout_sql,
    message_ctes,
    message_insert,
    step_counts_upsert,
)
from campaigns.sql import Sql, all_of, value
from campaigns.triggers import EvaluationContext, trigger_get

logger = logging.getLogger(__name__)


@dataclass
class EvaluationResult:
    """Messages a run created (SPEC §6 ``run``), and the entries it moved."""

    queued: int = 0
    held_out: int = 0
    suppressed: int = 0
    deferred: int = 0
    due_now: int = 0  # queued messages that may go out at once (not waiting for quiet hours or the cap)
    entered: int = 0
    exited: int = 0

    def counts(self) -> dict[str, int]:
        return {
            "queued": self.queued,
            "held_out": self.held_out,
            "suppressed": self.suppressed,
            "deferred": self.deferred,
        }

    def add_messages(self, rows: list[tuple[str, str, bool, int]]) -> None:
        """Rows of (status, reason, due now, count) from a statement that inserted messages."""
        for status, reason, due, number in rows:
            if status == MessageStatus.QUEUED and reason == SuppressionReason.FREQUENCY_CAP:
                self.deferred += number
            else:
                setattr(self, status, getattr(self, status) + number)
            if status == MessageStatus.QUEUED and due:
                self.due_now += number


def customer_conditions(*, channel: str, audience: dict[str, Any]) -> list[tuple[str, Sql | str]]:
    """What every trigger needs of the customer, each named (the editor's preview explains a
    customer's ineligibility by these names): not erased, the channel's consent and address, and
    each audience filter."""
    conditions: list[tuple[str, Sql | str]] = [
        ("not_erased", "c.erased_at IS NULL"),
        ("consent", granted_sql(channel)),
        ("address", address_sql(channel)),
    ]
    for key, filter_value in audience.items():
        conditions.append((f"audience.{key}", all_of(audience_sql({key: filter_value}))))
    return conditions


def reentry_sql(*, campaign: Campaign, journey: Journey, now: dt.datetime) -> Sql | None:
    """The re-entry rule as a condition on ``e.customer_id``; None when it cannot keep anyone out
    (a single message step completes its entries at once, so with 0 days there is never an open
    or recent one)."""
    days = campaign.reentry_after_days
    if days == 0 and not journey.explicit:
        return None
    if days is None:
        recent = Sql("TRUE")
    else:
        recent = Sql.format(
            "(x.ended_at IS NULL OR x.ended_at > {since})", since=value(now - dt.timedelta(days=days), "timestamptz")
        )
    return Sql.format(
        "NOT EXISTS (SELECT 1 FROM campaigns_entry x WHERE x.customer_id = e.customer_id"
        " AND x.campaign_id = {campaign} AND {recent})",
        campaign=value(campaign.pk, "bigint"),
        recent=recent,
    )


def entering_sql(*, campaign: Campaign, policy: Policy, now: dt.datetime, winners: dict[str, str]) -> Sql:
    journey = journey_of(campaign)
    trigger = trigger_get(campaign.trigger)
    params = trigger.resolve(trigger.clean_params(campaign.params))
    ctx = EvaluationContext(now=now, store_timezone=settings.TIME_ZONE, customer_tz=Sql("customer_tz.name"))
    candidates = trigger.candidates(params=params, ctx=ctx)
    conditions = [
        candidates.where,
        *(condition for _, condition in customer_conditions(channel=campaign.channel, audience=campaign.audience)),
        # Out of the campaign's topic: never enters (SPEC §4.2).
        topic_allowed_sql(topic_id=campaign.topic_id, customer="c.id", trigger=campaign.trigger),
    ]
    now_sql = value(now, "timestamptz")
    campaign_id = value(campaign.pk, "bigint")
    reentry = reentry_sql(campaign=campaign, journey=journey, now=now)
    first = journey.first
    head = Sql.format(
        "WITH eligible AS ("
        " SELECT c.id AS customer_id, {dedupe_key} AS dedupe_key, {cart_id} AS cart_id,"
        "        {purchase_id} AS purchase_id, {data} AS data, customer_tz.name AS tz"
        " FROM {from_} CROSS JOIN LATERAL (SELECT {tz} AS name) customer_tz"
        " WHERE {conditions}"
        "), fresh AS ("
        " SELECT e.* FROM eligible e WHERE NOT EXISTS ("
        "   SELECT 1 FROM campaigns_entry x WHERE x.campaign_id = {campaign_id} AND x.dedupe_key = e.dedupe_key)"
        "   {reentry}"
        "), entering AS ("
        " SELECT f.*, {holdout} < {holdout_buckets} AS held_out FROM fresh f"
        "), ",
        dedupe_key=candidates.dedupe_key,
        cart_id=candidates.cart_id,
        purchase_id=candidates.purchase_id,
        data=candidates.data,
        from_=candidates.from_,
        tz=customer_tz_sql(),
        conditions=all_of(conditions),
        campaign_id=campaign_id,
        reentry=Sql("") if reentry is None else "AND " + reentry,
        holdout=holdout_sql(campaign_id, "f.customer_id"),
        holdout_buckets=value(campaign.holdout_percent * HOLDOUT_BUCKETS // 100, "integer"),
    )
    entry_columns = (
        "INSERT INTO campaigns_entry (campaign_id, customer_id, dedupe_key, held_out, state, step_key, next_at,"
        " entered_at, ended_at, exit_reason, cart_id, purchase_id, data)"
        " SELECT {campaign_id}, x.customer_id, x.dedupe_key, x.held_out, {state}, {step_key}, {next_at},"
        " {now}, {ended_at}, {exit_reason}, x.cart_id, x.purchase_id, x.data"
    )
    if first.type == "message":
        # The entries go in already past the first step (``plan``: when its message goes out),
        # with their messages beside them. The messages are planned again from the entries
        # inserted (the same snapshot and clock give the same plan), rather than joined back to
        # the first plan: joining two CTEs leaves the planner guessing both sizes, and a guess of a
        # few rows (young statistics) makes a nested loop of every entry against every message.
        after = arrival(
            journey,
            current=first.key,
            target=journey.following(first.key),
            base=Sql("x.send_at"),
            tz=Sql("x.tz"),
            now=now_sql,
        )
        planned: dict[str, Any] = {
            "campaign_id": campaign.pk,
            "step": first,
            "winner": winners.get(first.key),
            "policy": policy,
            "now": now,
            "channel_check": "join" if first.channel != campaign.channel else "none",
        }
        # When the first message is also the last step, its entries complete whenever it goes out:
        # nothing of the entry depends on the plan, which is then made once, for the messages.
        plan = message_ctes(source="entering", prefix="plan", order_by="p.customer_id", **planned) + ", "
        entries_from = "plan_decided"
        if journey.following(first.key) is None:
            plan, entries_from = Sql(""), "entering"
        body = Sql.format(
            "{plan}entries_inserted AS (" + entry_columns + f" FROM {entries_from} x ON CONFLICT DO NOTHING"
            " RETURNING id, customer_id, dedupe_key, held_out, cart_id, purchase_id, data, state, step_key"
            "), entered AS ("
            " SELECT ei.*, {tz} AS tz FROM entries_inserted ei JOIN customers_customer c ON c.id = ei.customer_id"
            "), {messages}, msg_inserted AS ({insert}"
            "), counted AS ({counted})"
            " SELECT status, reason, send_at <= {now} AS due, count(*) FROM msg_inserted GROUP BY 1, 2, 3",
            plan=plan,
            tz=customer_tz_sql(),
            messages=message_ctes(source="entered", **planned),
            campaign_id=campaign_id,
            state=after.state,
            step_key=after.step_key,
            next_at=after.next_at,
            now=now_sql,
            ended_at=after.ended_at,
            exit_reason=after.exit_reason,
            insert=message_insert(campaign_id=campaign.pk, step=first, entry_id="d.id", now=now),
            counted=step_counts_upsert(
                campaign_id=campaign.pk,
                # Every new entry arrived at the first step; those still open, at the one after it.
                arrivals=Sql.format(
                    "SELECT {first}::text AS step_key FROM entries_inserted"
                    " UNION ALL SELECT step_key FROM entries_inserted WHERE state = 'active'",
                    first=value(first.key, "text"),
                ),
            ),
        )
        return head + body
    at_first = arrival(journey, current=first.key, target=first.key, base=now_sql, tz=Sql("x.tz"), now=now_sql)
    body = Sql.format(
        "entries_inserted AS (" + entry_columns + " FROM entering x ON CONFLICT DO NOTHING RETURNING id, step_key"
        "), counted AS ({counted})"
        " SELECT 'entered'::text, ''::text, FALSE, count(*) FROM entries_inserted",
        campaign_id=campaign_id,
        state=at_first.state,
        step_key=at_first.step_key,
        next_at=at_first.next_at,
        now=now_sql,
        ended_at=at_first.ended_at,
        exit_reason=at_first.exit_reason,
        counted=step_counts_upsert(campaign_id=campaign.pk, arrivals="SELECT step_key FROM entries_inserted"),
    )
    return head + body


def entries_enter(
    *, campaign: Campaign, policy: Policy, now: dt.datetime, winners: dict[str, str], result: EvaluationResult
) -> None:
    """Run the entering statement; adds what it created to ``result``."""
    statement = entering_sql(campaign=campaign, policy=policy, now=now, winners=winners)
    with connection.cursor() as cursor:
        cursor.execute(statement.text, statement.params)
        rows = cursor.fetchall()
    if rows and rows[0][0] == "entered":
        result.entered += rows[0][3]
        return
    result.add_messages(rows)
    result.entered += sum(row[3] for row in rows)
