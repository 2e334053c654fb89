"""Sending: claim a batch of due messages, check them again, render, send, record (SPEC §4).

Exactly-once, as far as a network allows:

- **Claim.** One transaction locks up to ``CAMPAIGN_SEND_BATCH_SIZE`` (500) due messages of a campaign
  (``FOR UPDATE SKIP LOCKED``: concurrent senders take disjoint rows) and moves them with a
  conditional ``UPDATE ... WHERE status = 'queued'`` to ``sending`` before any channel call. In the
  same statement each message is checked again: consent revoked or customer erased since selection
  (``suppressed``, ``no_consent``), no address any more (``no_address``), the frequency cap (deferred
  until it frees a slot, or ``suppressed``/``frequency_cap`` beyond ``max_defer_hours``), quiet hours
  (deferred to their end). Per-customer advisory locks make the cap exact across concurrent senders.
- **Send.** Each message goes out with its UUID as the provider's idempotency key.
- **Record.** ``sent`` (with bonus points credited once through the ledger's idempotency key),
  ``failed`` for a permanent error, or back to ``queued`` with exponential backoff for a transient
  one, up to ``MAX_SEND_ATTEMPTS``. With real providers each sent message gets its receipt
  (``send_receipts``) before its connection sends again, and the outcomes are written per batch
  (or lane: ``CAMPAIGN_SMTP_CONNECTIONS`` connections at once, each with its own receipts). So a
  worker killed mid-batch leaves at most one message per connection sent-but-unreceipted; the
  sweeper completes the receipted ones and puts the rest back in the queue, and a re-send carries
  the same idempotency key.
"""

import datetime as dt
import logging
import math
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from campaigns.channels import Outgoing, PermanentError, TransientError, backend_for
from campaigns.channels.lanes import Lanes
from campaigns.channels.registry import PreferencesLink, address_fields, address_of, addressed_case_sql
from campaigns.content.rendering import (
    MessageContent,
    email_html_and_text,
    message_variables,
    text_addition,
    text_as_sent,
)
from campaigns.content.topics import topic_allowed_sql
from campaigns.journey import Journey, Step, journey_of
from campaigns.models import Campaign, CampaignStatus, ExitOn, Message, MessageStatus, SuppressionReason
from campaigns.offers import bonus_key, discount_code, offer_context
from campaigns.services.policy import (
    ADVISORY_LOCK_CLASS,
    LOCK_CUSTOMERS_SQL,
    Policy,
    cap_release_sql,
    contact_policy_get,
    customer_tz_sql,
    recent_sends_sql,
)
from campaigns.services.send_receipts import messages_complete_receipted, send_receipt_write
from campaigns.sql import Sql, value
from campaigns.templating import (
    BudgetExceeded,
    cart_context,
    customer_context,
    points_context,
    render_all,
    template_compile,
    uses,
)
from campaigns.tokens import unsubscribe_url, unsubscribe_url_prefix
from campaigns.triggers.points_expiring import DEFAULT_EXPIRING_DAYS, expiring_days_for
from customers.models import CartItem, Channel
from retention_crm.errors import ApplicationError

logger = logging.getLogger(__name__)

SEND_FANOUT_MAX = 8  # send tasks started at once for one campaign's backlog
MAX_SEND_ATTEMPTS = 5
RETRY_BASE_SECONDS = 60
RETRY_MAX_SECONDS = 3_600
MESSAGE_MAX_AGE = dt.timedelta(days=7)  # a queued message this late is no longer worth sending
MAX_ERROR_LENGTH = 2_000


def sending_stale_after() -> dt.timedelta:
    """How long a message may sit in ``sending`` before the sweeper assumes its worker died. Longer
    than a send task's hard time limit, so a live sender's messages are never taken from it."""
    return dt.timedelta(seconds=settings.CAMPAIGN_SENDING_STALE_SECONDS)


def send_batch_size() -> int:
    """Messages per claim (setting CAMPAIGN_SEND_BATCH_SIZE): larger batches amortise the claim and the
    record statements, smaller ones spread a backlog over more workers sooner."""
    size: int = settings.CAMPAIGN_SEND_BATCH_SIZE
    return size


def retry_delay(attempts: int) -> dt.timedelta:
    return dt.timedelta(seconds=min(RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0), RETRY_MAX_SECONDS))


@dataclass
class SendResult:
    batch_size: int = 0
    locked: int = 0  # due messages taken from the queue and checked
    claimed: int = 0  # of those, moved to sending
    sent: int = 0
    failed: int = 0
    retried: int = 0
    suppressed: int = 0
    deferred: int = 0

    @property
    def full(self) -> bool:
        """Whether the batch was full, i.e. more may be waiting."""
        return bool(self.batch_size) and self.locked >= self.batch_size


# --- Enqueueing ---------------------------------------------------------------------------------


def sends_enqueue(*, campaign_id: int, due: int) -> None:
    """After commit, start enough send tasks for ``due`` messages (at most SEND_FANOUT_MAX; each
    re-enqueues itself while its batches come back full). A broker outage here is logged, not
    raised: the messages are safe in the database and the dispatcher (beat) picks them up."""
    from campaigns.tasks import send_batch

    tasks = max(1, min(math.ceil(due / send_batch_size()), SEND_FANOUT_MAX))

    def enqueue() -> None:
        for _ in range(tasks):
            send_batch.delay(campaign_id)

    transaction.on_commit(enqueue, robust=True)


# --- Claim ----------------------------------------------------------------------------------------

_LOCK_DUE = """
    SELECT id, customer_id FROM campaigns_message
    WHERE campaign_id = %s AND status = 'queued' AND send_at <= %s
    ORDER BY send_at, id
    LIMIT %s
    FOR UPDATE SKIP LOCKED
"""


def _goal_reached_sql(campaign: Campaign) -> Sql:
    """A purchase since the message's entry (journeys that exit on purchase): it is not sent."""
    if campaign.exit_on != ExitOn.PURCHASE or not campaign.steps:  # a single message: SPEC §4's rules
        return Sql("FALSE")
    return Sql(
        "EXISTS (SELECT 1 FROM campaigns_entry e JOIN customers_purchase p ON p.customer_id = e.customer_id"
        " WHERE e.id = b.entry_id AND p.status = 'completed' AND p.placed_at > e.entered_at)"
    )


def _addressed_sql() -> Sql:
    return Sql(addressed_case_sql(channel_column="b.channel", customer="c"))


def _verdict_sql(*, campaign: Campaign, ids: list[int], now: dt.datetime, policy: Policy) -> Sql:
    now_sql = value(now, "timestamptz")
    quiet_now = policy.outside_quiet_hours(now_sql, Sql("f.tz"))
    return Sql.format(
        # Every CTE is materialised: each is computed once (an inlined one re-evaluates its
        # subqueries at every reference), and the ledger's row estimates, often stale right after an
        # evaluation inserted thousands of rows, cannot talk the planner into re-scanning the queue.
        "WITH batch AS MATERIALIZED ("
        " SELECT m.id, m.customer_id, m.channel, m.scheduled_at, m.attempts, m.entry_id,"
        "   row_number() OVER (PARTITION BY m.customer_id ORDER BY m.send_at, m.id) - 1 AS ahead"
        " FROM campaigns_message m WHERE m.id = ANY({ids})"
        "), recent AS MATERIALIZED ({recent}"
        "), facts AS MATERIALIZED ("
        " SELECT b.*, customer_tz.name AS tz, {release} AS release,"
        "   (c.erased_at IS NULL AND EXISTS (SELECT 1 FROM customers_consent k"
        "      WHERE k.customer_id = c.id AND k.channel = b.channel AND k.granted)) AS consented,"
        "   {addressed} AS addressed, {goal} AS goal_reached, {topic_ok} AS topic_ok"
        " FROM batch b JOIN customers_customer c ON c.id = b.customer_id"
        " CROSS JOIN LATERAL (SELECT {tz} AS name) customer_tz"
        " LEFT JOIN recent r ON r.customer_id = b.customer_id"
        "), verdict AS ("
        " SELECT f.id,"
        "   CASE WHEN NOT f.consented OR NOT f.topic_ok OR NOT f.addressed OR f.goal_reached THEN 'suppressed'"
        "        WHEN f.attempts >= {max_attempts} THEN 'failed'"
        "        WHEN {over_limit} THEN 'suppressed'"
        "        WHEN f.release IS NOT NULL OR {quiet_now} > {now} THEN 'queued'"
        "        ELSE 'sending' END AS status,"
        "   CASE WHEN NOT f.consented THEN {no_consent}"
        "        WHEN NOT f.topic_ok THEN {topic_out}"
        "        WHEN NOT f.addressed THEN {no_address}"
        "        WHEN f.goal_reached THEN {goal_reason}"
        "        WHEN f.attempts >= {max_attempts} THEN NULL"
        "        WHEN f.release IS NOT NULL THEN {cap}"
        "        WHEN {quiet_now} > {now} THEN NULL"
        "        ELSE '' END AS reason,"
        "   CASE WHEN f.release IS NOT NULL THEN {quiet_release} ELSE {quiet_now} END AS send_at"
        " FROM facts f"
        ")"
        " UPDATE campaigns_message m SET"
        "   status = v.status,"
        "   reason = coalesce(v.reason, m.reason),"
        "   send_at = CASE WHEN v.status = 'queued' THEN v.send_at ELSE m.send_at END,"
        "   claimed_at = CASE WHEN v.status = 'sending' THEN {now} ELSE m.claimed_at END,"
        "   cap_at = CASE WHEN v.status = 'sending' THEN {now} END,"
        "   attempts = m.attempts + CASE WHEN v.status = 'sending' THEN 1 ELSE 0 END,"
        "   error = CASE WHEN v.status = 'failed'"
        "     THEN 'gave up after ' || m.attempts || ' attempts; last error: ' || m.error ELSE m.error END"
        " FROM verdict v WHERE m.id = ANY({ids}) AND m.id = v.id AND m.status = 'queued'"
        " RETURNING m.id, m.status",
        ids=value(ids, "bigint[]"),
        tz=customer_tz_sql(),
        recent=recent_sends_sql(customers="SELECT customer_id FROM batch", now=now, policy=policy),
        release=cap_release_sql(recent="r", now=now, policy=policy, extra="b.ahead"),
        addressed=_addressed_sql(),
        goal=_goal_reached_sql(campaign),
        # Opted out of the campaign's topic since selection (SPEC §4.2): suppressed like consent.
        topic_ok=topic_allowed_sql(topic_id=campaign.topic_id, customer="b.customer_id", trigger=campaign.trigger),
        topic_out=value(SuppressionReason.TOPIC_OPT_OUT),
        max_attempts=value(MAX_SEND_ATTEMPTS, "integer"),
        over_limit=policy.over_defer_limit(release="f.release", planned="f.scheduled_at"),
        quiet_now=quiet_now,
        now=now_sql,
        no_consent=value(SuppressionReason.NO_CONSENT),
        no_address=value(SuppressionReason.NO_ADDRESS),
        goal_reason=value(SuppressionReason.GOAL),
        cap=value(SuppressionReason.FREQUENCY_CAP),
        quiet_release=policy.deferred_send_at(release="f.release", tz="f.tz"),
    )


def _claim(*, campaign: Campaign, now: dt.datetime, batch_size: int, result: SendResult) -> list[int]:
    """Check and claim up to ``batch_size`` due messages; returns the ids now in ``sending``."""
    policy = contact_policy_get()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_LOCK_DUE, [campaign.pk, now, batch_size])
        rows = cursor.fetchall()
        result.locked = len(rows)
        if not rows:
            return []
        cursor.execute(LOCK_CUSTOMERS_SQL, [ADVISORY_LOCK_CLASS, sorted({customer_id for _, customer_id in rows})])
        statement = _verdict_sql(campaign=campaign, ids=[message_id for message_id, _ in rows], now=now, policy=policy)
        cursor.execute(statement.text, statement.params)
        claimed = []
        for message_id, status in cursor.fetchall():
            if status == MessageStatus.SENDING:
                claimed.append(message_id)
            elif status == MessageStatus.SUPPRESSED:
                result.suppressed += 1
            elif status == MessageStatus.FAILED:
                result.failed += 1
            else:
                result.deferred += 1
    result.claimed = len(claimed)
    return claimed


# --- Render ---------------------------------------------------------------------------------------

MESSAGE_FIELDS = (
    "id",
    "uuid",
    "customer_id",
    "channel",
    "cart_id",
    "purchase_id",
    "discount_code",
    "attempts",
    "step_key",
    "variant_key",
    *dict.fromkeys(f"customer__{name}" for name in ("external_id", *address_fields())),
    "customer__first_name",
    "customer__last_name",
    "customer__tier",
    "customer__points_balance",
    "customer__orders_count",
    "customer__total_spent",
    "customer__first_purchase_at",
    "customer__last_purchase_at",
    "customer__birth_date",
    "customer__created_at",
    "customer__tags",
    "customer__attributes",
    "customer__timezone",
    "cart__external_id",
    "cart__updated_at",
    "purchase__external_id",
    "purchase__placed_at",
    "purchase__total",
)


@dataclass
class Batch:
    """What rendering a batch of one campaign needs, fetched in a few queries."""

    campaign: Campaign
    rows: list[dict[str, Any]]
    journey: Journey | None = None
    cart_items: dict[int, list[Mapping[str, Any]]] = field(default_factory=dict)
    expiring: dict[int, tuple[int, dt.datetime | None]] = field(default_factory=dict)
    expiring_days: int = DEFAULT_EXPIRING_DAYS
    url_prefix: str = field(default_factory=unsubscribe_url_prefix)
    content: MessageContent = field(default_factory=MessageContent)  # layout, links, HTML templates


def _row_customer(row: dict[str, Any]) -> dict[str, Any]:
    return {name.removeprefix("customer__"): row[name] for name in row if name.startswith("customer__")}


def message_step(batch: Batch, row: dict[str, Any]) -> Step:
    """The journey step a message belongs to (a message whose step was removed: the first message step)."""
    journey = batch.journey or journey_of(batch.campaign)
    step_key = row.get("step_key")
    if step_key and journey.has(step_key) and journey.step(step_key).type == "message":
        return journey.step(step_key)
    return journey.message_steps()[0]


def message_context(batch: Batch, row: dict[str, Any], url: str) -> dict[str, Any]:
    customer = _row_customer(row)
    context: dict[str, Any] = {
        "customer": customer_context(customer),
        "offer": offer_context(message_step(batch, row).offer, row["discount_code"]),
        "campaign": {"name": batch.campaign.name},
        "unsubscribe_url": url,
        **message_variables(batch.content, str(row["uuid"])),  # preferences_url, nps_links
        "cart": None,
        "purchase": None,
    }
    if row["cart_id"] is not None and row["cart__external_id"] is not None:
        context["cart"] = cart_context(
            row["cart__external_id"], row["cart__updated_at"], batch.cart_items.get(row["cart_id"], [])
        )
    if row["purchase_id"] is not None and row["purchase__external_id"] is not None:
        context["purchase"] = {
            "external_id": row["purchase__external_id"],
            "placed_at": row["purchase__placed_at"],
            "total": row["purchase__total"],
        }
    points, expiring_at = batch.expiring.get(row["customer_id"], (0, None))
    context["points"] = points_context(customer["points_balance"], points, expiring_at, batch.expiring_days)
    return context


def _load_batch(campaign: Campaign, ids: list[int], now: dt.datetime) -> Batch:
    rows = list(Message.objects.filter(pk__in=ids, status=MessageStatus.SENDING).order_by("pk").values(*MESSAGE_FIELDS))
    expiring_days = expiring_days_for(trigger=campaign.trigger, params=campaign.params)
    batch = Batch(campaign=campaign, rows=rows, journey=journey_of(campaign), expiring_days=expiring_days)
    steps = {row["id"]: message_step(batch, row) for row in rows}
    sources = "".join(
        "".join(steps[row["id"]].content(row["variant_key"])) + steps[row["id"]].html_content(row["variant_key"])
        for row in rows
    )
    _assign_discount_codes(
        [(row, steps[row["id"]].offer) for row in rows if "discount_percent" in steps[row["id"]].offer]
    )
    cart_ids = {row["cart_id"] for row in rows if row["cart_id"] is not None}
    if cart_ids and uses(sources, "cart"):
        for item in (
            CartItem.objects.filter(cart_id__in=cart_ids)
            .order_by("pk")
            .values("cart_id", "sku", "name", "category", "quantity", "unit_price")
        ):
            batch.cart_items.setdefault(item["cart_id"], []).append(item)
    if uses(sources, "points"):
        from customers.loyalty.selectors import points_expiring_within

        customer_ids = {row["customer_id"] for row in rows}
        for entry in points_expiring_within(days=batch.expiring_days, now=now).filter(customer_id__in=customer_ids):
            batch.expiring[entry["customer_id"]] = (entry["points"], entry["earliest_expiry"])
    return batch


_SET_CODES = """
    UPDATE campaigns_message m SET discount_code = codes.code
    FROM unnest(%s::bigint[], %s::text[]) AS codes(id, code)
    WHERE m.id = codes.id AND m.discount_code IS NULL
"""


def _assign_discount_codes(rows: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
    """Give each message its code (its step's offer) before it can go out; a re-send computes and
    finds the same code."""
    missing = [row for row, _ in rows if row["discount_code"] is None]
    for row, offer in rows:
        if row["discount_code"] is None:
            row["discount_code"] = discount_code(
                prefix=offer["code_prefix"], message_id=row["id"], message_uuid=row["uuid"]
            )
    if missing:
        with connection.cursor() as cursor:
            cursor.execute(_SET_CODES, [[row["id"] for row in missing], [row["discount_code"] for row in missing]])


# --- Record ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    message_id: int
    customer_id: int
    uuid: str
    status: str  # sent | failed | queued (transient, retried later)
    at: dt.datetime
    provider_id: str = ""
    error: str = ""
    retry_at: dt.datetime | None = None
    bonus_points: int = 0  # the step's offer, credited once the send is recorded


_RECORD = """
    UPDATE campaigns_message m SET
        -- A provider's callback may beat our own record of the send: keep what it said.
        status = CASE WHEN o.status <> 'sent' THEN o.status
                      WHEN m.clicked_at IS NOT NULL THEN 'clicked'
                      WHEN m.opened_at IS NOT NULL THEN 'opened'
                      WHEN m.delivered_at IS NOT NULL THEN 'delivered'
                      ELSE 'sent' END,
        sent_at = CASE WHEN o.status = 'sent' THEN o.at ELSE m.sent_at END,
        touched_at = CASE WHEN o.status = 'sent' THEN o.at ELSE m.touched_at END,
        cap_at = CASE WHEN o.status = 'sent' THEN o.at END,
        send_at = coalesce(o.retry_at, m.send_at),
        provider_message_id = o.provider_id,
        error = o.error
    FROM unnest(%s::bigint[], %s::text[], %s::timestamptz[], %s::text[], %s::text[], %s::timestamptz[])
        AS o(id, status, at, provider_id, error, retry_at)
    WHERE m.id = ANY(%s::bigint[]) AND m.id = o.id AND m.status = 'sending'
    RETURNING m.id
"""


def _record(campaign: Campaign, outcomes: list[Outcome], result: SendResult) -> None:
    """Write outcomes in one statement; credit bonus points for the messages that became ``sent``.

    ``WHERE status = 'sending'``: an outcome for a message the sweeper already took back is dropped
    (it will be sent again with the same idempotency key, and recorded then).
    """
    if not outcomes:
        return
    from customers.loyalty.services import BonusGrant, points_bonus_grant

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            _RECORD,
            [
                [o.message_id for o in outcomes],
                [o.status for o in outcomes],
                [o.at for o in outcomes],
                [o.provider_id for o in outcomes],
                [o.error[:MAX_ERROR_LENGTH] for o in outcomes],
                [o.retry_at for o in outcomes],
                [o.message_id for o in outcomes],
            ],
        )
        recorded = {message_id for (message_id,) in cursor.fetchall()}
        grants = [
            BonusGrant(
                customer_id=o.customer_id,
                points=o.bonus_points,
                key=bonus_key(o.uuid),
                reason=f"Campaign offer: {campaign.name}",
            )
            for o in outcomes
            if o.bonus_points and o.status == MessageStatus.SENT and o.message_id in recorded
        ]
        if grants:
            points_bonus_grant(grants=grants)
    for o in outcomes:
        if o.message_id not in recorded:
            continue
        if o.status == MessageStatus.SENT:
            result.sent += 1
        elif o.status == MessageStatus.FAILED:
            result.failed += 1
        else:
            result.retried += 1


def _failed(row: dict[str, Any], at: dt.datetime, error: str) -> Outcome:
    return Outcome(row["id"], row["customer_id"], str(row["uuid"]), MessageStatus.FAILED, at, error=error)


def _transient(row: dict[str, Any], at: dt.datetime, error: str, retry_after: float | None = None) -> Outcome:
    """Back to the queue with exponential backoff (or after the ``retry_after`` seconds the provider
    asked for), or ``failed`` once the attempts are used up."""
    attempts = row["attempts"]
    if attempts >= MAX_SEND_ATTEMPTS:
        return Outcome(row["id"], row["customer_id"], str(row["uuid"]), MessageStatus.FAILED, at, error=error)
    return Outcome(
        row["id"],
        row["customer_id"],
        str(row["uuid"]),
        MessageStatus.QUEUED,
        at,
        error=error,
        retry_at=at + (retry_delay(attempts) if retry_after is None else dt.timedelta(seconds=retry_after)),
    )


# --- Send -----------------------------------------------------------------------------------------


def messages_send_batch(
    *, campaign_id: int, now: dt.datetime | None = None, batch_size: int | None = None
) -> SendResult:
    """Claim, check, render, send and record up to ``batch_size`` due messages of an active campaign.

    ``now`` fixes the clock (tests); by default each step reads the real time.
    """
    batch_size = batch_size or send_batch_size()
    result = SendResult(batch_size=batch_size)
    campaign = Campaign.objects.filter(pk=campaign_id).first()
    if campaign is None or campaign.status != CampaignStatus.ACTIVE:
        return result  # paused or archived: its queued messages wait
    ids = _claim(campaign=campaign, now=now or timezone.now(), batch_size=batch_size, result=result)
    if not ids:
        return result
    batch = _load_batch(campaign, ids, now or timezone.now())
    templates = _compile_contents(batch)
    broken = [row for row in batch.rows if isinstance(templates[_content_key(row)], ApplicationError)]
    if broken:  # saved templates are checked; this guards rows edited by hand
        at = now or timezone.now()
        _record(campaign, [_failed(row, at, templates[_content_key(row)].message) for row in broken], result)
        batch.rows = [row for row in batch.rows if row not in broken]

    def send_row(backend: Any, row: dict[str, Any]) -> Outcome:
        subject, body, footer = templates[_content_key(row)]
        return _send_one(batch, backend, row, subject, body, footer, now)

    by_channel: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in batch.rows:
        by_channel[row["channel"]].append(row)
    for channel, rows in by_channel.items():
        pending: list[Outcome] = []
        try:
            backend = backend_for(channel)
            backend.open()
        except Exception as error:  # misconfigured or unreachable: the whole group retries later
            at = now or timezone.now()
            _record(campaign, [_transient(row, at, f"{channel}: {error}") for row in rows], result)
            continue
        lanes = backend.connections if backend.confirm_each and not connection.in_atomic_block else 1
        if lanes > 1 and len(rows) > 1:  # (inside a caller's transaction other connections would not see the rows)
            _send_in_lanes(campaign, rows, backend, lanes, send_row, result)
            continue
        attempted = 0
        try:
            for row in rows:
                outcome = send_row(backend, row)
                attempted += 1
                pending.append(outcome)
                if backend.confirm_each:
                    _receipt(outcome)
        except SoftTimeLimitExceeded:
            # Out of time: what was not tried yet goes back to the queue now, not after the sweeper's wait.
            _release([row["id"] for row in rows[attempted:]])
            logger.warning(
                "campaign.send_time_limit", extra={"campaign_id": campaign.pk, "released": len(rows) - attempted}
            )
        finally:
            backend.close()
            _record(campaign, pending, result)
    logger.info(
        "campaign.sent",
        extra={"campaign_id": campaign.pk, "sent": result.sent, "failed": result.failed, "retried": result.retried},
    )
    return result


def _receipt(outcome: Outcome) -> None:
    """A sent message's receipt, before its connection sends again (``send_receipts``)."""
    if outcome.status == MessageStatus.SENT:
        send_receipt_write(message_id=outcome.message_id, sent_at=outcome.at, provider_id=outcome.provider_id)


def _send_in_lanes(
    campaign: Campaign,
    rows: list[dict[str, Any]],
    backend: Any,
    lanes: int,
    send_row: Callable[[Any, dict[str, Any]], Outcome],
    result: SendResult,
) -> None:
    """Send ``rows`` over ``lanes`` connections at once (``campaigns.channels.lanes``): each lane
    writes each sent message's receipt right after its send and its outcomes when it ends, so a
    dead worker leaves at most one sent-but-unreceipted message per connection. ``backend`` (open)
    is lane 0's; the others open their own, and a lane whose connection fails to open takes no
    message (the others carry the batch)."""
    channel = rows[0]["channel"]
    run: Lanes[dict[str, Any]] = Lanes(rows, count=lanes)
    results = [SendResult() for _ in range(run.count)]

    def lane(number: int, take: Callable[[], dict[str, Any] | None]) -> None:
        own = backend
        if number:
            try:
                own = backend_for(channel)
                own.open()
            except Exception:
                logger.warning("campaign.send_lane_unavailable", extra={"campaign_id": campaign.pk}, exc_info=True)
                return
        pending: list[Outcome] = []
        try:
            while (row := take()) is not None:
                pending.append(send_row(own, row))
                _receipt(pending[-1])
        finally:
            own.close()
            _record(campaign, pending, results[number])

    try:
        run.run(lane)
    except SoftTimeLimitExceeded:
        released = [row["id"] for row in run.untaken()]
        _release(released)
        logger.warning("campaign.send_time_limit", extra={"campaign_id": campaign.pk, "released": len(released)})
    finally:
        for lane_result in results:
            result.sent += lane_result.sent
            result.failed += lane_result.failed
            result.retried += lane_result.retried


def _content_key(row: dict[str, Any]) -> tuple[str, str]:
    return row["step_key"], row["variant_key"]


def _compile_contents(batch: Batch) -> dict[tuple[str, str], Any]:
    """Each (step, variant) of the batch compiled once: (subject, body, what the text gets added: the
    preference-centre link as the channel carries it, ``text_addition``), or the error."""
    compiled: dict[tuple[str, str], Any] = {}
    for row in batch.rows:
        key = _content_key(row)
        if key in compiled:
            continue
        step = message_step(batch, row)
        subject_source, body_source = step.content(row["variant_key"])
        try:
            compiled[key] = (
                template_compile(subject_source, "subject"),
                template_compile(body_source, "body"),
                text_addition(row["channel"], body_source),
            )
        except ApplicationError as error:
            compiled[key] = error
    return compiled


def _send_one(
    batch: Batch,
    backend: Any,
    row: dict[str, Any],
    subject: Any,
    body: Any,
    footer: PreferencesLink | None,
    now: dt.datetime | None,
) -> Outcome:
    message_uuid = str(row["uuid"])
    url = unsubscribe_url(message_uuid, batch.url_prefix)
    customer = _row_customer(row)
    try:
        context = message_context(batch, row, url)
        rendered_subject, text = render_all((subject, body), context, customer["timezone"])
        html = ""
        if row["channel"] == Channel.EMAIL:  # the HTML part in the shop's layout (SPEC §4.2)
            html, text = email_html_and_text(
                batch.content,
                key=_content_key(row),
                source=message_step(batch, row).html_content(row["variant_key"]),
                context=context,
                subject=" ".join(rendered_subject.split()),
                text=text,
                tz=customer["timezone"],
                message_uuid=message_uuid,
            )
        text = text_as_sent(text, footer, unsubscribe_url=url, preferences_url=context["preferences_url"])
        outgoing = Outgoing(
            uuid=message_uuid,
            channel=row["channel"],
            to=address_of(row["channel"], customer),
            customer=customer["external_id"],
            subject=" ".join(rendered_subject.split()),
            body=text,
            unsubscribe_url=url,
            campaign_id=batch.campaign.pk,
            html=html,
            preferences_url=context["preferences_url"],
        )
    except SoftTimeLimitExceeded:
        raise
    except BudgetExceeded as error:  # too slow or too long for this customer's data (SPEC §8)
        return _failed(row, now or timezone.now(), f"render: over budget: {error}")
    except Exception as error:  # a template that fails on this customer's data: it will fail again
        return _failed(row, now or timezone.now(), f"render: {error!r}")
    try:
        provider_id = backend.send(outgoing)
    except SoftTimeLimitExceeded:
        raise
    except PermanentError as error:
        if error.revoke_consent:  # e.g. the customer blocked the bot
            _consent_revoke(row)
        return _failed(row, now or timezone.now(), str(error))
    except TransientError as error:
        return _transient(row, now or timezone.now(), str(error), error.retry_after)
    except Exception as error:  # unknown: treat as transient, bounded by MAX_SEND_ATTEMPTS
        logger.warning("campaign.send_error", extra={"message_id": row["id"]}, exc_info=True)
        return _transient(row, now or timezone.now(), f"{type(error).__name__}: {error}")
    return Outcome(
        row["id"],
        row["customer_id"],
        message_uuid,
        MessageStatus.SENT,
        now or timezone.now(),
        provider_id=provider_id or "",
        bonus_points=int(message_step(batch, row).offer.get("bonus_points") or 0),
    )


def _consent_revoke(row: dict[str, Any]) -> None:
    """The provider says the customer turned the channel off: record it as their revocation."""
    from customers.models import ConsentSource, Customer
    from customers.services import consent_set

    customer = Customer.objects.get(pk=row["customer_id"])
    consent_set(customer=customer, channel=row["channel"], granted=False, source=ConsentSource.PROVIDER)


def _release(ids: list[int]) -> None:
    """Claimed messages that were not attempted: back to the queue at once."""
    if ids:
        Message.objects.filter(pk__in=ids, status=MessageStatus.SENDING).update(
            status=MessageStatus.QUEUED, cap_at=None, send_at=timezone.now()
        )


# --- Housekeeping -----------------------------------------------------------------------------------


def messages_requeue_stale(*, older_than: dt.timedelta | None = None, now: dt.datetime | None = None) -> int:
    """Put messages a dead worker left in ``sending`` back in the queue, and start senders for them;
    those with a send receipt went out and become ``sent`` instead (``send_receipts``). Returns how
    many it took back, either way.

    The re-send carries the same UUID, so a provider honouring the idempotency key delivers once
    even if the dead worker's last message had gone out.
    """
    now = now or timezone.now()
    cutoff = now - (sending_stale_after() if older_than is None else older_than)
    # Those whose send has a receipt went out: they are completed, not sent again.
    completed = messages_complete_receipted(claimed_before=cutoff)
    if completed:
        logger.warning("campaign.completed_stale", extra={"messages": completed})
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE campaigns_message SET status = 'queued', send_at = %s, cap_at = NULL,"
                " error = 'requeued: its sender stopped while sending'"
                " WHERE status = 'sending' AND claimed_at <= %s RETURNING campaign_id",
                [now, cutoff],
            )
            per_campaign: dict[int, int] = defaultdict(int)
            for (campaign_id,) in cursor.fetchall():
                per_campaign[campaign_id] += 1
        for campaign_id, count in per_campaign.items():
            sends_enqueue(campaign_id=campaign_id, due=count)
    total = sum(per_campaign.values())
    if total:
        logger.warning("campaign.requeued_stale", extra={"messages": total, "campaigns": len(per_campaign)})
    return total + completed


def messages_dispatch_due(*, now: dt.datetime | None = None) -> dict[int, int]:
    """Start senders for every active campaign with due messages (beat, every minute).

    The queue of record is the database: tasks lost with a broker restart, deferred messages coming
    due, retries after backoff — this finds them all.
    """
    now = now or timezone.now()
    limit = send_batch_size() * SEND_FANOUT_MAX
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT campaign.id, (SELECT count(*) FROM (SELECT 1 FROM campaigns_message m"
            "   WHERE m.campaign_id = campaign.id AND m.status = 'queued' AND m.send_at <= %s LIMIT %s) due)"
            " FROM campaigns_campaign campaign WHERE campaign.status = 'active'",
            [now, limit],
        )
        due = {campaign_id: count for campaign_id, count in cursor.fetchall() if count}
    with transaction.atomic():
        for campaign_id, count in due.items():
            sends_enqueue(campaign_id=campaign_id, due=count)
    return due


def messages_expire_stale(*, now: dt.datetime | None = None, max_age: dt.timedelta = MESSAGE_MAX_AGE) -> int:
    """Suppress (``expired``) queued messages that should have gone out more than ``max_age`` ago,
    e.g. those of a campaign paused for weeks: a reminder that late does more harm than good."""
    now = now or timezone.now()
    return Message.objects.filter(status=MessageStatus.QUEUED, send_at__lt=now - max_age).update(
        status=MessageStatus.SUPPRESSED, reason=SuppressionReason.EXPIRED
    )
