"""Campaigns and the message ledger (SPEC §4).

A ``Message`` row is the one record of everything a campaign decided about a customer: queued,
held out for the control group, suppressed, sent, failed, delivered... Its ``(campaign, dedupe_key)``
is unique, which is what makes evaluation idempotent ("one message per key, ever"); its ``uuid`` is
the idempotency key handed to the provider (Message-ID for email, ``Idempotency-Key`` over HTTP).

Invariants live here as constraints; the rules live in ``campaigns/services``.
"""

import datetime as dt
import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.timezone import now

from customers.models import Cart, Channel, Customer, Purchase


class Trigger(models.TextChoices):
    ABANDONED_CART = "abandoned_cart", "Abandoned cart"
    REACTIVATION = "reactivation", "Reactivation"
    BIRTHDAY = "birthday", "Birthday"
    WELCOME = "welcome", "Welcome"
    POST_PURCHASE = "post_purchase", "Post-purchase (review / NPS)"
    POINTS_EXPIRING = "points_expiring", "Points expiring"
    CHURN_RISK = "churn_risk", "Churn risk"


class CampaignStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    ACTIVE = "active", "Active"
    PAUSED = "paused", "Paused"
    ARCHIVED = "archived", "Archived"


class MessageStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    HELD_OUT = "held_out", "Held out (control group)"
    SUPPRESSED = "suppressed", "Suppressed"
    DELIVERED = "delivered", "Delivered"
    OPENED = "opened", "Opened"
    CLICKED = "clicked", "Clicked"


# A message in one of these reached the provider: it counts as sent everywhere (cap, attribution, impact).
SENT_STATUSES = (MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.OPENED, MessageStatus.CLICKED)


class SuppressionReason(models.TextChoices):
    NO_CONSENT = "no_consent", "Consent revoked since selection"
    FREQUENCY_CAP = "frequency_cap", "Frequency cap"
    NO_ADDRESS = "no_address", "No address for the channel"
    EXPIRED = "expired", "Not sent in time"
    GOAL = "goal", "The customer bought before it went out"
    EXITED = "exited", "Its journey entry ended before it went out"
    TOPIC_OPT_OUT = "topic_opt_out", "Opted out of the campaign's topic"


class ExitOn(models.TextChoices):
    PURCHASE = "purchase", "A purchase after entry"
    NONE = "none", "Nothing (walk every step)"


class EntryState(models.TextChoices):
    ACTIVE = "active", "In the journey"
    COMPLETED = "completed", "Completed"
    EXITED = "exited", "Exited"


class ExitReason(models.TextChoices):
    GOAL = "goal", "Goal reached (a purchase)"
    SPLIT = "split", "A split sent it out"
    NO_CONSENT = "no_consent", "Consent revoked"
    ERASED = "erased", "Customer erased"
    ARCHIVED = "archived", "Campaign archived"
    STEP_REMOVED = "step_removed", "Its step was removed"


HOLDOUT_PERCENT_MAX = 50
ATTRIBUTION_DAYS_MAX = 365
DEDUPE_KEY_MAX_LENGTH = 200


class Campaign(models.Model):
    name = models.CharField(max_length=200)
    trigger = models.CharField(max_length=32, choices=Trigger.choices)
    status = models.CharField(max_length=16, choices=CampaignStatus.choices, default=CampaignStatus.DRAFT)
    channel = models.CharField(max_length=16, choices=Channel.choices, default=Channel.EMAIL)
    subject = models.TextField(blank=True, default="", help_text="Template; the email subject or push title")
    body = models.TextField(help_text="Template (Django template language, sandboxed)")
    # HTML email (SPEC §4.2): rendered into the shop's EmailLayout; "" sends text only.
    body_html = models.TextField(blank=True, default="", help_text="Template of the HTML part of an email")
    topic = models.ForeignKey(
        "campaigns.Topic", null=True, blank=True, on_delete=models.PROTECT, related_name="campaigns", db_index=False
    )
    params = models.JSONField(default=dict, blank=True, help_text="Trigger parameters; {} means the defaults")
    audience = models.JSONField(default=dict, blank=True, help_text="Audience filter; {} means everyone eligible")
    offer = models.JSONField(default=dict, blank=True, help_text='e.g. {"bonus_points": 100}')
    holdout_percent = models.PositiveSmallIntegerField(default=10, help_text="Control group share, 0-50 %")
    attribution_days = models.PositiveSmallIntegerField(default=7, help_text="Purchases this many days after count")
    # The journey (SPEC §4.1, campaigns/journey.py); [] means one message step of the fields above.
    steps = models.JSONField(default=list, blank=True, help_text="Journey steps; [] means one message")
    exit_on = models.CharField(max_length=16, choices=ExitOn.choices, default=ExitOn.PURCHASE)
    # None: never re-enter; N: a new entry N days after the previous one ended (0: per dedupe key).
    reentry_after_days = models.PositiveSmallIntegerField(null=True, blank=True, default=0)
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(auto_now=True)
    last_evaluated_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-id"]
        permissions = [
            ("run_campaign", "Can run a campaign now"),
            ("send_test_campaign", "Can send a campaign test to a staff address"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(trigger__in=Trigger.values), name="campaign_trigger_valid"),
            models.CheckConstraint(condition=Q(status__in=CampaignStatus.values), name="campaign_status_valid"),
            models.CheckConstraint(condition=Q(channel__in=Channel.values), name="campaign_channel_valid"),
            models.CheckConstraint(
                condition=Q(holdout_percent__gte=0) & Q(holdout_percent__lte=HOLDOUT_PERCENT_MAX),
                name="campaign_holdout_0_50",
            ),
            models.CheckConstraint(
                condition=Q(attribution_days__gte=1) & Q(attribution_days__lte=ATTRIBUTION_DAYS_MAX),
                name="campaign_attribution_days_1_365",
            ),
            models.CheckConstraint(condition=~Q(name=""), name="campaign_name_not_empty"),
            models.CheckConstraint(condition=Q(exit_on__in=ExitOn.values), name="campaign_exit_on_valid"),
        ]
        indexes = [models.Index(fields=["status"], name="campaign_status_idx")]

    def __str__(self) -> str:
        return self.name


class ContactPolicy(models.Model):
    """How often and when customers may be contacted, across all campaigns. One record, edited by staff.

    Defaults (SPEC §4): at most 3 sent marketing messages per customer in any rolling 7 days; a
    message over the cap waits up to 48 hours, then is suppressed; nothing goes out between 21:00
    and 09:00 in the customer's own time zone.
    """

    SINGLETON_ID = 1

    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON_ID, editable=False)
    max_messages = models.PositiveSmallIntegerField(default=3, help_text="Sent messages per customer per window")
    cap_days = models.PositiveSmallIntegerField(default=7, help_text="The rolling window of the cap, in days")
    max_defer_hours = models.PositiveSmallIntegerField(
        default=48, help_text="How long a message over the cap may wait before it is suppressed"
    )
    quiet_hours_start = models.TimeField(default=dt.time(21, 0), help_text="Customer's local time; equal to end: off")
    quiet_hours_end = models.TimeField(default=dt.time(9, 0))
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "contact policy"
        verbose_name_plural = "contact policy"
        constraints = [
            models.CheckConstraint(condition=Q(id=1), name="contact_policy_singleton"),
            models.CheckConstraint(condition=Q(max_messages__gte=1), name="contact_policy_max_messages_gte_1"),
            models.CheckConstraint(condition=Q(cap_days__gte=1), name="contact_policy_cap_days_gte_1"),
        ]

    def __str__(self) -> str:
        return "Contact policy"


class Entry(models.Model):
    """One walk of a customer through a campaign's journey: one per trigger dedupe key (SPEC §4.1).

    ``step_key`` is the step the entry is at and ``next_at`` when that step is due (a wait's end);
    advancing moves due entries step by step. ``held_out`` is decided once, at entry.
    """

    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="entries", db_index=False)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="+", db_index=False)
    dedupe_key = models.CharField(max_length=DEDUPE_KEY_MAX_LENGTH)
    held_out = models.BooleanField(default=False)
    state = models.CharField(max_length=16, choices=EntryState.choices, default=EntryState.ACTIVE)
    step_key = models.CharField(max_length=40, help_text="The step it is at (the last one, once ended)")
    next_at = models.DateTimeField(null=True, blank=True, help_text="When its step is due; empty once ended")
    entered_at = models.DateTimeField(default=now)
    ended_at = models.DateTimeField(null=True, blank=True)
    exit_reason = models.CharField(max_length=32, blank=True, default="", choices=ExitReason.choices)
    cart = models.ForeignKey(Cart, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False)
    purchase = models.ForeignKey(
        Purchase, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    data = models.JSONField(default=dict, blank=True, help_text="Facts of the trigger at entry")

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "entries"
        constraints = [
            models.UniqueConstraint(fields=["campaign", "dedupe_key"], name="entry_one_per_dedupe_key"),
            # Never two open entries of one campaign for one customer.
            models.UniqueConstraint(
                fields=["campaign", "customer"], condition=Q(state="active"), name="entry_one_open_per_customer"
            ),
            models.CheckConstraint(condition=Q(state__in=EntryState.values), name="entry_state_valid"),
            models.CheckConstraint(
                condition=Q(state="active", next_at__isnull=False, ended_at__isnull=True)
                | (~Q(state="active") & Q(ended_at__isnull=False)),
                name="entry_open_has_next_at",
            ),
        ]
        indexes = [
            # Advancing: due entries of a campaign's step.
            models.Index(fields=["campaign", "step_key", "next_at"], condition=Q(state="active"), name="entry_due_idx"),
            # Re-entry, goal exits, erase and the customer's journeys.
            models.Index(fields=["customer", "campaign"], name="entry_customer_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id}/{self.dedupe_key}: {self.state} at {self.step_key}"


class StepCount(models.Model):
    """How many entries arrived at each step of a journey, kept by the statements that move them
    (the ledger has a row per message, not per wait or split passed)."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="step_counts", db_index=False)
    step_key = models.CharField(max_length=40)
    entered = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["campaign", "step_key"], name="step_count_one_per_step")]

    def __str__(self) -> str:
        return f"{self.campaign_id}/{self.step_key}: {self.entered}"


class VariantWinner(models.Model):
    """The variant an ``auto_winner`` message step picked, with the figures it was picked on."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="winners")
    step_key = models.CharField(max_length=40)
    variant_key = models.CharField(max_length=40)
    decided_at = models.DateTimeField(default=now)
    figures = models.JSONField(default=dict, help_text="Sent, converted and the test against each other variant")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["campaign", "step_key"], name="winner_one_per_step")]

    def __str__(self) -> str:
        return f"{self.campaign_id}/{self.step_key}: {self.variant_key}"


class Message(models.Model):
    """One campaign's decision about one customer for one dedupe key, and what became of it."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False, help_text="The provider's idempotency key")
    # The (campaign, dedupe_key) unique index serves lookups by campaign; no separate index.
    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="messages", db_index=False)
    # The customer's index is message_customer_created_idx (its leading column serves every lookup
    # by customer).
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="messages", db_index=False)
    channel = models.CharField(max_length=16, choices=Channel.choices)
    dedupe_key = models.CharField(max_length=DEDUPE_KEY_MAX_LENGTH + 41)
    # The journey entry and step it belongs to (empty only for messages made by hand).
    entry = models.ForeignKey(
        Entry, null=True, blank=True, on_delete=models.PROTECT, related_name="messages", db_index=False
    )
    step_key = models.CharField(max_length=40, default="message")
    variant_key = models.CharField(max_length=40, blank=True, default="")
    status = models.CharField(max_length=16, choices=MessageStatus.choices, default=MessageStatus.QUEUED)
    reason = models.CharField(max_length=32, blank=True, default="", help_text="Why it was suppressed or deferred")
    # Carts and purchases are never deleted by the application, so these need no index of their own.
    cart = models.ForeignKey(Cart, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False)
    purchase = models.ForeignKey(
        Purchase, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    data = models.JSONField(default=dict, blank=True, help_text="Facts of the trigger at evaluation time")
    created_at = models.DateTimeField(default=now)
    scheduled_at = models.DateTimeField(help_text="First planned send time (after quiet hours)")
    send_at = models.DateTimeField(help_text="Not before: moves with deferrals and retries")
    claimed_at = models.DateTimeField(null=True, blank=True, help_text="When a sender took it")
    attempts = models.PositiveSmallIntegerField(default=0)
    # The moment this message counts against the frequency cap: set when a sender claims it, kept
    # once sent, cleared when it fails or goes back to the queue.
    cap_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    # Start of the attribution window: the send, or for the control group when it would have been sent.
    touched_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    clicked_at = models.DateTimeField(null=True, blank=True)
    bounced_at = models.DateTimeField(null=True, blank=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    provider_message_id = models.CharField(max_length=255, blank=True, default="")
    discount_code = models.CharField(max_length=64, null=True, blank=True, unique=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "dedupe_key"], name="message_one_per_dedupe_key"),
            models.UniqueConstraint(fields=["entry", "step_key"], name="message_one_per_entry_step"),
            models.CheckConstraint(condition=Q(status__in=MessageStatus.values), name="message_status_valid"),
            models.CheckConstraint(condition=Q(channel__in=Channel.values), name="message_channel_valid"),
            models.CheckConstraint(
                condition=~Q(status__in=SENT_STATUSES) | Q(sent_at__isnull=False), name="message_sent_has_sent_at"
            ),
        ]
        indexes = [
            # The sender's queue: due messages of a campaign in claim order (send_at, id), so a claim
            # reads its batch off the index even when a whole evaluation shares one send time.
            models.Index(fields=["campaign", "send_at", "id"], condition=Q(status="queued"), name="message_queue_idx"),
            # A customer's messages, newest first (the 360 reads a page of them), and every other
            # read of one customer's messages (erasure, the API).
            models.Index(fields=["customer", "created_at"], name="message_customer_created_idx"),
            # The sweeper: messages a dead worker left in sending.
            models.Index(fields=["claimed_at"], condition=Q(status="sending"), name="message_sending_idx"),
            # The frequency cap: a customer's messages in the rolling window.
            models.Index(
                fields=["customer", "cap_at"], condition=Q(cap_at__isnull=False), name="message_customer_cap_idx"
            ),
            # Attribution: a customer's latest touch before a purchase.
            models.Index(
                fields=["customer", "touched_at"],
                condition=Q(touched_at__isnull=False),
                name="message_customer_touch_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id}/{self.dedupe_key}: {self.get_status_display()}"


class Attribution(models.Model):
    """A completed purchase credited to the one message that gets it (SPEC §4, attribution)."""

    purchase = models.OneToOneField(Purchase, primary_key=True, on_delete=models.CASCADE, related_name="attribution")
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="attributions")
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="attributions")
    attributed_at = models.DateTimeField(default=now)

    class Meta:
        indexes = [models.Index(fields=["campaign", "message"], name="attribution_campaign_idx")]

    def __str__(self) -> str:
        return f"purchase {self.purchase_id} -> message {self.message_id}"


class MessageOutcome(models.Model):
    """What became of one message for the campaign report (SPEC §5 campaign impact), kept exact by
    database triggers (``campaigns/outcome_sql.py``): a row per member message (touched, sent or
    held out) or message with attributions. Plain ids, no foreign keys: the triggers own the rows."""

    message_id = models.BigIntegerField(primary_key=True)
    campaign_id = models.BigIntegerField()
    customer_id = models.BigIntegerField()
    treated = models.BooleanField(help_text="Sent (treated group); false: held out (control)")
    member = models.BooleanField(help_text="Touched and sent or held out: counts in its group")
    step_key = models.CharField(max_length=40)
    variant_key = models.CharField(max_length=40)
    touched_at = models.DateTimeField(null=True)
    group_first = models.BooleanField(help_text="The customer's first member message of this group")
    campaign_first = models.BooleanField(help_text="The customer's first member message of the campaign")
    converted = models.BooleanField(help_text="A completed purchase in this message's window")
    group_converted = models.BooleanField(
        help_text="On group_first: a completed purchase in one of the group's windows"
    )
    group_revenue = models.DecimalField(max_digits=16, decimal_places=2, help_text="On group_first: their total")
    active_30 = models.BooleanField(help_text="On campaign_first: active 30 days after the message")
    active_90 = models.BooleanField(help_text="On campaign_first: active 90 days after the message")
    attributed_purchases = models.IntegerField()
    attributed_revenue = models.DecimalField(max_digits=16, decimal_places=2)

    class Meta:
        indexes = [
            # The triggers recompute a customer's rows.
            models.Index(fields=["customer_id"], name="outcome_customer_idx"),
            # A report counts live the first members of the one minute whose checkpoint is coming
            # now; a new attribution window finds the campaign's customers.
            models.Index(
                fields=["campaign_id", "touched_at"], condition=Q(campaign_first=True), name="outcome_first_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"message {self.message_id}: {'treated' if self.treated else 'control'}"


class ReportTotal(models.Model):
    """Sums of a campaign's ``MessageOutcome`` rows per (group, step, variant, minute of the touch):
    rows appended by the triggers as differences and folded now and then; a report sums them."""

    campaign_id = models.BigIntegerField()
    treated = models.BooleanField()
    step_key = models.CharField(max_length=40)
    variant_key = models.CharField(max_length=40)
    touched_minute = models.DateTimeField(null=True)
    customers = models.BigIntegerField()
    converted = models.BigIntegerField()
    revenue = models.DecimalField(max_digits=18, decimal_places=2)
    attributed_purchases = models.BigIntegerField()
    attributed_revenue = models.DecimalField(max_digits=18, decimal_places=2)
    first_members = models.BigIntegerField()
    active_30 = models.BigIntegerField()
    active_90 = models.BigIntegerField()
    sent = models.BigIntegerField()
    sent_converted = models.BigIntegerField()

    class Meta:
        indexes = [models.Index(fields=["campaign_id"], name="report_total_campaign_idx")]

    def __str__(self) -> str:
        return f"campaign {self.campaign_id}: {self.customers} customers"


class MessageCount(models.Model):
    """Messages per (campaign, status, reason, step), appended as differences by a trigger."""

    campaign_id = models.BigIntegerField()
    status = models.CharField(max_length=16)
    reason = models.CharField(max_length=32)
    step_key = models.CharField(max_length=40)
    messages = models.BigIntegerField()

    class Meta:
        indexes = [models.Index(fields=["campaign_id"], name="message_count_campaign_idx")]

    def __str__(self) -> str:
        return f"campaign {self.campaign_id}: {self.status} {self.messages}"


# The content models (SPEC §4.2) live in their own module; imported here so they are the app's.
from campaigns.content.models import EmailLayout, Topic, TopicPreference, TopicPreferenceEvent  # noqa: E402, F401
