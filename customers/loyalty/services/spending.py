"""Redemption at checkout and staff adjustments, both idempotent on a client-given key."""

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from customers.loyalty.services.ledger import Credit, Debit, InsufficientPoints, credits_write, debit_write
from customers.loyalty.services.program import (
    IDEMPOTENCY_KEY_MAX_LENGTH,
    MAX_POINTS,
    REASON_MAX_LENGTH,
    loyalty_program_get,
)
from customers.models import AuditLog, Customer, PointsEntry, PointsKind, Purchase, PurchaseStatus
from retention_crm import validation as v
from retention_crm.errors import ApplicationError, Conflict, NotFound

# --- Redemption and staff adjustments -------------------------------------------------------------


def _clean_idempotency_key(value: Any) -> str:
    if value in (None, ""):
        raise v.invalid("idempotency_key", "is required")
    if not isinstance(value, str):
        raise v.invalid("idempotency_key", "must be a string")
    key = value.strip()
    if not 1 <= len(key) <= IDEMPOTENCY_KEY_MAX_LENGTH:
        raise v.invalid("idempotency_key", f"must be 1 to {IDEMPOTENCY_KEY_MAX_LENGTH} characters")
    if any(ord(ch) < 32 for ch in key):
        raise v.invalid("idempotency_key", "must not contain control characters")
    return key


def _client_key(customer: Customer, key: str) -> str:
    """Keys sent by the shop or staff live in their own namespace per customer, so they can never
    collide with the keys the CRM writes (earn:..., expire:...) or with another customer's."""
    return f"client:{customer.pk}:{key}"


def _customer_locked(external_id: Any) -> Customer:
    external_id = v.clean_external_id(external_id, "customer")
    customer = (
        Customer.objects.select_for_update(no_key=True)
        .filter(external_id=external_id)
        .only("pk", "external_id", "points_balance")
        .first()
    )
    if customer is None:
        raise NotFound(f"No customer with external_id {external_id!r}.", code="customer_not_found")
    return customer


def _idempotency_conflict() -> Conflict:
    return Conflict(
        "This idempotency_key was already used for a different request.",
        code="idempotency_conflict",
        fields={"idempotency_key": ["already used for a different request"]},
    )


@dataclass(frozen=True)
class Redemption:
    redeemed: int
    # The ledger's columns are nullable (older kinds of entry); the entries written here carry both.
    discount: Decimal | None
    balance: int | None
    entry: PointsEntry
    replayed: bool = False


def _customer_get(external_id: Any) -> Customer:
    external_id = v.clean_external_id(external_id, "customer")
    customer = Customer.objects.filter(external_id=external_id).only("pk", "external_id", "points_balance").first()
    if customer is None:
        raise NotFound(f"No customer with external_id {external_id!r}.", code="customer_not_found")
    return customer


def _replay(first: PointsEntry, *, points: int, order_total: Decimal, order_id: str) -> Redemption:
    """The first answer for a key again, if this is the same request; a 409 if it is not."""
    same = (
        first.kind == PointsKind.REDEEM
        and -first.points == points
        and first.order_total == order_total
        and first.order_id == order_id
    )
    if not same:
        raise _idempotency_conflict()
    return Redemption(
        redeemed=-first.points, discount=first.discount, balance=first.balance_after, entry=first, replayed=True
    )


def points_redeem(
    *,
    customer: Any,
    points: Any,
    order_total: Any,
    idempotency_key: Any,
    order_id: Any = None,
    at: dt.datetime | None = None,
) -> Redemption:
    """Spend points at checkout: 1 point pays ``point_value``, at most ``max_redeem_share`` of the
    order total. Too few points or over the share: an error and nothing changes.

    The same idempotency key again returns the first result and changes nothing; the same key
    for a different request is a 409.

    Everything that only reads happens before the customer's row is locked; the lock is taken by
    the conditional UPDATE of the balance, which is also what refuses an overdraft, and is held
    for that UPDATE, the lots' UPDATE and the INSERT only. Two requests racing with one key both
    get that far; the unique key lets one INSERT win, the other's transaction rolls back whole
    and it answers with the winner's result.
    """
    points = v.clean_count(points, "points", minimum=1, maximum=MAX_POINTS)
    order_total = v.clean_money(order_total, "order_total")
    order_id = v.clean_external_id(order_id, "order_id") if order_id not in (None, "") else ""
    key = _clean_idempotency_key(idempotency_key)
    program = loyalty_program_get(with_tiers=False)
    owner = _customer_get(customer)
    client_key = _client_key(owner, key)

    first = PointsEntry.objects.filter(idempotency_key=client_key).first()
    if first is not None:
        return _replay(first, points=points, order_total=order_total, order_id=order_id)
    allowed = program.max_points_for_order(order_total)
    if points > allowed:
        share = (program.max_redeem_share * 100).normalize()
        raise ApplicationError(
            f"At most {allowed} points can pay for this order ({share:f} % of {order_total}).",
            code="max_share_exceeded",
            fields={"points": [f"at most {allowed} for this order"]},
        )
    purchase = None
    if order_id:
        purchase = Purchase.objects.filter(external_id=order_id, customer=owner).only("pk", "status").first()
        if purchase is not None and purchase.status != PurchaseStatus.COMPLETED:
            raise Conflict(f"Order {order_id!r} is {purchase.status}; points cannot pay for it.", code="order_closed")
    discount = program.discount_for(points)
    try:
        with transaction.atomic():
            entry = debit_write(
                Debit(
                    customer_id=owner.pk,
                    kind=PointsKind.REDEEM,
                    points=points,
                    key=client_key,
                    purchase_id=purchase.pk if purchase else None,
                    reason=f"Redeemed for order {order_id}" if order_id else "Redeemed at checkout",
                    order_id=order_id,
                    order_total=order_total,
                    discount=discount,
                ),
                at=at or timezone.now(),
            )
    except InsufficientPoints:
        available = Customer.objects.filter(pk=owner.pk).values_list("points_balance", flat=True).get()
        raise InsufficientPoints(
            f"Not enough points: {points} asked, {available} available.",
            fields={"points": [f"at most {available} available"]},
        ) from None
    except IntegrityError:
        first = PointsEntry.objects.filter(idempotency_key=client_key).first()
        if first is None:
            raise
        return _replay(first, points=points, order_total=order_total, order_id=order_id)
    return Redemption(redeemed=points, discount=discount, balance=entry.balance_after, entry=entry)


@dataclass(frozen=True)
class Adjustment:
    points: int
    balance: int | None  # the ledger's column is nullable; the entries written here carry it
    entry: PointsEntry
    replayed: bool = False


@transaction.atomic
def points_adjust(
    *,
    customer: Any,
    points: Any,
    reason: Any,
    idempotency_key: Any,
    actor: str,
    created_by_id: int | None = None,
    at: dt.datetime | None = None,
) -> Adjustment:
    """A staff correction with a reason: positive adds a lot (expiring like earned points),
    negative takes points oldest first and may not take more than the balance.

    Recorded in the ledger and the audit log. Idempotent on the key like a redemption.
    """
    if isinstance(points, bool):
        raise v.invalid("points", "must be a whole number")
    points = v.clean_count(points, "points", minimum=-MAX_POINTS, maximum=MAX_POINTS)
    if points == 0:
        raise v.invalid("points", "must not be 0")
    reason = v.clean_text(reason, "reason", REASON_MAX_LENGTH)
    if not reason:
        raise v.invalid("reason", "is required: say why the points change")
    key = _clean_idempotency_key(idempotency_key)
    owner = _customer_locked(customer)

    first = PointsEntry.objects.filter(idempotency_key=_client_key(owner, key)).first()
    if first is not None:
        if first.kind != PointsKind.ADJUST or first.points != points or first.reason != reason:
            raise _idempotency_conflict()
        return Adjustment(points=first.points, balance=first.balance_after, entry=first, replayed=True)

    at = at or timezone.now()
    if points > 0:
        program = loyalty_program_get(with_tiers=False)
        (entry,) = credits_write(
            [
                Credit(
                    customer_id=owner.pk,
                    kind=PointsKind.ADJUST,
                    points=points,
                    key=_client_key(owner, key),
                    expires_at=program.expires_at(at),
                    reason=reason,
                    created_by_id=created_by_id,
                )
            ],
            at=at,
        )
    else:
        if owner.points_balance < -points:
            raise InsufficientPoints(
                f"Cannot take {-points} points: the balance is {owner.points_balance}.",
                fields={"points": [f"cannot take {-points}: the balance is {owner.points_balance}"]},
            )
        entry = debit_write(
            Debit(
                customer_id=owner.pk,
                kind=PointsKind.ADJUST,
                points=-points,
                key=_client_key(owner, key),
                reason=reason,
                created_by_id=created_by_id,
            ),
            at=at,
        )
    AuditLog.objects.create(
        action="points.adjust",
        target=f"customer:{owner.external_id}",
        actor=actor[:150],
        at=at,
        details={"points": points, "reason": reason, "entry_id": entry.pk, "balance": entry.balance_after},
    )
    return Adjustment(points=entry.points, balance=entry.balance_after, entry=entry)


LARGE_GRANT_ACTION = "points.large_grant"


@transaction.atomic
def points_adjust_by_key(
    *, customer: Any, points: Any, reason: Any, idempotency_key: Any, actor: str, created_by_id: int | None = None
) -> Adjustment:
    """An adjustment asked for with an API key (scope loyalty_adjust): at most
    LOYALTY_ADJUST_MAX_POINTS either way, so a leaked key cannot mint an unbounded balance in one
    call; a grant of LOYALTY_ADJUST_AUDIT_POINTS or more gets its own audit entry, in the same
    transaction, so staff can list the large ones apart (no reason text: it may name the customer,
    and the ledger keeps it)."""
    cap = settings.LOYALTY_ADJUST_MAX_POINTS
    points = v.clean_count(points, "points", minimum=-cap, maximum=cap)
    result = points_adjust(
        customer=customer,
        points=points,
        reason=reason,
        idempotency_key=idempotency_key,
        actor=actor,
        created_by_id=created_by_id,
    )
    if not result.replayed and result.points >= settings.LOYALTY_ADJUST_AUDIT_POINTS:
        AuditLog.objects.create(
            action=LARGE_GRANT_ACTION,
            target=f"customer:{customer}",
            actor=actor[:150],
            details={
                "points": result.points,
                "entry_id": result.entry.pk,
                "threshold": settings.LOYALTY_ADJUST_AUDIT_POINTS,
                "via": "api",
            },
        )
    return result
