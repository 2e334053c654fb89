"""The shop's history, recorded the way the product records it.

1. ``orders_record`` and ``answers_record``: the planned orders go through the bulk purchase
   service, oldest first (stats, cart conversion, points, tiers, referral bonuses, attribution),
   and the NPS answers through the NPS service (with its review bonus).
2. ``CampaignHistory``: four campaigns are created through the campaign service and replayed day
   by day over the last ``days`` days. Each run evaluates the campaign at that moment
   (``campaign_evaluate(now=...)``: the trigger's SQL, the control group, quiet hours, the
   frequency cap) and sends its due messages through the real sender
   (``messages_send_batch(now=...)``: consent checked again, templates rendered, offers credited)
   with a channel backend that delivers nothing, since these sends belong to the past. Customers
   respond: some unsubscribe between selection and send (the sender suppresses those messages),
   providers report deliveries, opens and clicks, NPS requests get answers, and the customers
   of both groups buy in the attribution window, the treated ones more often: the impact report
   then shows an uplift the way a real campaign would.

Where the replay is coarser than the product, and why (each run costs a few statements, and
``make run`` must start in seconds):

- The beat evaluates every active campaign every few minutes; the replay runs each campaign on
  its own schedule at ``RUN_TIME``: birthdays daily (their window is a day), post-purchase
  surveys every other day (orders of the other days get none), abandoned carts every three days
  (a cart stays eligible for four), the win-back weekly. Messages kept back by quiet hours go
  out in one more pass that day, at the latest of their release times.
- The orders the shoppers plan are all recorded before the replay, so at each run a customer's
  stats already hold their later orders too: the triggers that read them (abandoned cart,
  reactivation) select only customers who did not come back by themselves, a subset of those the
  product would have selected then. Birthday and post-purchase select exactly.
- The responses are recorded weekly, before the runs that could select them (post-purchase,
  seven days on); orders recorded before the campaigns existed are attributed at the end.
"""

import datetime as dt
import hashlib
import random
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

from django.db import connection
from django.db.models import Count, Exists, Max, OuterRef, Q, Subquery
from django.test.utils import override_settings
from django.utils import timezone

from campaigns.attribution import purchases_attribute
from campaigns.channels import ChannelBackend, Outgoing, PermanentError
from campaigns.models import SENT_STATUSES, Attribution, Campaign, Message, MessageStatus
from campaigns.services import (
    ProviderEvent,
    campaign_create,
    campaign_evaluate,
    messages_send_batch,
    provider_events_record,
)
from customers.demo.shoppers import (
    CART_PREFIX,
    PURCHASE_PREFIX,
    PlannedAnswer,
    PlannedPurchase,
    Shoppers,
    nps_answer_draw,
)
from customers.models import Cart, CartStatus, Channel, ConsentSource, Customer, Purchase, PurchaseStatus
from customers.services import consent_set, nps_record, purchases_record_bulk
from customers.services.bulk import MAX_BULK_PURCHASES

RUN_TIME = dt.time(9, 30)  # each day's runs, store time (in UTC: Europe, Asia and Australia are awake)
SEND_DELAY = dt.timedelta(minutes=5)  # from evaluation to the sender's pass
RESPONSES_EVERY_DAYS = 7  # how often the customers' responses are recorded during the replay
UNSUBSCRIBE_BEFORE_SEND = 0.03  # selected customers who opt out before their message goes out
DELIVERED_RATE = 0.97
OPENED_RATE = 0.4  # of those delivered
CLICKED_RATE = 0.2  # of those opened
FAILED_PER_MILLE = 8  # addresses the demo's provider refuses for good (no such mailbox)
EVENTS_BATCH = 1_000
ANALYZE_AFTER_DAYS = (0, 7, 30)  # the message table's statistics, refreshed as it grows


@dataclass(frozen=True)
class DemoCampaign:
    """A campaign (the SPEC §6 campaign shape), how often the replay runs it, and how its audience
    behaves: ``organic`` is the chance a customer buys within the attribution window anyway,
    ``lift`` what the message adds for the treated; ``answers`` the share answering its NPS question."""

    data: dict[str, Any]
    every_days: int
    organic: float
    lift: float
    answers: float = 0.0


DEMO_CAMPAIGNS = (
    DemoCampaign(
        data={
            "name": "Abandoned cart reminder",
            "trigger": "abandoned_cart",
            "status": "active",
            "channel": Channel.EMAIL,
            "subject": "{{ customer.first_name }}, your cart is waiting",
            "body": (
                "Hi {{ customer.first_name }},\n\nyou left these in your cart:\n"
                "{% for item in cart.items %}- {{ item.quantity }} x {{ item.name }}: {{ item.total }}\n{% endfor %}"
                "\nComplete your order today with {{ offer.discount_percent }} % off, code {{ offer.discount_code }}.\n"
            ),
            "params": {"delay_hours": 1, "max_age_hours": 96},
            "offer": {"discount_percent": 10, "code_prefix": "CART"},
            "holdout_percent": 20,
            "attribution_days": 3,
        },
        every_days=3,  # a cart stays eligible for 96 hours: a run every three days reaches each one
        organic=0.1,
        # Carts are few a day and a fifth are held out: at a smaller lift the control comparison's
        # p-value crosses 0.05 on some days the demo is seeded on (0.18 gave 0.068).
        lift=0.3,
    ),
    DemoCampaign(
        data={
            "name": "Win-back: we miss you",
            "trigger": "reactivation",
            "status": "active",
            "channel": Channel.EMAIL,
            "subject": "We miss you, {{ customer.first_name }}: 15 % off your next order",
            "body": (
                "Hi {{ customer.first_name }},\n\nit has been a while since your last order"
                " ({{ customer.last_purchase_at|date:'j F Y' }}). Here is {{ offer.discount_percent }} % off"
                " to welcome you back: {{ offer.discount_code }}.\n"
            ),
            "params": {"inactive_days": 90, "max_inactive_days": 365},
            "offer": {"discount_percent": 15, "code_prefix": "BACK"},
            "holdout_percent": 20,
            "attribution_days": 14,
        },
        every_days=7,  # a weekly sweep: one message per customer and last purchase
        organic=0.05,
        lift=0.2,
    ),
    DemoCampaign(
        data={
            "name": "Happy birthday",
            "trigger": "birthday",
            "status": "active",
            "channel": Channel.EMAIL,
            "subject": "Happy birthday, {{ customer.first_name }}!",
            "body": (
                "Happy birthday, {{ customer.first_name }}!\n\nOur gift: {{ offer.bonus_points }} points,"
                " added to your account today. Spend them on anything in the shop.\n"
            ),
            "params": {"days_before": 0},
            "offer": {"bonus_points": 200},
            "holdout_percent": 25,
            "attribution_days": 7,
        },
        every_days=1,
        # Few birthdays a day, so the control group is a few dozen: at 8 % organic it went without a
        # single conversion now and then; a clear effect keeps the control comparison significant.
        organic=0.15,
        lift=0.4,
    ),
    DemoCampaign(
        data={
            "name": "Post-purchase NPS survey",
            "trigger": "post_purchase",
            "status": "active",
            "channel": Channel.EMAIL,
            "subject": "How did we do, {{ customer.first_name }}?",
            "body": (
                "Hi {{ customer.first_name }},\n\nthank you for your order {{ purchase.external_id }}."
                " How likely are you to recommend us to a friend, from 0 to 10? Just reply with a number.\n"
                "\nAs a thank-you, {{ offer.discount_percent }} % off your next order: {{ offer.discount_code }}.\n"
            ),
            "params": {"days_after": 7},
            "offer": {"discount_percent": 10, "code_prefix": "THANKS"},
            "holdout_percent": 30,
            "attribution_days": 7,
        },
        every_days=2,  # orders of every other day: the others' would make the demo slower, not richer
        organic=0.06,
        lift=0.25,
        answers=0.25,
    ),
    # A journey (SPEC §4.1): a welcome, three days, then an A/B-tested nudge towards the first
    # order; a purchase on the way ends it.
    DemoCampaign(
        data={
            "name": "Welcome series",
            "trigger": "welcome",
            "status": "active",
            "channel": Channel.EMAIL,
            "params": {"delay_hours": 0, "max_age_days": 7},
            "holdout_percent": 20,
            "attribution_days": 7,
            "exit_on": "purchase",
            "reentry": "never",
            "steps": [
                {
                    "key": "welcome",
                    "type": "message",
                    "subject": "Welcome, {{ customer.first_name }}",
                    "body": "Hi {{ customer.first_name }},\n\nthank you for joining us. Here is what is new.\n",
                },
                {"key": "three-days", "type": "wait", "minutes": 4320},
                {
                    "key": "first-order",
                    "type": "message",
                    "offer": {"bonus_points": 100},
                    "variants": [
                        {
                            "key": "points",
                            "weight": 1,
                            "subject": "{{ offer.bonus_points }} points for your first order",
                            "body": "Hi {{ customer.first_name }},\n\n{{ offer.bonus_points }} points are waiting.\n",
                        },
                        {
                            "key": "named",
                            "weight": 1,
                            "subject": "{{ customer.first_name }}, your first order is on us (almost)",
                            "body": "Hi {{ customer.first_name }},\n\n{{ offer.bonus_points }} points are waiting.\n",
                        },
                    ],
                },
            ],
        },
        every_days=1,  # new sign-ups every day, and the three-day wait ends on any day
        organic=0.08,
        lift=0.15,
    ),
)
# Ready to start, not running: shows a draft and the points-expiring trigger.
DRAFT_CAMPAIGN = {
    "name": "Your points expire soon",
    "trigger": "points_expiring",
    "status": "draft",
    "channel": Channel.EMAIL,
    "subject": "{{ points.expiring }} points expire soon",
    "body": (
        "Hi {{ customer.first_name }},\n\n{{ points.expiring }} of your {{ points.balance }} points expire on"
        " {{ points.expiring_at|date:'j F' }}. Use them on your next order.\n"
    ),
    "params": {"days_ahead": 14},
    "holdout_percent": 10,
}


class PastSendsChannel(ChannelBackend):
    """The replay's provider: delivers nothing, since the messages it is given were sent in the
    past. Like a real provider it refuses a few addresses for good (no such mailbox)."""

    confirm_each = False

    def __init__(self, **options: object) -> None:
        pass

    def send(self, message: Outgoing) -> str:
        if int(hashlib.md5(message.to.encode()).hexdigest()[:8], 16) % 1000 < FAILED_PER_MILLE:
            raise PermanentError("550 5.1.1 mailbox unavailable")
        return f"demo-{message.uuid}"


@contextmanager
def past_sends() -> Iterator[None]:
    """Route every channel to ``PastSendsChannel`` while the history is replayed (the settings
    name each channel's backend; whatever the operator configured stays untouched)."""
    backend = f"{PastSendsChannel.__module__}.{PastSendsChannel.__qualname__}"
    with override_settings(CAMPAIGN_CHANNELS={channel: {"BACKEND": backend} for channel in Channel.values}):
        yield


def orders_record(planned: list[PlannedPurchase], tick: Callable[[int], None] = lambda n: None) -> int:
    """Record orders through the bulk purchase service, oldest first; returns how many."""
    ordered = sorted(planned, key=lambda p: (p.placed_at, p.data["external_id"]))
    for start in range(0, len(ordered), MAX_BULK_PURCHASES):
        batch = ordered[start : start + MAX_BULK_PURCHASES]
        results = purchases_record_bulk(raw_purchases=[p.data for p in batch])
        refused = [result for result in results if result.status != "created"]
        if refused:  # the demo's own data: a refusal is a bug in the demo, not something to skip
            raise RuntimeError(f"demo order {refused[0].external_id} was not recorded: {refused[0].error}")
        tick(len(batch))
    return len(ordered)


def answers_record(answers: list[PlannedAnswer]) -> int:
    for answer in sorted(answers, key=lambda a: (a.answered_at, a.customer)):
        nps_record(customer=answer.customer, score=answer.score, comment=answer.comment, answered_at=answer.answered_at)
    return len(answers)


def orders_backdate(*, now: dt.datetime) -> None:
    """Times the services stamp with the moment of recording, written back to the time they stand
    for, since this history is recorded long after it happened: a cart's conversion is the first
    completed purchase after its last change, and a refund or cancellation came 2-13 days after
    the order. (No service takes a past time for these.)"""
    later = Purchase.objects.filter(
        customer=OuterRef("customer"), status=PurchaseStatus.COMPLETED, placed_at__gt=OuterRef("updated_at")
    )
    Cart.objects.filter(Exists(later), external_id__startswith=CART_PREFIX, status=CartStatus.CONVERTED).update(
        converted_at=Subquery(later.order_by("placed_at").values("placed_at")[:1])
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE customers_purchase SET status_changed_at ="
            " LEAST(%s, placed_at + (2 + id %% 12) * interval '1 day')"
            " WHERE external_id LIKE %s AND status <> %s",
            [now, f"{PURCHASE_PREFIX}%", PurchaseStatus.COMPLETED],
        )


@dataclass
class HistoryCounts:
    campaigns: int = 0
    runs: int = 0
    responses: int = 0
    answers: int = 0
    events: int = 0
    unsubscribed: int = 0
    attributed: int = 0
    statuses: Counter[str] = field(default_factory=Counter)  # messages by status, filled by run()


class CampaignHistory:
    """Creates the demo campaigns and replays ``days`` days of them; one instance per seed."""

    def __init__(self, *, shoppers: Shoppers, rng: random.Random, now: dt.datetime, days: int) -> None:
        self.shoppers = shoppers
        self.rng = rng
        self.now = now
        self.days = days
        self.campaigns: dict[int, DemoCampaign] = {}
        self.responses: list[PlannedPurchase] = []
        self.answers: list[PlannedAnswer] = []
        self.events: list[ProviderEvent] = []
        self.counts = HistoryCounts()

    def run_days(self) -> list[dt.datetime]:
        """Each day's run time (store time) over the history, oldest first, all before now."""
        tz = timezone.get_default_timezone()
        today = self.now.astimezone(tz).date()
        times = [
            timezone.make_aware(dt.datetime.combine(today - dt.timedelta(days=n), RUN_TIME), tz)
            for n in range(self.days, -1, -1)
        ]
        return [t for t in times if t + SEND_DELAY < self.now]

    def run(
        self, *, tick: Callable[[int], None] = lambda n: None, analyze: Callable[[], None] = lambda: None
    ) -> HistoryCounts:
        """Create the campaigns and replay them; ``tick`` after each day, ``analyze`` to refresh the
        message table's statistics as it grows from nothing."""
        started = self.now - dt.timedelta(days=self.days + 1)
        for demo in DEMO_CAMPAIGNS:
            campaign = campaign_create(data=demo.data)
            self.campaigns[campaign.pk] = demo
        campaign_create(data=DRAFT_CAMPAIGN)
        # Created before the history they run through (the service stamps the time of the call).
        Campaign.objects.filter(pk__in=list(self.campaigns)).update(created_at=started)
        self.counts.campaigns = len(self.campaigns) + 1
        with past_sends():
            for day, at in enumerate(self.run_days()):
                due = [pk for pk, demo in self.campaigns.items() if day % demo.every_days == 0]
                self._day(at, due)
                if day % RESPONSES_EVERY_DAYS == RESPONSES_EVERY_DAYS - 1:
                    self._responses_record(until=at + dt.timedelta(days=1))
                if day in ANALYZE_AFTER_DAYS:
                    analyze()
                tick(1)
        self._responses_record(until=self.now)
        self.counts.answers = answers_record([a for a in self.answers if a.answered_at < self.now])
        for start in range(0, len(self.events), EVENTS_BATCH):
            provider_events_record(events=self.events[start : start + EVENTS_BATCH])
        self.counts.events = len(self.events)
        # The orders recorded before the campaigns ran: attributed now that the messages exist.
        campaign_orders = Purchase.objects.filter(
            external_id__startswith=PURCHASE_PREFIX, status=PurchaseStatus.COMPLETED, placed_at__gte=started
        )
        purchases_attribute(purchase_ids=list(campaign_orders.values_list("pk", flat=True)))
        self.counts.attributed = Attribution.objects.filter(campaign_id__in=list(self.campaigns)).count()
        self.counts.statuses = Counter(
            dict(
                Message.objects.filter(campaign_id__in=list(self.campaigns))
                .order_by()
                .values_list("status")
                .annotate(n=Count("pk"))
                .values_list("status", "n")
            )
        )
        return self.counts

    # --- one day ----------------------------------------------------------------------------------

    def _day(self, at: dt.datetime, due: list[int]) -> None:
        """One day: the campaigns due run at ``at`` and their messages go out minutes later; then
        one more pass per campaign for the messages quiet hours kept back until later that day."""
        sending, created, queued = [], 0, 0
        for campaign_id in due:
            result = campaign_evaluate(campaign_id=campaign_id, now=at)
            self.counts.runs += 1
            created += result.queued + result.deferred + result.held_out
            queued += result.queued + result.deferred
            if result.queued + result.deferred:
                sending.append(campaign_id)
        self._unsubscribe_before_send(at, queued)
        passes = [at + SEND_DELAY]
        for campaign_id in sending:
            self._send(campaign_id, at + SEND_DELAY)
        # Kept back until their customers' morning (or a slot under the frequency cap) before the
        # next day's runs: one pass at the latest of those times sends them all, since a run's
        # quiet-hour releases lie within twelve hours of each other.
        later = (
            Message.objects.filter(
                campaign_id__in=list(self.campaigns),
                status=MessageStatus.QUEUED,
                send_at__lt=at + dt.timedelta(days=1),
            )
            .order_by("campaign_id")
            .values_list("campaign_id")
            .annotate(last=Max("send_at"))
            .values_list("campaign_id", "last")
        )
        for campaign_id, last in later:
            send_at = max(last, at + SEND_DELAY)
            if send_at < self.now:  # later ones are still waiting: the demo's queue
                self._send(campaign_id, send_at)
                passes.append(send_at)
        if created or len(passes) > 1:
            self._outcomes(at, passes)

    def _send(self, campaign_id: int, at: dt.datetime) -> None:
        while messages_send_batch(campaign_id=campaign_id, now=at).full:
            pass

    def _unsubscribe_before_send(self, at: dt.datetime, queued: int) -> None:
        """A few customers selected at ``at`` opt out before the sender reaches them (in the shop's
        account settings); the sender's consent check then suppresses their messages."""
        leaving = sum(self.rng.random() < UNSUBSCRIBE_BEFORE_SEND for _ in range(queued))
        if not leaving:
            return
        candidates = list(
            Message.objects.filter(campaign_id__in=list(self.campaigns), created_at=at, status=MessageStatus.QUEUED)
            .order_by("pk")
            .values_list("customer_id", "channel")
        )
        chosen = self.rng.sample(candidates, min(leaving, len(candidates)))
        customers = Customer.objects.in_bulk([customer_id for customer_id, _ in chosen])
        for customer_id, channel in chosen:
            consent_set(
                customer=customers[customer_id],
                channel=channel,
                granted=False,
                source=ConsentSource.API,
                at=at + SEND_DELAY / 2,
            )
        self.counts.unsubscribed += len(chosen)

    def _outcomes(self, at: dt.datetime, passes: list[dt.datetime]) -> None:
        """What the customers reached at this run do: providers' events, answers, purchases."""
        touched = (
            Message.objects.filter(campaign_id__in=list(self.campaigns))
            .filter(Q(status=MessageStatus.HELD_OUT, created_at=at) | Q(status__in=SENT_STATUSES, sent_at__in=passes))
            .order_by("pk")
            .values_list("uuid", "campaign_id", "customer__external_id", "status", "touched_at", "cart_id", "channel")
        )
        rng = self.rng
        for message_uuid, campaign_id, customer, status, at_touched, cart_id, channel in touched:
            # Read just after they were sent or held out, both of which set touched_at.
            touched_at = cast(dt.datetime, at_touched)
            demo = self.campaigns[campaign_id]
            treated = status != MessageStatus.HELD_OUT
            window = dt.timedelta(days=demo.data["attribution_days"])
            bought_at: dt.datetime | None = None
            if rng.random() < demo.organic + (demo.lift if treated else 0.0):
                # Most responses come soon after the message, a few late in the window.
                delay = min(rng.expovariate(3 / window.total_seconds()), 0.95 * window.total_seconds())
                bought_at = (touched_at + dt.timedelta(seconds=max(600, delay))).replace(microsecond=0)
                if bought_at < self.now:
                    self._buy(customer, bought_at, cart_id)
            if not treated:
                continue
            answered_at: dt.datetime | None = None
            if demo.answers and rng.random() < demo.answers:
                answered_at = touched_at + dt.timedelta(hours=rng.uniform(0.5, 72))
                if answered_at < self.now:
                    score, comment = nps_answer_draw(rng)
                    self.answers.append(PlannedAnswer(answered_at, customer, score, comment))
            if channel == Channel.EMAIL:
                self._email_events(message_uuid, touched_at, bought_at or answered_at)

    def _buy(self, customer: str, placed_at: dt.datetime, cart_id: int | None) -> None:
        cart = self.shoppers.cart_lines.get(cart_id) if cart_id is not None else None
        if cart is not None:  # the reminded cart, bought as it was
            external_id, lines = cart
            order = self.shoppers.order(customer=customer, placed_at=placed_at, lines=lines, cart=external_id)
        else:
            order = self.shoppers.order(customer=customer, placed_at=placed_at, lines=self.shoppers.basket(customer))
        self.responses.append(order)

    def _email_events(self, message_uuid: Any, sent_at: dt.datetime, acted_at: dt.datetime | None) -> None:
        """What the provider reports, its last word per message: delivered, opened or clicked. A
        customer who bought or answered after the message clicked it first."""
        rng = self.rng
        if rng.random() >= DELIVERED_RATE:
            return
        at = sent_at + dt.timedelta(seconds=rng.uniform(2, 120))
        event = "delivered"
        if acted_at is not None and acted_at < self.now:
            event, at = "clicked", at + (acted_at - at) * rng.uniform(0.1, 0.9)
        elif rng.random() < OPENED_RATE:
            event, at = "opened", at + dt.timedelta(minutes=rng.expovariate(1 / 240))
            if rng.random() < CLICKED_RATE:
                event, at = "clicked", at + dt.timedelta(minutes=rng.uniform(0.2, 5))
        if at >= self.now:
            event, at = "delivered", sent_at
        self.events.append(ProviderEvent(message_uuid=message_uuid, event=event, at=at))

    def _responses_record(self, *, until: dt.datetime) -> None:
        due = [order for order in self.responses if order.placed_at < until]
        if due:
            self.responses = [order for order in self.responses if order.placed_at >= until]
            self.counts.responses += orders_record(due)
