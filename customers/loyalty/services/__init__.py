"""Loyalty: the append-only points ledger, earning, redemption, refunds and bonuses (SPEC §3).

How the ledger stays right:

- Every change of a balance is one new ``PointsEntry`` with a unique idempotency key, written in
  the same transaction as the change of ``Customer.points_balance``; the cached balance is the
  ledger's sum by construction (``manage.py loyalty_verify`` checks it).
- Writers lock the customer rows they change before writing, in id order, so two writers for one
  customer queue up instead of interleaving. Spending takes its lock with a conditional
  ``UPDATE ... SET points_balance = points_balance - n WHERE points_balance >= n``: the database,
  not a Python comparison, decides whether there are enough points, and the CHECK constraint
  ``points_balance >= 0`` is the last line.
- Entries that add points are lots; ``remaining`` is what is left of them. Spending takes from the
  lots with the earliest expiry first (FIFO) in one set-based UPDATE, so the lots' remaining
  points always add up to the balance.

Earning is set-based: ``points_earn_for_purchases`` credits any number of purchases in a fixed
number of statements, so the bulk ingest can call it for a whole batch. The points are computed
in Python with ``Decimal`` so ``floor`` is exact on every database.

The package: ``program`` (settings), ``ledger`` (the primitives every writer uses), ``tiers``,
``earning`` (the purchase hooks), ``spending`` (redeem, adjust), ``bonuses``, and ``daily`` (the
nightly passes: expiry, tier recompute, birthdays).
"""

from customers.loyalty.services.bonuses import BonusGrant, points_bonus_grant, points_review_bonus
from customers.loyalty.services.earning import (
    LoyaltyOutcome,
    loyalty_after_purchases,
    loyalty_after_status_change,
    points_earn_for_purchases,
    points_welcome_for_customers,
)
from customers.loyalty.services.ledger import (
    Credit,
    Debit,
    InsufficientPoints,
    credits_append,
    credits_write,
    customers_lock,
    debit_write,
)
from customers.loyalty.services.program import (
    DEFAULT_TIERS,
    REASON_MAX_LENGTH,
    TRAILING_SPEND_WINDOW,
    Program,
    Tier,
    TierInput,
    loyalty_program_ensure,
    loyalty_program_get,
    loyalty_tiers_validate,
)
from customers.loyalty.services.spending import (
    Adjustment,
    Redemption,
    points_adjust,
    points_adjust_by_key,
    points_redeem,
)
from customers.loyalty.services.tiers import tiers_apply, tiers_recompute_for_customers

__all__ = [
    "DEFAULT_TIERS",
    "REASON_MAX_LENGTH",
    "TRAILING_SPEND_WINDOW",
    "Adjustment",
    "BonusGrant",
    "Credit",
    "Debit",
    "InsufficientPoints",
    "LoyaltyOutcome",
    "Program",
    "Redemption",
    "Tier",
    "TierInput",
    "credits_append",
    "credits_write",
    "customers_lock",
    "debit_write",
    "loyalty_after_purchases",
    "loyalty_after_status_change",
    "loyalty_program_ensure",
    "loyalty_program_get",
    "loyalty_tiers_validate",
    "points_adjust",
    "points_adjust_by_key",
    "points_bonus_grant",
    "points_earn_for_purchases",
    "points_redeem",
    "points_review_bonus",
    "points_welcome_for_customers",
    "tiers_apply",
    "tiers_recompute_for_customers",
]
