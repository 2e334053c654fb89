"""The daily loyalty passes over all customers: expiry, tier recompute, birthday bonuses.

Each pass is set-based and works in bounded batches of customers, one transaction per batch: a
handful of statements per batch whatever its size, locks held for one batch only (a checkout
redeeming points waits at most one batch), and memory bounded by the batch, not the customer base.
"""

import datetime as dt
import logging
import zoneinfo
from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import F, OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from customers.loyalty.services.ledger import Credit, credits_write, customers_lock
from customers.loyalty.services.program import loyalty_program_get
from customers.loyalty.services.tiers import tiers_apply
from customers.models import Customer, PointsEntry, PointsKind, TierChange

logger = logging.getLogger(__name__)

EXPIRY_BATCH_CUSTOMERS = 5_000
TIER_BATCH_CUSTOMERS = 10_000


@dataclass(frozen=True)
class ExpiryResult:
    customers: int
    lots: int
    points: int


def _in_list(column: str, ids: list[int]) -> tuple[str, list[list[int]]]:
    """``column = ANY(...)``: the ids as one array parameter."""
    return f"{column} = ANY(%s)", [ids]


# One expire entry per lot (key ``expire:lot:<id>``), so a lot can only ever expire once and a
# refund knows how much of its purchase's lot expired. ``balance_after`` walks each customer's
# expiring lots in FIFO order from the balance before the pass.
_INSERT_EXPIRES = """
    INSERT INTO customers_pointsentry
        (customer_id, kind, points, idempotency_key, created_at, purchase_id, reason, expires_at,
         remaining, uncovered, related_entry_id, balance_after, order_id)
    SELECT lot.customer_id, %s, -lot.remaining, 'expire:lot:' || CAST(lot.id AS TEXT), %s, lot.purchase_id,
           '', NULL, NULL, 0, lot.id,
           customer.points_balance - SUM(lot.remaining) OVER (
               PARTITION BY lot.customer_id ORDER BY lot.expires_at, lot.id),
           ''
    FROM customers_pointsentry AS lot
    JOIN customers_customer AS customer ON customer.id = lot.customer_id
    WHERE {customers} AND lot.remaining > 0 AND lot.expires_at <= %s
    RETURNING points
"""


def points_expire_due(*, now: dt.datetime | None = None, batch_size: int = EXPIRY_BATCH_CUSTOMERS) -> ExpiryResult:
    """Expire what is left of every lot whose expiry has come (``expires_at <= now``).

    Walks the customers with such lots in id order, ``batch_size`` at a time; per batch: lock
    the customers, one INSERT of expire entries, one UPDATE of the balances, one UPDATE zeroing
    the lots. Running it again (or on two workers) writes nothing twice.
    """
    now = now or timezone.now()
    db_now = connection.ops.adapt_datetimefield_value(now)
    customers = lots = points = 0
    after = 0
    while True:
        with transaction.atomic():
            ids = list(
                PointsEntry.objects.filter(remaining__gt=0, expires_at__lte=now, customer_id__gt=after)
                .order_by("customer_id")
                .values_list("customer_id", flat=True)
                .distinct()[:batch_size]
            )
            if not ids:
                break
            after = ids[-1]
            customers_lock(ids)
            due = PointsEntry.objects.filter(
                customer_id=OuterRef("pk"), remaining__gt=0, expires_at__lte=now
            ).order_by()
            expiring = due.values("customer_id").annotate(total=Sum("remaining")).values("total")
            due_lots = PointsEntry.objects.filter(customer_id__in=ids, remaining__gt=0, expires_at__lte=now)
            in_batch, params = _in_list("lot.customer_id", ids)
            with connection.cursor() as cursor:
                cursor.execute(_INSERT_EXPIRES.format(customers=in_batch), [PointsKind.EXPIRE, db_now, *params, db_now])
                expired = [row[0] for row in cursor.fetchall()]
            lots += len(expired)
            points -= sum(expired)
            # The balances drop by exactly what the lots still hold (read before they are zeroed).
            Customer.objects.filter(pk__any=ids).update(
                points_balance=F("points_balance") - Coalesce(Subquery(expiring), 0)
            )
            due_lots.update(remaining=0)
            customers += len(ids)
    logger.info("loyalty.points_expired", extra={"customers": customers, "lots": lots, "points": points})
    return ExpiryResult(customers=customers, lots=lots, points=points)


def tiers_recompute_all(*, now: dt.datetime | None = None, batch_size: int = TIER_BATCH_CUSTOMERS) -> int:
    """The daily tier recompute: every customer to the tier of their trailing-365-day completed
    spend, downgrades included (spend leaves the window as purchases age). Returns moves."""
    now = now or timezone.now()
    program = loyalty_program_get()
    moved = 0
    after = 0
    while True:
        with transaction.atomic():
            bounds = list(
                Customer.objects.filter(pk__gt=after).order_by("pk").values_list("pk", flat=True)[:batch_size]
            )
            if not bounds:
                break
            after = bounds[-1]
            moved += tiers_apply(
                customer_ids=bounds,
                program=program,
                now=now,
                cause=TierChange.Cause.DAILY,
            )
    logger.info("loyalty.tiers_recomputed", extra={"moved": moved})
    return moved


def tiers_recompute_after_commit() -> None:
    """Staff changed the tier table: once this transaction commits, every customer moves to their
    new tier in the background (a task), not inside the staff member's request."""
    transaction.on_commit(_tiers_recompute_enqueue)


def _tiers_recompute_enqueue() -> None:
    from customers.tasks import loyalty_recompute_tiers  # the tasks module imports these services

    try:
        loyalty_recompute_tiers.delay()
    except Exception:  # the broker being down must not lose the settings; the daily run catches up
        logger.warning("loyalty.tier_recompute.enqueue_failed", exc_info=True)


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def points_birthday_bonuses(*, now: dt.datetime | None = None) -> int:
    """Credit the birthday bonus to every customer whose birthday it is today in their own time
    zone, once per calendar year (key ``bonus:birthday:<id>:<year>``). A 29 February birthday is
    celebrated on 28 February in other years. Safe to run more often than daily.

    Works per time zone in use (a handful), not per customer: each zone's local date picks its
    customers through the (birth_month, birth_day) index.
    """
    now = now or timezone.now()
    program = loyalty_program_get()
    if program.birthday_bonus == 0:
        return 0
    credited = 0
    zones = (
        Customer.objects.filter(birth_date__isnull=False, erased_at__isnull=True)
        .order_by()
        .values_list("timezone", flat=True)
        .distinct()
    )
    for zone in list(zones):
        try:
            today = now.astimezone(zoneinfo.ZoneInfo(zone)).date()
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            logger.warning("loyalty.birthday.unknown_timezone", extra={"timezone": zone})
            continue
        days = [(today.month, today.day)]
        if (today.month, today.day) == (2, 28) and not _is_leap(today.year):
            days.append((2, 29))
        for month, day in days:
            with transaction.atomic():
                ids = list(
                    Customer.objects.filter(
                        timezone=zone, birth_month=month, birth_day=day, erased_at__isnull=True
                    ).values_list("pk", flat=True)
                )
                credited += len(
                    credits_write(
                        [
                            Credit(
                                customer_id=pk,
                                kind=PointsKind.BONUS,
                                points=program.birthday_bonus,
                                key=f"bonus:birthday:{pk}:{today.year}",
                                expires_at=program.expires_at(now),
                                reason=f"Birthday bonus {today.year}",
                            )
                            for pk in ids
                        ],
                        at=now,
                    )
                )
    logger.info("loyalty.birthday_bonuses", extra={"credited": credited})
    return credited
