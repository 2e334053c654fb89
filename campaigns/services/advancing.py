"""Advancing: every due entry of a journey moves on, one statement per step (SPEC §4.1).

Each statement takes the step's due entries (``FOR UPDATE SKIP LOCKED``: two workers advancing the
same journey take disjoint entries; a worker killed mid-statement rolls back and loses nothing),
re-checks why an entry must end (a purchase since entry with ``exit_on = purchase``, the customer
erased, the campaign channel's consent revoked), and moves the others on in the same statement:

- a message step inserts one message per (entry, step) (``ON CONFLICT DO NOTHING``: never twice),
  planned through the contact policy, then moves the entry on from the planned send time;
- a split evaluates its condition and moves each entry to its ``yes`` or ``no`` step;
- a tag step changes the customers' tags;
- a wait only passes time: it is due at its end (``next_at``), and the step after it takes the
  entries due at it directly (so a wait before a message costs no statement of its own).

Steps run in order within one pass, so an entry can cross several steps at once when nothing
makes it wait. Waits live in ``next_at``, never in Celery countdowns.
"""

import datetime as dt
import logging

from django.db import connection

from campaigns.audience import granted_join
from campaigns.channels.registry import address_sql
from campaigns.journey import Journey, Step, journey_of
from campaigns.models import Campaign, ExitOn
from campaigns.services.evaluation import EvaluationResult
from campaigns.services.policy import Policy, customer_tz_sql
from campaigns.services.steps_sql import (
    Arrival,
    arrival,
    message_ctes,
    message_insert,
    split_condition_sql,
    step_counts_upsert,
    tags_update_sql,
)
from campaigns.sql import Sql, value

logger = logging.getLogger(__name__)


def sources(journey: Journey, step: Step) -> list[str]:
    """The step keys whose due entries this step's statement takes: its own, and those of waits
    leading straight to it (a due wait's entries are due at the step after it)."""
    if step.type == "wait":
        return [step.key]
    keys = [step.key]
    for other in journey.steps:
        if other.type == "wait" and journey.following(other.key) == step.key:
            keys.append(other.key)
    return keys


def has_own_statement(journey: Journey, step: Step) -> bool:
    """A wait needs its own statement only when nothing after it takes its entries."""
    if step.type != "wait":
        return True
    following = journey.following(step.key)
    return following is None or journey.step(following).type == "wait"


def goal_reached_sql(campaign: Campaign) -> Sql:
    if campaign.exit_on != ExitOn.PURCHASE:
        return Sql("FALSE")
    return Sql(
        "EXISTS (SELECT 1 FROM customers_purchase p WHERE p.customer_id = e.customer_id"
        " AND p.status = 'completed' AND p.placed_at > e.entered_at)"
    )


def channel_checks_sql(campaign: Campaign, step: Step) -> tuple[Sql, Sql]:
    """A message step's ``consented`` and ``addressed`` for its channel, read with the due entries'
    customer (the campaign channel's consent is a reason to leave, so it holds for those moving),
    and the join they need."""
    if step.type != "message":
        return Sql(""), Sql("")
    if step.channel == campaign.channel:
        consented, join = Sql("TRUE"), Sql("")
    else:
        consented = Sql("step_consent.customer_id IS NOT NULL")
        join = granted_join("step_consent", step.channel, customer="e.customer_id")
    columns = Sql.format(
        "{consented} AS consented, {addressed} AS addressed,",
        consented=consented,
        addressed=Sql(address_sql(step.channel)),
    )
    return columns, join


def _due_ctes(*, campaign: Campaign, step: Step, keys: list[str], now: dt.datetime, extra: Sql | None) -> Sql:
    """``due`` (locked), ``leaving`` (those that must end now, ended) and ``moving`` (the rest)."""
    now_sql = value(now, "timestamptz")
    channel_checks, step_consent = channel_checks_sql(campaign, step)
    return Sql.format(
        "WITH due AS MATERIALIZED ("
        " SELECT e.id, e.customer_id, e.dedupe_key, e.held_out, e.cart_id, e.purchase_id, e.data, e.entered_at,"
        "   e.step_key AS from_key, {tz} AS tz, {extra} AS condition, {channel_checks}"
        "   CASE WHEN {goal} THEN 'goal' WHEN c.erased_at IS NOT NULL THEN 'erased'"
        "        WHEN campaign_consent.customer_id IS NULL THEN 'no_consent' END AS leave_reason"
        " FROM campaigns_entry e JOIN customers_customer c ON c.id = e.customer_id{campaign_consent}{step_consent}"
        " WHERE e.campaign_id = {campaign} AND e.state = 'active' AND e.step_key = ANY({keys})"
        "   AND e.next_at <= {now}"
        # In id order (the order entries were written in): a large hash join hands rows back
        # scrambled, and every write after it (the lock, the messages and their indexes, the
        # entries' update) would then touch pages at random.
        " ORDER BY e.id FOR UPDATE OF e SKIP LOCKED"
        "), leaving AS ("
        " UPDATE campaigns_entry x SET state = 'exited', exit_reason = d.leave_reason, ended_at = {now},"
        "   next_at = NULL"
        " FROM due d WHERE x.id = d.id AND d.leave_reason IS NOT NULL RETURNING x.id"
        "), moving AS (SELECT * FROM due WHERE leave_reason IS NULL), ",
        tz=customer_tz_sql(),
        extra=extra if extra is not None else Sql("NULL::boolean"),
        channel_checks=channel_checks,
        campaign_consent=granted_join("campaign_consent", campaign.channel, customer="e.customer_id"),
        step_consent=step_consent,
        goal=goal_reached_sql(campaign),
        campaign=value(campaign.pk, "bigint"),
        keys=value(keys, "text[]"),
        now=now_sql,
    )


def _move(arrive: Arrival, *, source: str = "moving") -> Sql:
    """``moved``: the entries of ``source`` (one row per entry, ``id`` its entry) go where ``arrive`` says.

    ``source`` is joined to the entries table alone, through its primary key: joining two CTEs
    (say ``moving`` and the messages inserted) would leave the planner guessing both sizes, and its
    guess of a few rows makes a nested loop of every entry against every message.
    """
    return Sql.format(
        "moved AS ("
        " UPDATE campaigns_entry x SET state = {state}, step_key = {step_key}, next_at = {next_at},"
        "   ended_at = {ended_at}, exit_reason = {exit_reason}"
        f" FROM {source} m WHERE x.id = m.id"
        " RETURNING CASE WHEN x.state = 'active' THEN x.step_key END AS arrived"
        ")",
        state=arrive.state,
        step_key=arrive.step_key,
        next_at=arrive.next_at,
        ended_at=arrive.ended_at,
        exit_reason=arrive.exit_reason,
    )


def _counted(campaign: Campaign, step: Step) -> Sql:
    # Arrivals: where moved entries went, and this step itself for those that came through a wait.
    return Sql.format(
        "counted AS ({upsert})",
        upsert=step_counts_upsert(
            campaign_id=campaign.pk,
            arrivals=Sql.format(
                "SELECT arrived AS step_key FROM moved WHERE arrived IS NOT NULL"
                " UNION ALL SELECT {step}::text FROM moving WHERE from_key <> {step}",
                step=value(step.key, "text"),
            ),
        ),
    )


# The answer of every step statement: (kind, status or exit reason, reason, due now, count).
TAIL = (
    " SELECT 'exit'::text, leave_reason, ''::text, FALSE, count(*) FROM due WHERE leave_reason IS NOT NULL"
    " GROUP BY 2 UNION ALL SELECT 'moved'::text, '', '', FALSE, count(*) FROM moving"
)


def step_sql(
    *, campaign: Campaign, journey: Journey, step: Step, policy: Policy, now: dt.datetime, winner: str | None
) -> Sql:
    """The one statement that moves this step's due entries."""
    keys = sources(journey, step)
    now_sql = value(now, "timestamptz")
    targets = journey.targets(step.key)

    def to(target: str | None, base: Sql) -> Arrival:
        return arrival(journey, current=step.key, target=target, base=base, tz=Sql("m.tz"), now=now_sql)

    if step.type == "message":
        head = _due_ctes(campaign=campaign, step=step, keys=keys, now=now, extra=None)
        return head + Sql.format(
            "{messages}, msg_inserted AS ({insert}), {moved}, {counted}"
            " SELECT 'message'::text, status, reason, send_at <= {now}, count(*) FROM msg_inserted"
            " GROUP BY 2, 3, 4 UNION ALL" + TAIL,
            messages=message_ctes(
                source="moving",
                campaign_id=campaign.pk,
                step=step,
                winner=winner,
                policy=policy,
                now=now,
                channel_check="source",
            ),
            insert=message_insert(campaign_id=campaign.pk, step=step, entry_id="d.id", now=now),
            # Every moving entry has its planned message in msg_decided (inserted, or already there
            # from an earlier attempt): the step after it counts from the planned send.
            moved=_move(to(targets[0], Sql("m.send_at")), source="msg_decided"),
            counted=_counted(campaign, step),
            now=now_sql,
        )
    if step.type == "split":
        head = _due_ctes(campaign=campaign, step=step, keys=keys, now=now, extra=split_condition_sql(step))
        move = Arrival.either(Sql("m.condition"), to(step.yes, now_sql), to(step.no, now_sql))
        return head + Sql.format("{moved}, {counted}" + TAIL, moved=_move(move), counted=_counted(campaign, step))
    if step.type == "tag":
        head = _due_ctes(campaign=campaign, step=step, keys=keys, now=now, extra=None)
        return head + Sql.format(
            "tagged AS ({tags}), {moved}, {counted}" + TAIL,
            tags=tags_update_sql(step, source="moving", now=now),
            moved=_move(to(targets[0], now_sql)),
            counted=_counted(campaign, step),
        )
    head = _due_ctes(campaign=campaign, step=step, keys=keys, now=now, extra=None)
    return head + Sql.format(
        "{moved}, {counted}" + TAIL, moved=_move(to(targets[0], now_sql)), counted=_counted(campaign, step)
    )


def journey_advance(
    *, campaign: Campaign, policy: Policy, now: dt.datetime, winners: dict[str, str], result: EvaluationResult
) -> None:
    """One pass over the journey's steps, in order; adds the messages it created to ``result``."""
    journey = journey_of(campaign)
    if not journey.explicit:
        return  # one message step: its entries complete as they enter
    for step in journey.steps:
        if not has_own_statement(journey, step):
            continue
        statement = step_sql(
            campaign=campaign, journey=journey, step=step, policy=policy, now=now, winner=winners.get(step.key)
        )
        with connection.cursor() as cursor:
            cursor.execute(statement.text, statement.params)
            rows = cursor.fetchall()
        result.add_messages([(status, reason, due, n) for kind, status, reason, due, n in rows if kind == "message"])
        result.exited += sum(n for kind, _, _, _, n in rows if kind == "exit")
