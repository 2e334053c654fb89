"""What loyalty does when purchases are recorded (earning, welcome and referral bonuses) and when
one is refunded or cancelled (return redeemed points, take back earned ones)."""

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple

from django.db import connection
from django.db.models import Q, Sum
from django.utils import timezone

from customers.loyalty.services.ledger import (
    Credit,
    Debit,
    credits_append,
    credits_insert_fresh,
    credits_write,
    customers_lock,
    debit_write,
)
from customers.loyalty.services.program import WELCOME_MAX_SIGNUP_AGE, Program, loyalty_program_get
from customers.loyalty.services.tiers import tiers_apply, tiers_recompute_for_customers, trailing_spends
from customers.models import Customer, PointsEntry, PointsKind, Purchase, PurchaseStatus, TierChange
from retention_crm.bound_cursor import bound_cursor, sql_array

# --- Earning and the purchase hooks ---------------------------------------------------------------


def earn_key(purchase_id: int) -> str:
    return f"earn:purchase:{purchase_id}"


def points_earn_for_purchases(
    *, purchase_ids: Iterable[int], now: dt.datetime | None = None, program: Program | None = None
) -> list[PointsEntry]:
    """Credit what each completed purchase earns: floor(total * earn_rate * tier multiplier).

    The multiplier is the customer's tier at this moment (recompute tiers first, so a purchase
    that lifts the customer into a tier earns at that tier). Earned points expire
    ``expiry_days`` after the purchase was placed; a purchase reported after its points would
    have expired earns none. Idempotent per purchase (key ``earn:purchase:<id>``). A fixed
    number of statements for any number of purchases.
    """
    now = now or timezone.now()
    credits = _purchase_credits(purchase_ids, now=now, program=program or loyalty_program_get())
    return credits_write([credit for credit in credits if credit.kind == PointsKind.EARN], at=now)


# PostgreSQL: each completed purchase with its customer's tier and whether it releases a referral
# bonus (the customer was referred by an active customer and has no earlier completed purchase;
# the CASE probes for an earlier purchase only for such customers).
_PURCHASES_FOR_CREDITS = """
    SELECT purchase.id, purchase.customer_id, purchase.total, purchase.placed_at, customer.tier,
           customer.external_id, customer.referred_by_id,
           CASE WHEN customer.referred_by_id IS NOT NULL AND referrer.erased_at IS NULL THEN NOT EXISTS (
               SELECT 1 FROM customers_purchase earlier
               WHERE earlier.customer_id = purchase.customer_id AND earlier.status = 'completed'
                 AND (earlier.placed_at < purchase.placed_at
                      OR (earlier.placed_at = purchase.placed_at AND earlier.id < purchase.id))
           ) ELSE FALSE END
    FROM customers_purchase purchase
    JOIN customers_customer customer ON customer.id = purchase.customer_id
    LEFT JOIN customers_customer referrer ON referrer.id = customer.referred_by_id
    WHERE purchase.id = ANY(%s) AND purchase.status = 'completed'
"""


def _purchases_for_credits(ids: list[int]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(_PURCHASES_FOR_CREDITS, [ids])
        rows: list[tuple[Any, ...]] = cursor.fetchall()
        return rows


def _purchase_credits(purchase_ids: Iterable[int], *, now: dt.datetime, program: Program) -> list[Credit]:
    """What the completed purchases earn, and the referral bonuses their first purchases release:
    one query for both (each purchase is read once, with its customer's tier and referrer)."""
    ids = sorted(set(purchase_ids))
    if not ids or (program.earn_rate == 0 and program.referral_bonus == 0):
        return []
    earned: list[Credit] = []
    referrals: list[Credit] = []
    for pk, customer_id, total, placed_at, tier, external_id, referrer_id, releases in _purchases_for_credits(ids):
        expires_at = program.expires_at(placed_at)
        if program.earn_rate and (expires_at is None or expires_at > now):
            earned.append(
                Credit(
                    customer_id=customer_id,
                    kind=PointsKind.EARN,
                    points=program.points_for(total, program.multiplier(tier)),
                    key=earn_key(pk),
                    expires_at=expires_at,
                    purchase_id=pk,
                )
            )
        if releases and program.referral_bonus:
            referrals.append(
                Credit(
                    customer_id=referrer_id,
                    kind=PointsKind.BONUS,
                    points=program.referral_bonus,
                    key=f"bonus:referral:{customer_id}",
                    expires_at=program.expires_at(now),
                    reason=f"Referral: {external_id} made a first purchase",
                )
            )
    return earned + referrals


def points_welcome_for_customers(
    *, customer_ids: Iterable[int], now: dt.datetime | None = None, program: Program | None = None
) -> list[PointsEntry]:
    """The welcome bonus, once per customer (key ``bonus:welcome:<id>``), for customers just
    created in the CRM whose sign-up time is recent (see WELCOME_MAX_SIGNUP_AGE)."""
    now = now or timezone.now()
    return credits_write(_welcome_credits(customer_ids, now=now, program=program or loyalty_program_get()), at=now)


def _welcome_credits(customer_ids: Iterable[int], *, now: dt.datetime, program: Program) -> list[Credit]:
    ids = sorted(set(customer_ids))
    if not ids or program.welcome_bonus == 0:
        return []
    # The sign-up age is checked here, not in SQL: a range on created_at tempts the planner into
    # scanning every recent customer when only these few ids are wanted.
    signed_up = Customer.objects.filter(pk__any=ids, erased_at__isnull=True).values_list("pk", "created_at")
    eligible = [pk for pk, created_at in signed_up if created_at >= now - WELCOME_MAX_SIGNUP_AGE]
    return [_welcome_credit(pk, now=now, program=program) for pk in eligible]


def _welcome_credit(customer_id: int, *, now: dt.datetime, program: Program) -> Credit:
    return Credit(
        customer_id=customer_id,
        kind=PointsKind.BONUS,
        points=program.welcome_bonus,
        key=f"bonus:welcome:{customer_id}",
        expires_at=program.expires_at(now),
        reason="Welcome bonus",
    )


def points_welcome_for_created(*, customer_ids: list[int], now: dt.datetime, program: Program) -> int:
    """The welcome bonus of customers this transaction has just created, signing up ``now``, with
    their ``points_balance`` already set to ``welcome_points(program)`` by that insert: only the
    ledger's entries are written, so each new row is written once (the bulk ingest's customers)."""
    credits = [_welcome_credit(pk, now=now, program=program) for pk in customer_ids]
    gained = credits_insert_fresh(credits, balances=dict.fromkeys(customer_ids, 0), at=now)
    return sum(gained.values())


def welcome_points(program: Program) -> int:
    """The points balance a customer created now starts with: the welcome bonus."""
    return program.welcome_bonus


_LOCK_BUYERS = """
    SELECT id FROM customers_customer
    WHERE id IN (SELECT customer_id FROM customers_purchase WHERE id = ANY(%s) AND status = 'completed')
    ORDER BY id FOR NO KEY UPDATE
"""


def _buyers_lock(purchase_ids: list[int]) -> list[int]:
    """Lock the customers of these completed purchases in id order (as customers_lock does),
    finding them in the same statement; returns their ids."""
    with connection.cursor() as cursor:
        cursor.execute(_LOCK_BUYERS, [purchase_ids])
        return [row[0] for row in cursor.fetchall()]


@dataclass(frozen=True)
class LoyaltyOutcome:
    earned: int
    bonuses: int
    tier_changes: int


def loyalty_after_purchases(
    *,
    purchase_ids: Iterable[int],
    now: dt.datetime | None = None,
    locked_buyer_ids: Iterable[int] | None = None,
) -> LoyaltyOutcome:
    """Everything loyalty does when purchases are recorded, for any number of them at once:
    recompute the buyers' tiers, points earned, and referral bonuses (the welcome bonus comes
    with the customer: customer_get_or_create_locked, the bulk ingest's customer step). Call it
    inside the transaction that stored the purchases. Idempotent: calling it again for the same
    purchases changes nothing.

    ``locked_buyer_ids``: the customers of these purchases, when the caller holds their locks
    already (the purchase services do); they are then not looked up and locked again.
    """
    ids = sorted(set(purchase_ids))
    if not ids:
        return LoyaltyOutcome(0, 0, 0)
    now = now or timezone.now()
    program = loyalty_program_get()
    buyers = _buyers_lock(ids) if locked_buyer_ids is None else sorted(set(locked_buyer_ids))
    moved = 0
    if buyers:
        moved = tiers_apply(customer_ids=buyers, program=program, now=now, cause=TierChange.Cause.PURCHASE)
    # One write for earnings and referral bonuses: each customer's balance moves once.
    written = credits_append(_purchase_credits(ids, now=now, program=program), at=now, locked=buyers)
    return LoyaltyOutcome(
        earned=sum(entry.credit.points for entry in written if entry.credit.kind == PointsKind.EARN),
        bonuses=sum(entry.credit.points for entry in written if entry.credit.kind == PointsKind.BONUS),
        tier_changes=moved,
    )


class NewPurchase(NamedTuple):
    """A purchase this transaction has just inserted, as loyalty needs it."""

    id: int
    customer_id: int
    total: Decimal
    placed_at: dt.datetime
    completed: bool


@dataclass(frozen=True)
class BuyerMoves:
    """What loyalty changes on the buyers' rows, for the caller to write in its one update."""

    points: dict[int, int]  # customer id -> points gained
    tiers: dict[int, str]  # customer id -> new tier, for the customers that move
    tier_changes: int


_LOCK_BUYER_ROWS = """
    SELECT customer.id, customer.points_balance,
           customer.referred_by_id IS NOT NULL AND referrer.erased_at IS NULL
    FROM customers_customer customer
    LEFT JOIN customers_customer referrer ON referrer.id = customer.referred_by_id
    WHERE customer.id = ANY(%s) ORDER BY customer.id FOR NO KEY UPDATE OF customer
"""


def buyers_lock(customer_ids: list[int]) -> dict[int, tuple[int, bool]]:
    """Lock the buyers' rows in id order (as customers_lock does); id -> (points balance, whether
    they were referred by a customer who is not erased)."""
    with bound_cursor() as cursor:
        cursor.execute(_LOCK_BUYER_ROWS, [sql_array(sorted(set(customer_ids)))])
        return {pk: (balance, referred) for pk, balance, referred in cursor.fetchall()}


def loyalty_for_new_purchases(
    *, purchases: list[NewPurchase], buyers: dict[int, tuple[int, bool]], now: dt.datetime
) -> BuyerMoves:
    """loyalty_after_purchases for purchases this transaction has just inserted, whose buyers the
    caller has locked (``buyers``, from buyers_lock): the same tiers, points and referral bonuses,
    but the buyers' rows are not written here. The tier history and the ledger entries are; the
    points gained and the new tiers come back for the caller's one update of each buyer's row
    (with its purchase stats), instead of one update each for stats, balance and tier.

    An earn entry's key names its purchase, new in this transaction, so it cannot exist yet; a
    referral bonus goes to another customer and is written by ``referrals_for_new_purchases``
    once the buyers' rows are moved."""
    program = loyalty_program_get()
    current: dict[int, str] = {}  # each buyer's tier once this batch counts
    history = []
    for pk, old, spent in trailing_spends(sorted(buyers), now=now):
        current[pk] = program.tier_for_spend(spent).code
        if current[pk] != old:
            history.append(
                TierChange(
                    customer_id=pk,
                    from_tier=old,
                    to_tier=current[pk],
                    trailing_spend=spent or 0,
                    cause=TierChange.Cause.PURCHASE,
                    changed_at=now,
                )
            )
    if history:
        TierChange.objects.bulk_create(history)
    earned = []
    if program.earn_rate:
        # The multiplier is the tier this purchase lifts the customer into (as tiers go first in
        # loyalty_after_purchases).
        for purchase in sorted(purchases, key=lambda purchase: purchase.id):
            expires_at = program.expires_at(purchase.placed_at)
            if purchase.completed and (expires_at is None or expires_at > now):
                earned.append(
                    Credit(
                        customer_id=purchase.customer_id,
                        kind=PointsKind.EARN,
                        points=program.points_for(purchase.total, program.multiplier(current[purchase.customer_id])),
                        key=earn_key(purchase.id),
                        expires_at=expires_at,
                        purchase_id=purchase.id,
                    )
                )
    gained = credits_insert_fresh(earned, balances={pk: balance for pk, (balance, _) in buyers.items()}, at=now)
    moved = {change.customer_id: change.to_tier for change in history}
    return BuyerMoves(points=gained, tiers=moved, tier_changes=len(history))


def referrals_for_new_purchases(
    *, purchases: list[NewPurchase], buyers: dict[int, tuple[int, bool]], now: dt.datetime
) -> int:
    """The referral bonuses released by the first completed purchases of referred buyers among
    these (see loyalty_for_new_purchases); returns the points credited. Runs a query only when a
    buyer was referred."""
    referred = [p.id for p in purchases if p.completed and buyers[p.customer_id][1]]
    program = loyalty_program_get()
    if not referred or not program.referral_bonus:
        return 0
    credits = [
        credit for credit in _purchase_credits(referred, now=now, program=program) if credit.kind == PointsKind.BONUS
    ]
    written = credits_append(credits, at=now, locked=buyers)
    return sum(entry.credit.points for entry in written)


def reversal_key(purchase_id: int) -> str:
    return f"reversal:purchase:{purchase_id}"


def loyalty_after_status_change(*, purchase_ids: Iterable[int], now: dt.datetime | None = None) -> None:
    """A purchase was refunded or cancelled: give back the points redeemed for it, take back the
    points it earned, and recompute the customer's tier.

    Redeemed points come back first, as a new lot (expiring ``expiry_days`` from now). Then the
    earned points still in the account are taken back, that purchase's own lot first; what it
    earned and expired is not taken twice. If the earned points were spent, the balance goes to
    zero and the uncovered rest is recorded on the reversal entry. Idempotent per purchase.
    """
    purchases = list(
        Purchase.objects.filter(pk__any=sorted(set(purchase_ids)))
        .exclude(status=PurchaseStatus.COMPLETED)
        .values_list("pk", "customer_id", "external_id")
    )
    if not purchases:
        return
    now = now or timezone.now()
    program = loyalty_program_get()
    customers_lock(customer_id for _, customer_id, _ in purchases)
    for purchase_id, customer_id, external_id in purchases:  # a refund is one purchase; admin actions a few
        redemptions = PointsEntry.objects.filter(customer_id=customer_id, kind=PointsKind.REDEEM).filter(
            Q(purchase_id=purchase_id) | Q(order_id=external_id)
        )
        credits_write(
            [
                Credit(
                    customer_id=customer_id,
                    kind=PointsKind.REVERSAL,
                    points=-redemption.points,
                    key=f"return:redeem:{redemption.pk}",
                    expires_at=program.expires_at(now),
                    purchase_id=purchase_id,
                    reason=f"Points redeemed for order {external_id} returned: the order was refunded or cancelled",
                    related_entry_id=redemption.pk,
                )
                for redemption in redemptions
            ],
            at=now,
        )
        earned = PointsEntry.objects.filter(idempotency_key=earn_key(purchase_id)).first()
        if earned is None or PointsEntry.objects.filter(idempotency_key=reversal_key(purchase_id)).exists():
            continue
        expired = -(
            PointsEntry.objects.filter(related_entry=earned, kind=PointsKind.EXPIRE).aggregate(s=Sum("points"))["s"]
            or 0
        )
        to_reverse = earned.points - expired
        if to_reverse <= 0:
            continue
        debit_write(
            Debit(
                customer_id=customer_id,
                kind=PointsKind.REVERSAL,
                points=to_reverse,
                key=reversal_key(purchase_id),
                purchase_id=purchase_id,
                reason=f"Points earned by order {external_id} taken back: the order was refunded or cancelled",
                related_entry_id=earned.pk,
                prefer_lot_id=earned.pk,
            ),
            at=now,
            partial=True,
        )
    tiers_recompute_for_customers(
        customer_ids=[customer_id for _, customer_id, _ in purchases], cause=TierChange.Cause.REFUND, now=now
    )
