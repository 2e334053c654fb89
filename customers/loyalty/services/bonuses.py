"""Bonuses outside purchases: grants by key (campaign offers) and the review/NPS bonus."""

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from django.utils import timezone

from customers.loyalty.services.ledger import Credit, credits_write
from customers.loyalty.services.program import loyalty_program_get
from customers.models import PointsEntry, PointsKind, Purchase, PurchaseStatus

# --- Bonuses ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BonusGrant:
    customer_id: int
    points: int
    key: str
    reason: str


def points_bonus_grant(*, grants: Iterable[BonusGrant], now: dt.datetime | None = None) -> list[PointsEntry]:
    """Credit bonus lots (e.g. a campaign's offer of bonus points), idempotent per key, set-based.

    Keys are the caller's, e.g. ``campaign:<id>:customer:<id>``; a key seen before is skipped.
    """
    now = now or timezone.now()
    program = loyalty_program_get()
    return credits_write(
        [
            Credit(
                customer_id=grant.customer_id,
                kind=PointsKind.BONUS,
                points=grant.points,
                key=grant.key,
                expires_at=program.expires_at(now),
                reason=grant.reason,
            )
            for grant in grants
        ],
        at=now,
    )


def points_review_bonus(
    *, customer_id: int, answered_at: dt.datetime, now: dt.datetime | None = None
) -> PointsEntry | None:
    """The review/NPS bonus, once per purchase.

    An NPS answer names no purchase, so it counts for the customer's latest completed purchase
    placed before the answer (key ``bonus:review:<purchase id>``): answering twice about the same
    purchase earns once, answering again after a new purchase earns again. A customer who has
    never completed a purchase has nothing to review and gets no bonus.
    """
    program = loyalty_program_get()
    if program.review_bonus == 0:
        return None
    now = now or timezone.now()
    purchase = (
        Purchase.objects.filter(customer_id=customer_id, status=PurchaseStatus.COMPLETED, placed_at__lte=answered_at)
        .order_by("-placed_at", "-pk")
        .values_list("pk", "external_id")
        .first()
    )
    if purchase is None:
        return None
    entries = credits_write(
        [
            Credit(
                customer_id=customer_id,
                kind=PointsKind.BONUS,
                points=program.review_bonus,
                key=f"bonus:review:{purchase[0]}",
                expires_at=program.expires_at(now),
                purchase_id=purchase[0],
                reason=f"Review bonus: NPS answer about order {purchase[1]}",
            )
        ],
        at=now,
    )
    return entries[0] if entries else None
