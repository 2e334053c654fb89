"""Ledger primitives: lock customers, append lots (credits), spend oldest lots first (debits)."""

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple

from django.db import connection

from customers.models import Customer, PointsEntry
from retention_crm.bound_cursor import bound_cursor, sql_array
from retention_crm.errors import ApplicationError

# --- Ledger primitives -----------------------------------------------------------------------------


class InsufficientPoints(ApplicationError):
    def __init__(self, message: str, *, fields: dict[str, Any] | None = None) -> None:
        super().__init__(message, code="insufficient_points", status=409, fields=fields)


@dataclass(frozen=True)
class Credit:
    """Points to add to one customer as a new lot."""

    customer_id: int
    kind: str
    points: int
    key: str
    expires_at: dt.datetime | None
    purchase_id: int | None = None
    reason: str = ""
    related_entry_id: int | None = None
    created_by_id: int | None = None


def customers_lock(customer_ids: Iterable[int]) -> dict[int, int]:
    """Lock the customers' rows in id order (so concurrent writers never deadlock on each other)
    and return their balances as of the lock.

    FOR NO KEY UPDATE, the lock a plain UPDATE takes: writers of one customer queue up, while
    rows that merely refer to the customer (a purchase being inserted) never wait for it."""
    ids = sorted(set(customer_ids))
    if not ids:
        return {}
    with connection.cursor() as cursor:  # on every purchase: the plain statement, not the ORM's
        cursor.execute(_LOCK_CUSTOMERS, [ids])
        return dict(cursor.fetchall())


_LOCK_CUSTOMERS = """
    SELECT id, points_balance FROM customers_customer WHERE id = ANY(%s) ORDER BY id FOR NO KEY UPDATE
"""


# PostgreSQL: the whole batch of credits in one statement. Each credit is checked against the
# ledger's keys (the first of a repeated key wins), its balance_after is the locked balance plus
# the running sum of the customer's credits in input order, and the balances move by the same sums.
_APPEND_CREDITS = """
    WITH credit AS (
        SELECT * FROM unnest(
            %(customer)s::bigint[], %(kind)s::varchar[], %(points)s::bigint[], %(key)s::varchar[],
            %(expires)s::timestamptz[], %(purchase)s::bigint[], %(reason)s::text[], %(related)s::bigint[],
            %(created_by)s::integer[]
        ) WITH ORDINALITY AS c(customer_id, kind, points, idempotency_key, expires_at, purchase_id, reason,
                               related_entry_id, created_by_id, position)
    ), known AS (
        -- Probed through the unique index, whatever the planner thinks of the ledger's size.
        SELECT idempotency_key FROM customers_pointsentry WHERE idempotency_key = ANY(%(key)s::varchar[])
    ), fresh AS (
        SELECT DISTINCT ON (credit.idempotency_key) credit.*
        FROM credit
        WHERE credit.idempotency_key NOT IN (SELECT idempotency_key FROM known)
        ORDER BY credit.idempotency_key, credit.position
    ), written AS (
        INSERT INTO customers_pointsentry
            (customer_id, kind, points, remaining, uncovered, idempotency_key, created_at, expires_at,
             purchase_id, reason, related_entry_id, created_by_id, balance_after, order_id)
        SELECT fresh.customer_id, fresh.kind, fresh.points, fresh.points, 0, fresh.idempotency_key, %(at)s,
               fresh.expires_at, fresh.purchase_id, fresh.reason, fresh.related_entry_id, fresh.created_by_id,
               customer.points_balance
                   + SUM(fresh.points) OVER (PARTITION BY fresh.customer_id ORDER BY fresh.position),
               ''
        FROM fresh JOIN customers_customer customer ON customer.id = fresh.customer_id
        ORDER BY fresh.position
        RETURNING id, customer_id, points, idempotency_key, balance_after
    ), moved AS (
        UPDATE customers_customer customer SET points_balance = customer.points_balance + added.points
        FROM (SELECT customer_id, SUM(points) AS points FROM written GROUP BY customer_id) AS added
        WHERE customer.id = added.customer_id
    )
    SELECT id, idempotency_key, balance_after FROM written
"""


class Written(NamedTuple):
    """A credit as it went into the ledger."""

    credit: Credit
    entry_id: int
    balance_after: int


def credits_write(credits: Iterable[Credit], *, at: dt.datetime, locked: Iterable[int] = ()) -> list[PointsEntry]:
    """Append the credits whose idempotency key is new, as lots; returns the entries written, in
    the order given. See credits_append."""
    return [
        _entry(written.credit, at=at, entry_id=written.entry_id, balance_after=written.balance_after)
        for written in credits_append(credits, at=at, locked=locked)
    ]


def credits_append(credits: Iterable[Credit], *, at: dt.datetime, locked: Iterable[int] = ()) -> list[Written]:
    """Append the credits whose idempotency key is new, as lots; returns what was written, in the
    order given (without building a model instance per entry, for the batch paths).

    A fixed number of statements whatever the count: lock the customers, then one statement that
    inserts and moves the balances. A key seen before (or twice in the batch) is skipped, which makes every
    caller idempotent; credits for customers that do not exist are skipped too. ``locked``: customers
    whose rows the caller has locked already in this transaction.
    """
    credits = [credit for credit in credits if credit.points > 0]
    if not credits:
        return []
    customers_lock({credit.customer_id for credit in credits} - set(locked))
    return _credits_append_set_based(credits, at=at)


def _credits_append_set_based(credits: list[Credit], *, at: dt.datetime) -> list[Written]:
    columns: dict[str, Any] = {
        "customer": [credit.customer_id for credit in credits],
        "kind": [credit.kind for credit in credits],
        "points": [credit.points for credit in credits],
        "key": [credit.key for credit in credits],
        "expires": [credit.expires_at for credit in credits],
        "purchase": [credit.purchase_id for credit in credits],
        "reason": [credit.reason for credit in credits],
        "related": [credit.related_entry_id for credit in credits],
        "created_by": [credit.created_by_id for credit in credits],
        "at": at,
    }
    with bound_cursor() as cursor:
        cursor.execute(_APPEND_CREDITS, columns)
        written = {key: (entry_id, balance_after) for entry_id, key, balance_after in cursor.fetchall()}
    appended = []
    for credit in credits:
        if credit.key in written:
            entry_id, balance_after = written.pop(credit.key)  # pop: a repeated key is written once
            appended.append(Written(credit, entry_id, balance_after))
    return appended


# Lots whose keys are new by construction (they name rows created in this transaction), with the
# balance after each worked out by the caller from the locked balances: no key lookup, no join, and
# the customers' rows are left to the caller, who moves each balance once with its other changes.
_INSERT_FRESH_CREDITS = """
    INSERT INTO customers_pointsentry
        (customer_id, kind, points, remaining, uncovered, idempotency_key, created_at, expires_at,
         purchase_id, reason, balance_after, order_id)
    SELECT credit.customer_id, credit.kind, credit.points, credit.points, 0, credit.idempotency_key, %s,
           credit.expires_at, credit.purchase_id, credit.reason, credit.balance_after, ''
    FROM unnest(%s::bigint[], %s::varchar[], %s::bigint[], %s::varchar[], %s::timestamptz[], %s::bigint[],
                %s::text[], %s::bigint[])
        AS credit(customer_id, kind, points, idempotency_key, expires_at, purchase_id, reason, balance_after)
"""


def credits_insert_fresh(credits: list[Credit], *, balances: dict[int, int], at: dt.datetime) -> dict[int, int]:
    """Append credits whose keys cannot exist yet (they name a purchase or a customer created in
    this transaction), for customers whose rows the caller has locked; ``balances`` are those
    rows' balances. Returns how many points each customer gained: the caller adds them to
    ``points_balance`` in the same transaction (the cached balance stays the ledger's sum).

    Related entries and staff authors are not for these credits (they are for corrections)."""
    credits = [credit for credit in credits if credit.points > 0]
    if not credits:
        return {}
    running = dict(balances)
    gained: dict[int, int] = {}
    after = []
    for credit in credits:
        running[credit.customer_id] += credit.points
        gained[credit.customer_id] = gained.get(credit.customer_id, 0) + credit.points
        after.append(running[credit.customer_id])
    with bound_cursor() as cursor:
        cursor.execute(
            _INSERT_FRESH_CREDITS,
            [
                at,
                sql_array(credit.customer_id for credit in credits),
                sql_array(credit.kind for credit in credits),
                sql_array(credit.points for credit in credits),
                sql_array(credit.key for credit in credits),
                sql_array(credit.expires_at for credit in credits),
                sql_array(credit.purchase_id for credit in credits),
                sql_array(credit.reason for credit in credits),
                sql_array(after),
            ],
        )
    return gained


def _entry(credit: Credit, *, at: dt.datetime, entry_id: int | None, balance_after: int) -> PointsEntry:
    return PointsEntry(
        id=entry_id,
        customer_id=credit.customer_id,
        kind=credit.kind,
        points=credit.points,
        remaining=credit.points,
        idempotency_key=credit.key,
        created_at=at,
        expires_at=credit.expires_at,
        purchase_id=credit.purchase_id,
        reason=credit.reason,
        related_entry_id=credit.related_entry_id,
        created_by_id=credit.created_by_id,
        balance_after=balance_after,
    )


_SPEND = """
    UPDATE customers_customer SET points_balance = points_balance - %(points)s
    WHERE id = %(customer)s AND points_balance >= %(points)s
    RETURNING points_balance
"""

# FIFO: the lots with the earliest expiry give first (a preferred lot, e.g. the one a reversal
# takes back, before all others; lots that never expire last). ``running`` is the sum of the
# remaining points up to and including each lot; a lot is touched while the lots before it hold
# less than the amount. One statement, whatever the number of lots.
_CONSUME_LOTS = """
    UPDATE customers_pointsentry AS lot SET remaining = lot.remaining - picked.take
    FROM (
        SELECT ordered.id,
               CASE WHEN ordered.running <= %(points)s THEN ordered.remaining
                    ELSE %(points)s - (ordered.running - ordered.remaining) END AS take
        FROM (
            SELECT id, remaining,
                   SUM(remaining) OVER (
                       ORDER BY CASE WHEN id = %(prefer)s THEN 0 ELSE 1 END,
                                CASE WHEN expires_at IS NULL THEN 1 ELSE 0 END, expires_at, id
                   ) AS running
            FROM customers_pointsentry
            WHERE customer_id = %(customer)s AND remaining > 0
        ) AS ordered
        WHERE ordered.running - ordered.remaining < %(points)s
    ) AS picked
    WHERE lot.id = picked.id
"""


@dataclass(frozen=True)
class Debit:
    """Points to take from one customer's lots."""

    customer_id: int
    kind: str
    points: int  # positive: how many to take
    key: str
    purchase_id: int | None = None
    reason: str = ""
    related_entry_id: int | None = None
    created_by_id: int | None = None
    prefer_lot_id: int | None = None
    order_id: str = ""
    order_total: Decimal | None = None
    discount: Decimal | None = None


def debit_write(debit: Debit, *, at: dt.datetime, partial: bool = False) -> PointsEntry:
    """Take points from a customer, oldest lots first, and append the entry. The conditional
    UPDATE of the balance locks the customer's row (if the caller has not already) before the
    lots are touched.

    Without ``partial`` a balance short of the amount raises InsufficientPoints and nothing
    changes. With ``partial`` (reversals) the balance goes to zero at most and the rest is
    recorded as ``uncovered`` on the entry; the amount is read from the balance, so the caller
    must hold the customer's lock (customers_lock) already.
    """
    take = debit.points
    if partial:
        balance = Customer.objects.filter(pk=debit.customer_id).values_list("points_balance", flat=True).get()
        take = min(debit.points, balance)
    with connection.cursor() as cursor:
        cursor.execute(_SPEND, {"points": take, "customer": debit.customer_id})
        row = cursor.fetchone()
        if row is None:
            raise InsufficientPoints(
                f"Not enough points: {debit.points} asked.", fields={"points": ["more than the balance"]}
            )
        balance_after = row[0]
        if take:
            cursor.execute(
                _CONSUME_LOTS, {"points": take, "customer": debit.customer_id, "prefer": debit.prefer_lot_id or 0}
            )
    return PointsEntry.objects.create(
        customer_id=debit.customer_id,
        kind=debit.kind,
        points=-take,
        uncovered=debit.points - take,
        idempotency_key=debit.key,
        created_at=at,
        purchase_id=debit.purchase_id,
        reason=debit.reason,
        related_entry_id=debit.related_entry_id,
        created_by_id=debit.created_by_id,
        balance_after=balance_after,
        order_id=debit.order_id,
        order_total=debit.order_total,
        discount=debit.discount,
    )


# --- Erasure ----------------------------------------------------------------------------------------

ERASED_REASON = "(erased with the customer)"
_ERASE_REASONS = """
    UPDATE customers_pointsentry SET reason = %(erased)s
    WHERE customer_id = %(customer)s AND reason NOT IN ('', %(erased)s)
      AND (kind = 'adjust' OR reason ILIKE ANY (%(personal)s))
"""


def points_reasons_erase(*, customer_id: int, personal: Iterable[str]) -> int:
    """Erasure (SPEC §8): blank the reasons of a customer's entries that may name them — every
    adjustment (its reason is typed by staff) and any entry whose reason holds one of ``personal``
    (their email, phone, names). Points, kinds and dates stay, so the balance still adds up.

    The only edit of the ledger besides a lot's ``remaining``: the database allows it inside this
    transaction only (migration 0012). Call it inside the erasure's transaction.
    """
    patterns = ["%" + value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%" for value in personal]
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('retention_crm.erasure', 'on', true)")
        cursor.execute(_ERASE_REASONS, {"erased": ERASED_REASON, "customer": customer_id, "personal": patterns})
        erased: int = cursor.rowcount
        cursor.execute("SELECT set_config('retention_crm.erasure', 'off', true)")
    return erased
