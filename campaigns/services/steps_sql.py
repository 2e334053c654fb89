"""SQL parts of a journey's steps (SPEC §4.1), shared by entering (campaigns/services/evaluation.py)
and advancing (campaigns/services/advancing.py).

- ``holdout_sql`` / ``variant_sql``: the stable hashes that decide the control group (once, at
  entry) and a customer's variant at a message step;
- ``Arrival``: where an entry goes after a step, and when that step is due (a wait's end);
- ``message_ctes`` / ``message_insert``: one message per entry for a message step, planned through
  the contact policy (quiet hours, the frequency cap and its deferral) and checked for the step's
  channel consent and address;
- ``split_condition_sql``, ``tags_update_sql`` and ``step_counts_upsert``.
"""

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Literal

from campaigns.audience import granted_sql
from campaigns.channels.registry import address_sql
from campaigns.journey import EXIT, IMPLICIT_STEP_KEY, Journey, Step
from campaigns.models import SuppressionReason
from campaigns.services.policy import Policy, cap_release_sql, recent_sends_sql
from campaigns.sql import Sql, value

# Where a message step's channel consent and address are checked: ``none`` (entering has checked
# them: the step's channel is the campaign's), ``join`` (looked up here, through the customer) or
# ``source`` (the source rows carry ``consented`` and ``addressed``: advancing reads them with the
# due entries' customers, so the customer is joined once).
ChannelCheck = Literal["none", "join", "source"]

HOLDOUT_BUCKETS = 10_000  # the hash picks a bucket; holdout_percent * 100 of them are the control group


def _hash_bucket(text: Sql, buckets: int) -> Sql:
    """A bucket in [0, buckets) from md5(text): stable across runs, processes and PostgreSQL versions
    (unlike hashtext), and the same as ``_python_bucket``."""
    return Sql.format(
        "mod(('x' || substr(md5({text}), 1, 8))::bit(32)::bigint, {buckets})",
        text=text,
        buckets=value(buckets, "integer"),
    )


def _python_bucket(text: str, buckets: int) -> int:
    return int(hashlib.md5(text.encode()).hexdigest()[:8], 16) % buckets


def holdout_sql(campaign_id: Sql | str, customer_id: str) -> Sql:
    """The control-group bucket of md5("campaign:customer") (SPEC §4)."""
    campaign = campaign_id if isinstance(campaign_id, Sql) else Sql(campaign_id)
    return _hash_bucket(
        Sql.format(f"{{campaign}}::text || ':' || {customer_id}::text", campaign=campaign), HOLDOUT_BUCKETS
    )


def holdout_bucket(campaign_id: int, customer_id: int) -> int:
    return _python_bucket(f"{campaign_id}:{customer_id}", HOLDOUT_BUCKETS)


def variant_sql(*, campaign_id: int, step: Step, customer_id: str, winner: str | None) -> Sql:
    """The variant key a customer gets at a message step: the winner once one was picked, else the
    weighted bucket of md5("campaign:customer:step") — so it never changes for that customer."""
    if not step.variants:
        return value("", "text")
    if winner:
        return value(winner, "text")
    bucket = _hash_bucket(
        Sql.format(
            f"{{campaign}} || ':' || {customer_id}::text || ':' || {{step}}",
            campaign=value(str(campaign_id), "text"),
            step=value(step.key, "text"),
        ),
        sum(variant.weight for variant in step.variants),
    )
    cases, upper = [], 0
    for variant in step.variants[:-1]:
        upper += variant.weight
        cases.append(
            Sql.format(
                "WHEN {b} < {upper} THEN {key}", b=bucket, upper=value(upper, "integer"), key=value(variant.key, "text")
            )
        )
    return Sql.format(
        "CASE {cases} ELSE {last} END", cases=Sql.join(cases, " "), last=value(step.variants[-1].key, "text")
    )


def variant_for(*, campaign_id: int, step: Step, customer_id: int, winner: str | None = None) -> str:
    """``variant_sql`` in Python (the editor's preview, tests)."""
    if not step.variants:
        return ""
    if winner:
        return winner
    bucket = _python_bucket(f"{campaign_id}:{customer_id}:{step.key}", sum(x.weight for x in step.variants))
    upper = 0
    for variant in step.variants:
        upper += variant.weight
        if bucket < upper:
            return variant.key
    return step.variants[-1].key


# --- Arrival ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Arrival:
    """The columns of an entry after it leaves step ``current`` for a target."""

    state: Sql
    step_key: Sql
    next_at: Sql
    ended_at: Sql
    exit_reason: Sql

    def columns(self) -> list[Sql]:
        return [self.state, self.step_key, self.next_at, self.ended_at, self.exit_reason]

    @staticmethod
    def either(condition: Sql, yes: "Arrival", no: "Arrival") -> "Arrival":
        def pick(a: Sql, b: Sql) -> Sql:
            return Sql.format("CASE WHEN {c} THEN {a} ELSE {b} END", c=condition, a=a, b=b)

        return Arrival(*(pick(a, b) for a, b in zip(yes.columns(), no.columns(), strict=True)))


def local_time_after(base: Sql, tz: Sql, at: dt.time) -> Sql:
    """The first moment at or after ``base`` when the clock in ``tz`` shows ``at``."""
    return Sql.format(
        "CASE WHEN ({b} AT TIME ZONE {tz})::time <= {at}"
        " THEN (({b} AT TIME ZONE {tz})::date + {at}) AT TIME ZONE {tz}"
        " ELSE (({b} AT TIME ZONE {tz})::date + 1 + {at}) AT TIME ZONE {tz} END",
        b=base,
        tz=tz,
        at=value(at, "time"),
    )


def arrival(journey: Journey, *, current: str, target: str | None, base: Sql, tz: Sql, now: Sql) -> Arrival:
    """Leaving ``current`` for ``target``: a wait is due at its end, any other step at ``base``; past
    the last step the entry completes, and a split's ``exit`` ends it."""
    if target is None or target == EXIT:
        return Arrival(
            state=value("completed" if target is None else "exited", "text"),
            step_key=value(current, "text"),
            next_at=Sql("NULL::timestamptz"),
            ended_at=now,
            exit_reason=value("" if target is None else "split", "text"),
        )
    step = journey.step(target)
    if step.type == "wait" and step.minutes is not None:
        due = Sql.format("{b} + {wait}", b=base, wait=value(dt.timedelta(minutes=step.minutes), "interval"))
    elif step.type == "wait" and step.until is not None:
        due = local_time_after(base, tz, step.until)
    else:
        due = base
    return Arrival(
        state=value("active", "text"),
        step_key=value(target, "text"),
        next_at=due,
        ended_at=Sql("NULL::timestamptz"),
        exit_reason=value("", "text"),
    )


# --- Message steps ----------------------------------------------------------------------------------


def message_ctes(
    *,
    source: str,
    campaign_id: int,
    step: Step,
    winner: str | None,
    policy: Policy,
    now: dt.datetime,
    channel_check: ChannelCheck,
    prefix: str = "msg",
    order_by: str = "p.id",
) -> Sql:
    """CTEs ``msg_planned`` and ``msg_decided`` (``msg`` being ``prefix``) over the rows of
    ``source`` (columns ``customer_id``, ``held_out``, ``tz``, ``dedupe_key``, ``cart_id``,
    ``purchase_id``, ``data``; all of them are passed on), decided rows in ``order_by``.

    Each row looks up its customer's recent sends through the cap index (a lateral lookup), not by
    joining a CTE of them: the planner has no row estimate for a CTE of a CTE (``source``), takes
    both for a handful of rows and joins them by nested loop — every entry against every customer
    with a recent send, which is quadratic, and at a journey's second message step (everyone sent
    the first) hours for a hundred thousand entries.

    Decided per row: ``held_out`` (the control group, never sent); ``suppressed`` without the
    step channel's consent or address (see ``ChannelCheck``), or
    when the cap would defer it past ``max_defer_hours``; else ``queued`` at the end of quiet hours,
    or later when the cap defers it (reason ``frequency_cap``).
    """
    now_sql = value(now, "timestamptz")
    customer_join = ""
    if channel_check == "source":
        checks = Sql("")  # ``s.*`` carries them
    elif channel_check == "join":
        checks = Sql.format(
            "{consented} AS consented, {addressed} AS addressed, ",
            consented=granted_sql(step.channel),
            addressed=Sql(address_sql(step.channel)),
        )
        customer_join = " JOIN customers_customer c ON c.id = s.customer_id"
    else:
        checks = Sql("TRUE AS consented, TRUE AS addressed, ")
    return Sql.format(
        f"{prefix}_planned AS ("
        " SELECT s.*, {variant} AS variant_key, {checks}"
        "   {scheduled} AS scheduled_at, {release} AS release"
        f" FROM {source} s{customer_join} LEFT JOIN LATERAL ({{recent}}) r ON TRUE"
        # A fence: pulled up into the decision, each use of "consented" would run its subquery again.
        " OFFSET 0"
        f"), {prefix}_decided AS ("
        " SELECT p.*,"
        "   CASE WHEN p.held_out THEN 'held_out'"
        "        WHEN NOT (p.consented AND p.addressed) THEN 'suppressed'"
        "        WHEN {over_limit} THEN 'suppressed'"
        "        ELSE 'queued' END AS status,"
        "   CASE WHEN p.held_out THEN ''"
        "        WHEN NOT p.consented THEN {no_consent}"
        "        WHEN NOT p.addressed THEN {no_address}"
        "        WHEN p.release > p.scheduled_at THEN {cap_reason}"
        "        ELSE '' END AS reason,"
        "   CASE WHEN NOT p.held_out AND p.consented AND p.addressed AND p.release > p.scheduled_at"
        "        AND NOT {over_limit} THEN {deferred} ELSE p.scheduled_at END AS send_at"
        f" FROM {prefix}_planned p"
        # A sort takes in every row before it hands out the first: each row's cap lookup is done
        # before the statement inserts a single message. Interleaved with the inserts, a lookup
        # the planner made a sequential scan (it does when the message table looks empty: a new
        # install, or one vacuumed after a purge) would read every message inserted so far, once
        # per row: quadratic, hours for a first large campaign.
        f" ORDER BY {order_by}"
        ")",
        # "w.customer_id IN (s.customer_id)": one customer's sends, read off the cap index.
        recent=recent_sends_sql(customers="s.customer_id", now=now, policy=policy),
        variant=variant_sql(campaign_id=campaign_id, step=step, customer_id="s.customer_id", winner=winner),
        checks=checks,
        scheduled=policy.outside_quiet_hours(now_sql, Sql("s.tz")),
        release=cap_release_sql(recent="r", now=now, policy=policy),
        over_limit=policy.over_defer_limit(release="p.release", planned="p.scheduled_at"),
        no_consent=value(SuppressionReason.NO_CONSENT),
        no_address=value(SuppressionReason.NO_ADDRESS),
        cap_reason=value(SuppressionReason.FREQUENCY_CAP),
        deferred=policy.deferred_send_at(release="p.release", tz="p.tz"),
    )


def message_insert(*, campaign_id: int, step: Step, entry_id: str, now: dt.datetime) -> Sql:
    """``INSERT`` of the decided messages (``msg_decided d``), one per (entry, step): a second
    attempt at the same entry and step inserts nothing."""
    dedupe = "d.dedupe_key" if step.key == IMPLICIT_STEP_KEY else "d.dedupe_key || '/' || " + "%s"
    dedupe_sql = Sql(dedupe) if step.key == IMPLICIT_STEP_KEY else Sql(dedupe, (step.key,))
    now_sql = value(now, "timestamptz")
    return Sql.format(
        "INSERT INTO campaigns_message (uuid, campaign_id, customer_id, channel, dedupe_key, entry_id, step_key,"
        "   variant_key, status, reason, cart_id, purchase_id, data, created_at, scheduled_at, send_at, attempts,"
        "   touched_at, error, provider_message_id)"
        " SELECT gen_random_uuid(), {campaign}, d.customer_id, {channel}, {dedupe}, {entry_id}, {step}, d.variant_key,"
        "   d.status, d.reason, d.cart_id, d.purchase_id, d.data, {now}, d.scheduled_at, d.send_at, 0,"
        "   CASE WHEN d.status = 'held_out' THEN d.scheduled_at END, '', ''"
        " FROM msg_decided d"
        " ON CONFLICT DO NOTHING"
        " RETURNING entry_id, status, reason, send_at",
        campaign=value(campaign_id, "bigint"),
        channel=value(step.channel, "text"),
        dedupe=dedupe_sql,
        entry_id=Sql(entry_id),
        step=value(step.key, "text"),
        now=now_sql,
    )


# --- Splits and tags --------------------------------------------------------------------------------


def split_condition_sql(step: Step) -> Sql:
    """The split's condition on the customer ``c`` and the entry ``e``, at this moment."""
    name, wanted = step.condition, step.condition_value
    if name == "purchased_since_entry":
        return Sql(
            "EXISTS (SELECT 1 FROM customers_purchase p WHERE p.customer_id = e.customer_id"
            " AND p.status = 'completed' AND p.placed_at > e.entered_at)"
        )
    if name in ("clicked_previous", "opened_previous"):
        seen = "last.clicked_at IS NOT NULL"
        if name == "opened_previous":
            seen = "(last.opened_at IS NOT NULL OR last.clicked_at IS NOT NULL)"
        return Sql(
            f"coalesce((SELECT {seen} FROM campaigns_message last WHERE last.entry_id = e.id"
            " ORDER BY last.id DESC LIMIT 1), FALSE)"
        )
    if name == "tier":
        return Sql.format("c.tier = ANY({tiers})", tiers=value(list(wanted), "text[]"))
    if name == "min_total_spent":
        return Sql.format("c.total_spent >= {amount}", amount=value(wanted, "numeric"))
    return Sql.format("c.tags ? {tag}", tag=value(wanted, "text"))


def tags_update_sql(step: Step, *, source: str, now: dt.datetime) -> Sql:
    """One UPDATE of the customers in ``source``: ``remove`` taken out, ``add`` appended (in order, once)."""
    return Sql.format(
        "UPDATE customers_customer c SET updated_at = {now}, tags = ("
        "  SELECT coalesce(jsonb_agg(t ORDER BY o), '[]'::jsonb) FROM ("
        "    SELECT t, min(o) AS o FROM jsonb_array_elements_text(c.tags || to_jsonb({add})) WITH ORDINALITY x(t, o)"
        "    WHERE NOT t = ANY({remove}) GROUP BY t) kept)"
        f" FROM {source} s WHERE c.id = s.customer_id RETURNING c.id",
        now=value(now, "timestamptz"),
        add=value(list(step.add), "text[]"),
        remove=value(list(step.remove), "text[]"),
    )


def step_counts_upsert(*, campaign_id: int, arrivals: Sql | str) -> Sql:
    """Add the arrivals (a query of ``step_key`` rows) to the campaign's per-step counters."""
    return Sql.format(
        "INSERT INTO campaigns_stepcount (campaign_id, step_key, entered)"
        " SELECT {campaign}, a.step_key, count(*) FROM ({arrivals}) a GROUP BY a.step_key"
        " ON CONFLICT (campaign_id, step_key) DO UPDATE SET entered = campaigns_stepcount.entered + EXCLUDED.entered"
        " RETURNING step_key",
        campaign=value(campaign_id, "bigint"),
        arrivals=arrivals if isinstance(arrivals, Sql) else Sql(arrivals),
    )
