"""The loyalty program's numbers as one immutable value, read once per service call, and the
rules for the tier table staff edit."""

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from functools import cached_property
from typing import Any

from django.db import connection

from customers.models import LoyaltyProgram, LoyaltyTier
from retention_crm.errors import ApplicationError

MAX_POINTS = 2**31 - 1  # one request never moves more than this many points
IDEMPOTENCY_KEY_MAX_LENGTH = 100
REASON_MAX_LENGTH = 500
# A customer whose sign-up time (given by the shop) is older than this gets no welcome bonus:
# importing an existing customer base is not a wave of sign-ups.
WELCOME_MAX_SIGNUP_AGE = dt.timedelta(days=30)
TRAILING_SPEND_WINDOW = dt.timedelta(days=365)
MONEY_QUANTUM = Decimal("0.01")

DEFAULT_TIERS = (
    ("bronze", "Bronze", Decimal("0"), Decimal("1")),
    ("silver", "Silver", Decimal("500"), Decimal("1.25")),
    ("gold", "Gold", Decimal("2000"), Decimal("1.5")),
)


# --- The program's settings -----------------------------------------------------------------------


@dataclass(frozen=True)
class Tier:
    code: str
    name: str
    threshold: Decimal
    multiplier: Decimal


@dataclass(frozen=True)
class Program:
    """The loyalty settings as one immutable value, read once per service call."""

    earn_rate: Decimal
    point_value: Decimal
    max_redeem_share: Decimal
    expiry_days: int
    welcome_bonus: int
    birthday_bonus: int
    referral_bonus: int
    review_bonus: int
    tiers: tuple[Tier, ...]  # by threshold, lowest first

    def tier(self, code: str) -> Tier | None:
        return self._tiers_by_code.get(code)

    @cached_property
    def _tiers_by_code(self) -> dict[str, Tier]:
        # Looked up once per purchase of a batch: a dict, not a scan of the tiers each time.
        return {tier.code: tier for tier in self.tiers}

    def multiplier(self, code: str) -> Decimal:
        """A tier code staff have since removed earns at the base rate until the next recompute."""
        tier = self.tier(code)
        return tier.multiplier if tier is not None else Decimal(1)

    def tier_for_spend(self, spend: Decimal) -> Tier:
        reached = [tier for tier in self.tiers if tier.threshold <= spend]
        return reached[-1] if reached else self.tiers[0]

    def next_tier(self, code: str) -> Tier | None:
        current = self.tier(code)
        above = [tier for tier in self.tiers if current is None or tier.threshold > current.threshold]
        return above[0] if above else None

    def points_for(self, total: Decimal, multiplier: Decimal) -> int:
        """SPEC §3: floor(total * earn_rate * tier_multiplier)."""
        return int((total * self.earn_rate * multiplier).to_integral_value(rounding=ROUND_FLOOR))

    def expires_at(self, earned_at: dt.datetime) -> dt.datetime | None:
        return earned_at + dt.timedelta(days=self.expiry_days) if self.expiry_days else None

    def discount_for(self, points: int) -> Decimal:
        return (points * self.point_value).quantize(MONEY_QUANTUM, rounding=ROUND_HALF_UP)

    def max_points_for_order(self, order_total: Decimal) -> int:
        """The most points an order of this total may be paid with (max_redeem_share of it)."""
        return int((order_total * self.max_redeem_share / self.point_value).to_integral_value(rounding=ROUND_FLOOR))


def loyalty_program_ensure() -> LoyaltyProgram:
    """The settings record, created with the defaults (and default tiers) if it is missing."""
    program, created = LoyaltyProgram.objects.get_or_create(pk=LoyaltyProgram.SINGLETON_ID)
    if created:
        LoyaltyTier.objects.bulk_create(
            [
                LoyaltyTier(program=program, code=code, name=name, threshold=threshold, multiplier=multiplier)
                for code, name, threshold, multiplier in DEFAULT_TIERS
            ],
            ignore_conflicts=True,
        )
    return program


BASE_TIER = Tier(code="bronze", name="Bronze", threshold=Decimal(0), multiplier=Decimal(1))


_PROGRAM_FIELDS = (
    "earn_rate",
    "point_value",
    "max_redeem_share",
    "expiry_days",
    "welcome_bonus",
    "birthday_bonus",
    "referral_bonus",
    "review_bonus",
)

# PostgreSQL: the program and its tiers in one plain statement (every purchase reads them).
_PROGRAM_WITH_TIERS = f"""
    SELECT {", ".join(f"program.{name}" for name in _PROGRAM_FIELDS)},
           tier.code, tier.name, tier.threshold, tier.multiplier
    FROM customers_loyaltyprogram program
    LEFT JOIN customers_loyaltytier tier ON tier.program_id = program.id
    WHERE program.id = %s
    ORDER BY tier.threshold
"""


def loyalty_program_get(*, with_tiers: bool = True) -> Program:
    """The current settings (no cache: a change in the admin applies to the next request).

    ``with_tiers=False`` skips reading the tiers where they play no part (redemption).
    """
    settings_values: tuple[Any, ...] | None = None
    tiers: tuple[Tier, ...] = ()
    if with_tiers:
        with connection.cursor() as cursor:
            cursor.execute(_PROGRAM_WITH_TIERS, [LoyaltyProgram.SINGLETON_ID])
            rows = cursor.fetchall()
        if rows:
            settings_values = rows[0][: len(_PROGRAM_FIELDS)]
            tiers = tuple(Tier(*row[len(_PROGRAM_FIELDS) :]) for row in rows if row[len(_PROGRAM_FIELDS)] is not None)
    if settings_values is None:
        record = loyalty_program_ensure()
        settings_values = tuple(getattr(record, name) for name in _PROGRAM_FIELDS)
        if with_tiers:
            tiers = tuple(
                Tier(code=t.code, name=t.name, threshold=t.threshold, multiplier=t.multiplier)
                for t in LoyaltyTier.objects.filter(program=record).order_by("threshold")
            )
    return Program(**dict(zip(_PROGRAM_FIELDS, settings_values, strict=True)), tiers=tiers or (BASE_TIER,))


@dataclass(frozen=True)
class TierInput:
    code: str
    name: str
    threshold: Decimal
    multiplier: Decimal


def loyalty_tiers_validate(*, tiers: Sequence[TierInput]) -> None:
    """Rules for the tier table staff edit: a base tier at 0, distinct codes and thresholds."""
    if not tiers:
        raise ApplicationError("Keep at least one tier, with a threshold of 0.", code="invalid", fields={"tiers": []})
    if not any(tier.threshold == 0 for tier in tiers):
        raise ApplicationError(
            "One tier must start at a threshold of 0: every customer is in some tier.",
            code="invalid",
            fields={"tiers": ["no tier with threshold 0"]},
        )
    for attribute in ("code", "threshold"):
        values = [getattr(tier, attribute) for tier in tiers]
        if len(set(values)) != len(values):
            raise ApplicationError(
                f"Two tiers have the same {attribute}.", code="invalid", fields={"tiers": [f"duplicate {attribute}"]}
            )
    for tier in tiers:
        if tier.threshold < 0 or tier.multiplier < 0:
            raise ApplicationError(
                f"Tier {tier.code}: threshold and multiplier must not be negative.",
                code="invalid",
                fields={"tiers": ["negative number"]},
            )
