"""Loyalty's data: the append-only points ledger, the program's settings, its tiers and the tier history.

These models belong to the customers app (app label ``customers``, tables ``customers_*``):
``customers/models.py`` imports them so the app registry loads them with the others. They name
``Customer`` and ``Purchase`` by "app_label.Model" string, so this module imports nothing back from
``customers.models`` (no import cycle).
"""

from decimal import Decimal
from typing import Any, NoReturn

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.timezone import now

from retention_crm.validation import EXTERNAL_ID_MAX_LENGTH, MONEY_DIGITS, MONEY_PLACES


class PointsKind(models.TextChoices):
    EARN = "earn", "Earn"
    BONUS = "bonus", "Bonus"
    REDEEM = "redeem", "Redeem"
    EXPIRE = "expire", "Expire"
    REVERSAL = "reversal", "Reversal"
    ADJUST = "adjust", "Adjust"


# The one column of a ledger entry that may change after it is written: what is left of a lot.
LEDGER_MUTABLE_FIELDS = frozenset({"remaining"})


class AppendOnlyError(Exception):
    """A ledger entry was about to be edited or deleted; corrections are new entries."""


class PointsEntryQuerySet(models.QuerySet):
    """Bulk deletes and edits are refused; only a lot's ``remaining`` may be written.

    The database enforces the same with a trigger (migration 0005); this gives the error early
    and on every backend.
    """

    def delete(self) -> NoReturn:
        raise AppendOnlyError("The points ledger is append-only: entries are never deleted.")

    def update(self, **kwargs: Any) -> int:
        if not set(kwargs) <= LEDGER_MUTABLE_FIELDS:
            raise AppendOnlyError("The points ledger is append-only: only a lot's remaining points change.")
        return super().update(**kwargs)


class PointsEntry(models.Model):
    """One line of the append-only points ledger. Corrections are new entries, never edits.

    Entries that add points (earn, bonus, positive adjust, returned redemptions) are lots:
    ``remaining`` says how much of the lot is left to spend or expire, oldest first. ``remaining``
    only ever goes down, and it is the only column that changes after the insert.
    """

    # As on Purchase: the key is unique through a constraint (no LIKE index), and the customer's
    # index is points_customer_created_idx.
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.PROTECT, related_name="points_entries", db_index=False
    )
    kind = models.CharField(max_length=16, choices=PointsKind.choices)
    points = models.BigIntegerField(help_text="Signed change of the balance")
    idempotency_key = models.CharField(max_length=128)
    created_at = models.DateTimeField(default=now)
    purchase = models.ForeignKey(
        "customers.Purchase", null=True, blank=True, on_delete=models.PROTECT, related_name="points_entries"
    )
    reason = models.TextField(blank=True, default="")
    expires_at = models.DateTimeField(null=True, blank=True)
    remaining = models.BigIntegerField(null=True, blank=True, help_text="Unspent points of this lot")
    uncovered = models.BigIntegerField(default=0, help_text="Points a reversal could not take back")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    # The entry this one answers: the lot an expiry closes, the earning a reversal takes back,
    # the redemption whose points a refund returns.
    related_entry = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="answered_by", db_index=False
    )
    balance_after = models.BigIntegerField(null=True, blank=True, help_text="The balance right after this entry")
    # Redemptions at checkout: the shop's order id, the order total and the discount granted.
    order_id = models.CharField(max_length=EXTERNAL_ID_MAX_LENGTH, blank=True, default="")
    order_total = models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES, null=True, blank=True)
    discount = models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES, null=True, blank=True)

    objects = PointsEntryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "points entries"
        permissions = [("adjust_points", "Can adjust a customer's points (with a reason)")]
        constraints = [
            models.UniqueConstraint(fields=["idempotency_key"], name="points_idempotency_key_unique"),
            models.CheckConstraint(condition=Q(kind__in=PointsKind.values), name="points_kind_valid"),
            models.CheckConstraint(
                condition=Q(remaining__isnull=True) | Q(remaining__gte=0), name="points_remaining_gte_0"
            ),
            models.CheckConstraint(condition=Q(uncovered__gte=0), name="points_uncovered_gte_0"),
            # A lot never holds more than it added; only entries that add points are lots.
            models.CheckConstraint(
                condition=Q(remaining__isnull=True) | (Q(points__gt=0) & Q(remaining__lte=models.F("points"))),
                name="points_lot_within_points",
            ),
            # Only a reversal that could take nothing back records zero points (and its uncovered rest).
            models.CheckConstraint(condition=~Q(points=0) | Q(uncovered__gt=0), name="points_not_zero"),
            models.CheckConstraint(
                condition=Q(balance_after__isnull=True) | Q(balance_after__gte=0), name="points_balance_after_gte_0"
            ),
        ]
        indexes = [
            models.Index(fields=["customer", "created_at"], name="points_customer_created_idx"),
            models.Index(fields=["expires_at"], condition=Q(remaining__gt=0), name="points_open_lots_expiry_idx"),
            # A customer's open lots, oldest expiry first: FIFO spending, the expiry pass's walk in
            # customer order, and "points expiring soon" for one customer.
            models.Index(
                fields=["customer", "expires_at", "id"], condition=Q(remaining__gt=0), name="points_open_lots_idx"
            ),
            # A refund finds the redemptions made for its order.
            models.Index(fields=["order_id"], condition=~Q(order_id=""), name="points_order_idx"),
            # Most entries (every earning) answer no entry and are made by no staff member: only the
            # others are indexed, so an earning writes two index entries fewer.
            models.Index(
                fields=["related_entry"], condition=Q(related_entry__isnull=False), name="points_related_entry_idx"
            ),
            models.Index(fields=["created_by"], condition=Q(created_by__isnull=False), name="points_created_by_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.points:+d}"

    def save(self, *args, **kwargs) -> None:
        update_fields = kwargs.get("update_fields")
        if not self._state.adding and (update_fields is None or not set(update_fields) <= LEDGER_MUTABLE_FIELDS):
            raise AppendOnlyError("The points ledger is append-only: write a new entry instead of editing one.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("The points ledger is append-only: entries are never deleted.")


class LoyaltyProgram(models.Model):
    """The loyalty program's numbers, one record edited by staff in the admin.

    Defaults: 1 point per 1.00 spent, a point is worth 0.01 (1 % back in the base tier), at most
    30 % of an order payable with points, points last a year.
    """

    SINGLETON_ID = 1

    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON_ID, editable=False)
    earn_rate = models.DecimalField(
        max_digits=10, decimal_places=4, default=Decimal("1"), help_text="Points per 1.00 of a completed purchase"
    )
    point_value = models.DecimalField(
        max_digits=10, decimal_places=4, default=Decimal("0.01"), help_text="What one point is worth at checkout"
    )
    max_redeem_share = models.DecimalField(
        max_digits=5,
        decimal_places=4,
        default=Decimal("0.30"),
        help_text="The largest share of an order total payable with points (0.30 = 30 %)",
    )
    expiry_days = models.PositiveIntegerField(
        default=365, help_text="Days after which earned points expire, oldest first; 0: points never expire"
    )
    welcome_bonus = models.PositiveIntegerField(default=100, help_text="Points for a new customer; 0 disables it")
    birthday_bonus = models.PositiveIntegerField(default=200, help_text="Points once a year on the birthday; 0: off")
    referral_bonus = models.PositiveIntegerField(
        default=500, help_text="Points for the referrer when the referred customer's first purchase completes; 0: off"
    )
    review_bonus = models.PositiveIntegerField(
        default=50, help_text="Points for an NPS/review answer, once per purchase; 0 disables it"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "loyalty program"
        verbose_name_plural = "loyalty program"  # one settings record: the admin's menu says so
        constraints = [
            models.CheckConstraint(condition=Q(id=1), name="loyalty_program_singleton"),
            models.CheckConstraint(condition=Q(earn_rate__gte=0), name="loyalty_earn_rate_gte_0"),
            models.CheckConstraint(condition=Q(point_value__gt=0), name="loyalty_point_value_gt_0"),
            models.CheckConstraint(
                condition=Q(max_redeem_share__gte=0) & Q(max_redeem_share__lte=1), name="loyalty_max_share_0_to_1"
            ),
        ]

    def __str__(self) -> str:
        return "Loyalty program settings"


class LoyaltyTier(models.Model):
    """A tier: reached by completed spend in the trailing 365 days; its multiplier scales earning."""

    program = models.ForeignKey(
        LoyaltyProgram, on_delete=models.CASCADE, related_name="tiers", default=LoyaltyProgram.SINGLETON_ID
    )
    code = models.SlugField(max_length=32, help_text="Stored on each customer, e.g. silver")
    name = models.CharField(max_length=64)
    threshold = models.DecimalField(
        max_digits=14, decimal_places=MONEY_PLACES, help_text="Completed spend in the last 365 days to reach it"
    )
    multiplier = models.DecimalField(
        max_digits=6, decimal_places=3, default=Decimal("1"), help_text="Earning is multiplied by this"
    )

    class Meta:
        ordering = ["threshold"]
        constraints = [
            models.UniqueConstraint(fields=["program", "code"], name="loyalty_tier_code_unique"),
            models.UniqueConstraint(fields=["program", "threshold"], name="loyalty_tier_threshold_unique"),
            models.CheckConstraint(condition=Q(threshold__gte=0), name="loyalty_tier_threshold_gte_0"),
            models.CheckConstraint(condition=Q(multiplier__gte=0), name="loyalty_tier_multiplier_gte_0"),
        ]

    def __str__(self) -> str:
        return self.name


class TierChange(models.Model):
    """History of a customer's tier: every move up or down, when and why."""

    class Cause(models.TextChoices):
        PURCHASE = "purchase", "Purchase"
        REFUND = "refund", "Refund or cancellation"
        DAILY = "daily", "Daily recompute"

    customer = models.ForeignKey("customers.Customer", on_delete=models.CASCADE, related_name="tier_changes")
    from_tier = models.CharField(max_length=32)
    to_tier = models.CharField(max_length=32)
    trailing_spend = models.DecimalField(max_digits=14, decimal_places=MONEY_PLACES)
    cause = models.CharField(max_length=16, choices=Cause.choices)
    changed_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["-changed_at", "-id"]
        indexes = [models.Index(fields=["customer", "changed_at"], name="tier_change_customer_idx")]

    def __str__(self) -> str:
        return f"{self.from_tier} -> {self.to_tier}"
