"""Campaign evaluation: one INSERT ... SELECT per campaign creates its messages (SPEC §4).

The statement, built from parts:

1. ``eligible``: the trigger's candidates at ``now`` (its own module's SQL), restricted to customers
   who are not erased, have granted the campaign's channel, have an address for it, and match the
   audience filter;
2. ``fresh``: minus the dedupe keys this campaign already has (an anti-join on the unique index, so
   that re-evaluating every few minutes costs a scan, not a rewrite);
3. ``planned``: the control group by a stable hash of (campaign, customer); the send time moved out
   of the customer's quiet hours; when the frequency cap would be exceeded, the time it frees up;
4. insert with ``ON CONFLICT (campaign_id, dedupe_key) DO NOTHING``: two evaluations of one campaign
   at once (two workers, or a run now during a scheduled run) create each message once.

No Python loop over customers, and the process's memory does not depend on how many there are: the
answer is four counts.
"""

import datetime as dt
import logging
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from campaigns.audience import audience_sql, granted_sql
from campaigns.models import Campaign, CampaignStatus, ContactPolicy, MessageStatus, SuppressionReason
from campaigns.services.campaigns import campaign_get
from campaigns.sql import Sql, all_of, quiet_release, value
from campaigns.triggers import EvaluationContext, trigger_get
from customers.models import Channel
from retention_crm.errors import Conflict

logger = logging.getLogger(__name__)

HOLDOUT_BUCKETS = 10_000  # the hash picks a bucket; holdout_percent * 100 of them are the control group
ADVISORY_LOCK_CLASS = 72_001  # first key of the per-customer cap locks (pg_advisory_xact_lock(int, int))


@dataclass(frozen=True)
class Policy:
    max_messages: int
    cap_days: int
    max_defer_hours: int
    quiet_hours_start: dt.time
    quiet_hours_end: dt.time

    @property
    def cap_window(self) -> dt.timedelta:
        return dt.timedelta(days=self.cap_days)

    @property
    def max_defer(self) -> dt.timedelta:
        return dt.timedelta(hours=self.max_defer_hours)


def contact_policy_get() -> Policy:
    policy, _ = ContactPolicy.objects.get_or_create(pk=ContactPolicy.SINGLETON_ID)
    return Policy(
        max_messages=policy.max_messages,
        cap_days=policy.cap_days,
        max_defer_hours=policy.max_defer_hours,
        quiet_hours_start=policy.quiet_hours_start,
        quiet_hours_end=policy.quiet_hours_end,
    )


@dataclass(frozen=True)
class EvaluationResult:
    queued: int = 0
    held_out: int = 0
    suppressed: int = 0
    deferred: int = 0
    due_now: int = 0  # queued messages that may go out at once (not waiting for quiet hours or the cap)

    def counts(self) -> dict[str, int]:
        return {
            "queued": self.queued,
            "held_out": self.held_out,
            "suppressed": self.suppressed,
            "deferred": self.deferred,
        }


@cache
def database_timezones() -> tuple[str, ...]:
    """The time zone names PostgreSQL knows (read once per process: the view reads files)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_timezone_names")
        return tuple(sorted(name for (name,) in cursor.fetchall()))


def customer_tz_sql() -> Sql:
    """The customer's time zone, or the store's if PostgreSQL does not know the name.

    Names are validated on every write, but the application's and the database's time zone data
    may differ in version; one unknown name must not abort every evaluation. The IN list is a
    hashed subplan, computed once per statement.
    """
    return Sql.format(
        "CASE WHEN c.timezone IN (SELECT unnest({names})) THEN c.timezone ELSE {store} END",
        names=value(list(database_timezones()), "text[]"),
        store=value(settings.TIME_ZONE, "text"),
    )


def address_sql(channel: str) -> str:
    """A channel's address must be there: an email address, a phone number; push and webhook
    address the customer by external id."""
    if channel == Channel.EMAIL:
        return "c.email <> ''"
    if channel == Channel.SMS:
        return "c.phone <> ''"
    return "TRUE"


def holdout_sql(campaign_id: Sql | str, customer_id: str) -> Sql:
    """A bucket in [0, HOLDOUT_BUCKETS) from md5(campaign:customer): stable across runs, processes and
    PostgreSQL versions (unlike hashtext), and the same as ``holdout_bucket`` in Python."""
    return Sql.format(
        f"mod(('x' || substr(md5({{campaign}}::text || ':' || {customer_id}::text), 1, 8))::bit(32)::bigint,"
        f" {HOLDOUT_BUCKETS})",
        campaign=campaign_id if isinstance(campaign_id, Sql) else Sql(campaign_id),
    )


def holdout_bucket(campaign_id: int, customer_id: int) -> int:
    import hashlib

    return int(hashlib.md5(f"{campaign_id}:{customer_id}".encode()).hexdigest()[:8], 16) % HOLDOUT_BUCKETS


def recent_sends_sql(*, customers: Sql | str, now: dt.datetime, policy: Policy) -> Sql:
    """The body of a MATERIALIZED CTE: for the customers ``customers`` selects, how many messages
    count against their cap (``sent``) and when, oldest first (``times``).

    Materialised, it reads the ledger once per statement, before or beside the INSERT into that same
    ledger, instead of once per candidate (a correlated lookup on a table being inserted into can
    degrade to a scan per row while its statistics are young).
    """
    return Sql.format(
        "SELECT w.customer_id, count(*) AS sent, array_agg(w.cap_at ORDER BY w.cap_at) AS times"
        " FROM campaigns_message w"
        " WHERE w.cap_at > {window_start} AND w.customer_id IN ({customers})"
        " GROUP BY w.customer_id",
        window_start=value(now - policy.cap_window, "timestamptz"),
        customers=customers if isinstance(customers, Sql) else Sql(customers),
    )


def cap_release_sql(*, recent: str, now: dt.datetime, policy: Policy, extra: str = "0") -> Sql:
    """When the customer's cap frees a slot for one more message; NULL when it has room now.

    ``recent`` is the alias of a row of ``recent_sends_sql`` (NULL columns: nothing in the window);
    ``extra`` counts messages ahead of this one that are not in the ledger's window yet. With n
    messages in the window (oldest first t1..tn) and ``extra`` ahead, this one needs
    n + extra + 1 <= max; otherwise the (n + extra + 1 - max)-th oldest must leave the window first,
    at t_k + cap_days. If that one is itself among ``extra`` (k > n), it leaves cap_days after now.
    """
    return Sql.format(
        f"CASE WHEN coalesce({recent}.sent, 0) + {extra} + 1 > {{max}}"
        f" THEN coalesce({recent}.times[(coalesce({recent}.sent, 0) + {extra} + 1 - {{max}})::int], {{now}})"
        " + {cap} END",
        max=value(policy.max_messages, "integer"),
        now=value(now, "timestamptz"),
        cap=value(policy.cap_window, "interval"),
    )


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


def evaluation_sql(*, campaign: Campaign, policy: Policy, now: dt.datetime) -> Sql:
    trigger = trigger_get(campaign.trigger)
    params = trigger.resolve(trigger.clean_params(campaign.params))
    tz = customer_tz_sql()
    ctx = EvaluationContext(now=now, store_timezone=settings.TIME_ZONE, customer_tz=Sql("customer_tz.name"))
    candidates = trigger.candidates(params=params, ctx=ctx)
    conditions = [
        candidates.where,
        *(condition for _, condition in customer_conditions(channel=campaign.channel, audience=campaign.audience)),
    ]
    now_sql = value(now, "timestamptz")
    campaign_id = value(campaign.pk, "bigint")
    return Sql.format(
        "WITH eligible AS ("
        " SELECT c.id AS customer_id, {dedupe_key} AS dedupe_key, {cart_id} AS cart_id,"
        "        {purchase_id} AS purchase_id, {data} AS data, customer_tz.name AS tz"
        " FROM {from_} CROSS JOIN LATERAL (SELECT {tz} AS name) customer_tz"
        " WHERE {conditions}"
        "), fresh AS ("
        " SELECT e.* FROM eligible e WHERE NOT EXISTS ("
        "   SELECT 1 FROM campaigns_message m WHERE m.campaign_id = {campaign_id} AND m.dedupe_key = e.dedupe_key)"
        "), recent AS MATERIALIZED ({recent}"
        "), planned AS ("
        " SELECT f.*, {holdout} < {holdout_buckets} AS held_out, {scheduled} AS scheduled_at,"
        "   {release} AS release"
        " FROM fresh f LEFT JOIN recent r ON r.customer_id = f.customer_id"
        "), decided AS ("
        " SELECT p.*,"
        "   CASE WHEN p.held_out THEN 'held_out'"
        "        WHEN p.release > p.scheduled_at + {max_defer} THEN 'suppressed'"
        "        ELSE 'queued' END AS status,"
        "   (NOT p.held_out AND p.release > p.scheduled_at) AS capped"
        " FROM planned p"
        "), inserted AS ("
        " INSERT INTO campaigns_message (uuid, campaign_id, customer_id, channel, dedupe_key, status, reason,"
        "   cart_id, purchase_id, data, created_at, scheduled_at, send_at, attempts, touched_at, error,"
        "   provider_message_id)"
        " SELECT gen_random_uuid(), {campaign_id}, d.customer_id, {channel}, d.dedupe_key, d.status,"
        "   CASE WHEN d.capped THEN {cap_reason} ELSE '' END, d.cart_id, d.purchase_id, d.data, {now},"
        "   d.scheduled_at,"
        "   CASE WHEN d.capped AND d.status = 'queued' THEN {deferred_send} ELSE d.scheduled_at END,"
        "   0, CASE WHEN d.held_out THEN d.scheduled_at END, '', ''"
        " FROM decided d"
        " ON CONFLICT (campaign_id, dedupe_key) DO NOTHING"
        " RETURNING status, reason, send_at"
        ")"
        " SELECT status, reason, send_at <= {now} AS due, count(*) FROM inserted GROUP BY 1, 2, 3",
        dedupe_key=candidates.dedupe_key,
        cart_id=candidates.cart_id,
        purchase_id=candidates.purchase_id,
        data=candidates.data,
        from_=candidates.from_,
        tz=tz,
        conditions=all_of(conditions),
        campaign_id=campaign_id,
        holdout=holdout_sql(campaign_id, "f.customer_id"),
        holdout_buckets=value(campaign.holdout_percent * HOLDOUT_BUCKETS // 100, "integer"),
        scheduled=quiet_release(now_sql, Sql("f.tz"), policy.quiet_hours_start, policy.quiet_hours_end),
        recent=recent_sends_sql(customers="SELECT customer_id FROM fresh", now=now, policy=policy),
        release=cap_release_sql(recent="r", now=now, policy=policy),
        max_defer=value(policy.max_defer, "interval"),
        channel=value(campaign.channel),
        cap_reason=value(SuppressionReason.FREQUENCY_CAP),
        now=now_sql,
        deferred_send=quiet_release(Sql("d.release"), Sql("d.tz"), policy.quiet_hours_start, policy.quiet_hours_end),
    )


def campaign_evaluate(*, campaign_id: int, now: dt.datetime | None = None) -> EvaluationResult:
    """Create the messages the campaign's trigger selects at ``now``; returns what this run created.

    Idempotent per dedupe key: a second run, or a concurrent one, creates nothing twice.
    """
    now = now or timezone.now()
    campaign = campaign_get(campaign_id=campaign_id)
    statement = evaluation_sql(campaign=campaign, policy=contact_policy_get(), now=now)
    counts = {"queued": 0, "held_out": 0, "suppressed": 0, "deferred": 0, "due_now": 0}
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement.text, statement.params)
        for status, reason, due, number in cursor.fetchall():
            if status == MessageStatus.QUEUED and reason == SuppressionReason.FREQUENCY_CAP:
                counts["deferred"] += number
            else:
                counts[status] += number
            if status == MessageStatus.QUEUED and due:
                counts["due_now"] += number
        Campaign.objects.filter(pk=campaign.pk).update(last_evaluated_at=now)
    result = EvaluationResult(**counts)
    logger.info("campaign.evaluated", extra={"campaign_id": campaign.pk, **result.counts()})
    return result


def campaign_run(*, campaign_id: int, now: dt.datetime | None = None) -> EvaluationResult:
    """Run now (API, admin, beat): evaluate an active campaign, then hand its due messages to the
    senders once the messages are committed."""
    from campaigns.services.sending import sends_enqueue

    campaign = campaign_get(campaign_id=campaign_id)
    if campaign.status != CampaignStatus.ACTIVE:
        raise Conflict(
            f"Campaign {campaign.pk} is {campaign.status}; only an active campaign runs. Activate it first.",
            code="campaign_not_active",
        )
    with transaction.atomic():
        result = campaign_evaluate(campaign_id=campaign.pk, now=now)
        if result.due_now:
            sends_enqueue(campaign_id=campaign.pk, due=result.due_now)
    return result
