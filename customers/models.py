"""Customer data: the one record of every customer, their purchases, carts, consents and points.

Invariants live here as database constraints so that no code path (API, admin, import, a bug)
can break them. Business rules live in ``services.py``; nothing here overrides ``save()``.
"""

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import ExtractDay, ExtractMonth
from django.utils.timezone import now

from retention_crm.validation import E164_PATTERN, EXTERNAL_ID_MAX_LENGTH, MONEY_DIGITS, MONEY_PLACES


def store_timezone_name() -> str:
    return settings.TIME_ZONE


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    SMS = "sms", "SMS"
    PUSH = "push", "Push"
    WEBHOOK = "webhook", "Webhook"
    TELEGRAM = "telegram", "Telegram"


class ConsentSource(models.TextChoices):
    API = "api", "API"
    ADMIN = "admin", "Admin"
    IMPORT = "import", "Import"
    UNSUBSCRIBE_LINK = "unsubscribe_link", "Unsubscribe link"
    PROVIDER = "provider", "Provider (bounce or complaint)"
    ERASURE = "erasure", "GDPR erasure"
    TELEGRAM = "telegram", "Telegram bot (/start, /stop)"
    PREFERENCE_CENTRE = "preference_centre", "Preference centre"


class Customer(models.Model):
    # Unique through a constraint (no LIKE index nothing queries): every purchase updates its
    # customer's row, and each index on the table is written again on such an update.
    external_id = models.CharField(max_length=EXTERNAL_ID_MAX_LENGTH)
    email = models.EmailField(blank=True, default="")
    phone = models.CharField(max_length=16, blank=True, default="", help_text="E.164, e.g. +4915112345678")
    # The Telegram chat the customer linked through the bot's deep link (SPEC §4.2); "" until then.
    # db_default too: set-based writers (the CSV import, bulk loads) insert rows without naming it.
    telegram_chat_id = models.CharField(max_length=32, blank=True, default="", db_default="")
    first_name = models.CharField(max_length=150, blank=True, default="")
    last_name = models.CharField(max_length=150, blank=True, default="")
    birth_date = models.DateField(null=True, blank=True)
    # Derived by the database so birthday lookups can use an index on (month, day).
    birth_month = models.GeneratedField(
        expression=ExtractMonth("birth_date"),
        output_field=models.SmallIntegerField(null=True),
        db_persist=True,
    )
    birth_day = models.GeneratedField(
        expression=ExtractDay("birth_date"), output_field=models.SmallIntegerField(null=True), db_persist=True
    )
    timezone = models.CharField(max_length=64, default=store_timezone_name, help_text="IANA name")
    tags = models.JSONField(default=list, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    referred_by = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="referrals", db_index=False
    )
    created_at = models.DateTimeField(default=now, help_text="Sign-up time")
    updated_at = models.DateTimeField(auto_now=True)
    erased_at = models.DateTimeField(null=True, blank=True, help_text="Set once by a GDPR erasure")

    # Purchase stats, kept current by the purchase services on every write.
    first_purchase_at = models.DateTimeField(null=True, blank=True)
    last_purchase_at = models.DateTimeField(null=True, blank=True)
    orders_count = models.PositiveIntegerField(default=0)
    total_spent = models.DecimalField(max_digits=14, decimal_places=MONEY_PLACES, default=0)

    # Loyalty: the cached sum of the points ledger, and the current tier's code.
    points_balance = models.BigIntegerField(default=0)
    tier = models.CharField(max_length=32, default="bronze")

    class Meta:
        ordering = ["-id"]
        permissions = [("erase_customer", "Can erase a customer's personal data (GDPR)")]
        constraints = [
            models.UniqueConstraint(fields=["external_id"], name="customer_external_id_unique"),
            models.CheckConstraint(condition=~Q(external_id=""), name="customer_external_id_not_empty"),
            models.CheckConstraint(condition=Q(phone="") | Q(phone__regex=E164_PATTERN), name="customer_phone_e164"),
            # One customer per chat; a partial index, so customers without one cost it nothing.
            models.UniqueConstraint(
                fields=["telegram_chat_id"], condition=~Q(telegram_chat_id=""), name="customer_telegram_chat_unique"
            ),
            models.CheckConstraint(condition=Q(total_spent__gte=0), name="customer_total_spent_gte_0"),
            models.CheckConstraint(condition=Q(points_balance__gte=0), name="customer_points_balance_gte_0"),
        ]
        # Email, phone and names have no index here: the staff search reads CustomerSearch, whose
        # indexes are not written again each time a purchase updates the customer's stats.
        indexes = [
            models.Index(fields=["created_at"], name="customer_created_at_idx"),
            # The admin lists customers by last purchase, newest first and never-buyers last; range
            # filters on the column (reactivation, win-back) read the same index.
            models.Index(
                F("last_purchase_at").desc(nulls_last=True), F("id").desc(), name="customer_last_purchase_idx"
            ),
            models.Index(fields=["first_purchase_at"], name="customer_first_purchase_idx"),
            models.Index(fields=["birth_month", "birth_day"], name="customer_birthday_idx"),
            models.Index(fields=["tier"], name="customer_tier_idx"),
            # Few customers were referred: the others need no entry (and no write on each update).
            models.Index(
                fields=["referred_by"], condition=Q(referred_by__isnull=False), name="customer_referred_by_idx"
            ),
        ]

    def __str__(self) -> str:
        # The external id only: this text is stored (the admin's change log), and a name there
        # would outlive an erasure (SPEC §8).
        return self.external_id

    @property
    def is_erased(self) -> bool:
        return self.erased_at is not None


class CustomerSearch(models.Model):
    """What the staff search matches, one row per customer: the external id, email and names
    upper-cased by the database, and the phone.

    Triggers on the customer table write it (migration 0014) on every insert and on any change of
    these columns, erasure included, and never on the stats updates of a purchase, so its indexes
    cost the purchase path nothing. Read only through ``selectors.customer_search``.
    """

    customer = models.OneToOneField(Customer, primary_key=True, on_delete=models.CASCADE, related_name="search_row")
    external_id_upper = models.TextField()
    email_upper = models.TextField()
    phone = models.TextField()
    first_name_upper = models.TextField()
    last_name_upper = models.TextField()

    class Meta:
        indexes = [
            # Prefix searches (LIKE 'X%'): the pattern operator class, because the database's
            # collation is not C and a default btree cannot serve LIKE under it.
            models.Index(
                fields=["external_id_upper"], opclasses=["text_pattern_ops"], name="customer_search_external_idx"
            ),
            models.Index(fields=["email_upper"], opclasses=["text_pattern_ops"], name="customer_search_email_idx"),
            models.Index(fields=["phone"], opclasses=["text_pattern_ops"], name="customer_search_phone_idx"),
            # Names match anywhere in the name (LIKE '%X%') and as an exact first and last name.
            GinIndex(
                fields=["first_name_upper", "last_name_upper"],
                opclasses=["gin_trgm_ops", "gin_trgm_ops"],
                name="customer_search_name_idx",
            ),
        ]

    def __str__(self) -> str:
        return self.external_id_upper


class Consent(models.Model):
    """The current consent state for one customer and channel. No consent, no message."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="consents")
    channel = models.CharField(max_length=16, choices=Channel.choices)
    granted = models.BooleanField(default=False)
    source = models.CharField(max_length=32, choices=ConsentSource.choices)
    updated_at = models.DateTimeField(default=now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["customer", "channel"], name="consent_one_per_channel"),
            models.CheckConstraint(condition=Q(channel__in=Channel.values), name="consent_channel_valid"),
        ]
        indexes = [models.Index(fields=["channel", "granted"], name="consent_channel_granted_idx")]

    def __str__(self) -> str:
        return f"{self.channel}: {'granted' if self.granted else 'revoked'}"


class ConsentEvent(models.Model):
    """Append-only history of consent changes: who said yes or no, when, and through what."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="consent_events")
    channel = models.CharField(max_length=16, choices=Channel.choices)
    granted = models.BooleanField()
    source = models.CharField(max_length=32, choices=ConsentSource.choices)
    recorded_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["-recorded_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(channel__in=Channel.values), name="consent_event_channel_valid"),
        ]
        indexes = [models.Index(fields=["customer", "recorded_at"], name="consent_event_customer_idx")]

    def __str__(self) -> str:
        return f"{self.channel} {'granted' if self.granted else 'revoked'} via {self.source}"


class Product(models.Model):
    sku = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=255, blank=True, default="")
    category = models.CharField(max_length=128, blank=True, default="")
    replenishment_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="Typical days until a repeat purchase, for repeat-demand goods"
    )

    class Meta:
        ordering = ["sku"]
        constraints = [
            models.CheckConstraint(condition=~Q(sku=""), name="product_sku_not_empty"),
            models.CheckConstraint(
                condition=Q(replenishment_days__isnull=True) | Q(replenishment_days__gt=0),
                name="product_replenishment_days_gt_0",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.sku} {self.name}".strip()


class PurchaseStatus(models.TextChoices):
    COMPLETED = "completed", "Completed"
    REFUNDED = "refunded", "Refunded"
    CANCELLED = "cancelled", "Cancelled"


class CartStatus(models.TextChoices):
    OPEN = "open", "Open"
    CONVERTED = "converted", "Converted"
    ABANDONED = "abandoned", "Abandoned"


class Cart(models.Model):
    external_id = models.CharField(max_length=EXTERNAL_ID_MAX_LENGTH, unique=True)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="carts")
    status = models.CharField(max_length=16, choices=CartStatus.choices, default=CartStatus.OPEN)
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(default=now, help_text="Last change of the cart's items")
    converted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-updated_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=~Q(external_id=""), name="cart_external_id_not_empty"),
            models.CheckConstraint(condition=Q(status__in=CartStatus.values), name="cart_status_valid"),
        ]
        indexes = [
            models.Index(fields=["status", "updated_at"], name="cart_status_updated_idx"),
            models.Index(fields=["customer", "status"], name="cart_customer_status_idx"),
        ]

    def __str__(self) -> str:
        return self.external_id


class LineItem(models.Model):
    """Fields shared by purchase and cart lines."""

    sku = models.CharField(max_length=64)
    name = models.CharField(max_length=255, blank=True, default="")
    category = models.CharField(max_length=128, blank=True, default="")
    quantity = models.PositiveIntegerField()
    unit_price = models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self.quantity} x {self.sku}"


class CartItem(LineItem):
    cart = models.ForeignKey(Cart, on_delete=models.CASCADE, related_name="items")

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="cart_item_quantity_gt_0"),
            models.CheckConstraint(condition=Q(unit_price__gte=0), name="cart_item_unit_price_gte_0"),
        ]


class Purchase(models.Model):
    # Unique through a constraint, not unique=True: that would add a LIKE index nothing queries,
    # one more index every insert pays for. The customer's own index is purchase_customer_placed_idx.
    external_id = models.CharField(max_length=EXTERNAL_ID_MAX_LENGTH)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="purchases", db_index=False)
    placed_at = models.DateTimeField()
    total = models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES)
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=16, choices=PurchaseStatus.choices, default=PurchaseStatus.COMPLETED)
    cart = models.ForeignKey(
        Cart, null=True, blank=True, on_delete=models.SET_NULL, related_name="purchases", db_index=False
    )
    cart_external_id = models.CharField(max_length=EXTERNAL_ID_MAX_LENGTH, blank=True, default="")
    points_redeemed = models.PositiveIntegerField(default=0)
    # A digest of the content first sent, so a repeat can be told apart from a conflicting one.
    # 22 characters (PurchaseInput.digest); purchases stored before that keep a 64-character one.
    content_digest = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-placed_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["external_id"], name="purchase_external_id_unique"),
            models.CheckConstraint(condition=~Q(external_id=""), name="purchase_external_id_not_empty"),
            models.CheckConstraint(condition=Q(total__gte=0), name="purchase_total_gte_0"),
            models.CheckConstraint(condition=Q(status__in=PurchaseStatus.values), name="purchase_status_valid"),
        ]
        indexes = [
            # A customer's purchases by time; status and total ride along so the trailing spend a
            # tier is computed from is read from the index alone (no visit to each purchase's row).
            models.Index(
                fields=["customer", "placed_at"], include=["status", "total"], name="purchase_customer_placed_idx"
            ),
            # Purchases by time, all statuses: the admin's list order (-placed_at, -id) reads one page
            # off it. Metrics and triggers read completed purchases by time from it too; customer and
            # status ride along so those range scans stay index-only.
            models.Index(fields=["placed_at", "id"], include=["customer", "status"], name="purchase_placed_idx"),
            # Only purchases that name a cart of ours have one to index.
            models.Index(fields=["cart"], condition=Q(cart__isnull=False), name="purchase_cart_idx"),
        ]

    def __str__(self) -> str:
        return self.external_id


class PurchaseItem(LineItem):
    purchase = models.ForeignKey(Purchase, on_delete=models.CASCADE, related_name="items")

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="purchase_item_quantity_gt_0"),
            models.CheckConstraint(condition=Q(unit_price__gte=0), name="purchase_item_unit_price_gte_0"),
        ]
        indexes = [models.Index(fields=["sku"], name="purchase_item_sku_idx")]


class NpsResponse(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="nps_responses")
    score = models.PositiveSmallIntegerField()
    comment = models.TextField(blank=True, default="")
    answered_at = models.DateTimeField(default=now)
    # The campaign message it answers (SPEC §4.2 NPS in the message); empty for answers from the API.
    message = models.ForeignKey(
        "campaigns.Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )

    class Meta:
        ordering = ["-answered_at", "-id"]
        verbose_name = "NPS answer"
        verbose_name_plural = "NPS answers"
        constraints = [
            models.CheckConstraint(condition=Q(score__gte=0) & Q(score__lte=10), name="nps_score_0_to_10"),
            # One answer per message: a later click replaces it (campaigns/content/nps.py).
            models.UniqueConstraint(fields=["message"], condition=Q(message__isnull=False), name="nps_one_per_message"),
        ]
        indexes = [models.Index(fields=["answered_at"], name="nps_answered_at_idx")]

    def __str__(self) -> str:
        return f"{self.customer_id}: {self.score}"


# Loyalty's models live in customers/loyalty/models.py. Imported here, where they used to be (the
# registry keeps the models' order), so the app registry loads them with app label "customers" and
# ``from customers.models import PointsEntry`` keeps working (a re-export, hence the noqa).
from customers.loyalty.models import (  # noqa: E402, F401
    LEDGER_MUTABLE_FIELDS,
    AppendOnlyError,
    LoyaltyProgram,
    LoyaltyTier,
    PointsEntry,
    PointsEntryQuerySet,
    PointsKind,
    TierChange,
)


class AuditLog(models.Model):
    """Irreversible or sensitive actions (e.g. GDPR erasure): who did what to which record, when."""

    action = models.CharField(max_length=64)
    target = models.CharField(max_length=128, help_text="What it was done to, e.g. customer:<external_id>")
    actor = models.CharField(max_length=150, help_text="The API key or staff user")
    at = models.DateTimeField(default=now)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["target", "at"], name="audit_target_at_idx")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor} {self.action} {self.target}"
