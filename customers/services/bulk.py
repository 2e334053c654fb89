"""Bulk purchase ingestion: up to 1,000 purchases in a handful of set-based statements.

The rules are those of ``purchase_record`` (same validation, same idempotency by content digest)
and on PostgreSQL so are the statements (``purchase_sets``): one INSERT for the purchases, one for
their items, one UPDATE for the carts, the loyalty and attribution statements and one UPDATE of
the buyers' rows (stats, points and tier together), for any number of purchases; unknown customers
are created with one INSERT ... SELECT. Every item is validated before anything is written, so an invalid item
(a lone surrogate in a name, a date in 2199) creates nothing, not even its customer. On anything
unexpected at insert the batch falls back to ``purchase_record`` per item, each in a savepoint of
its own, so a bad item still fails only itself.
"""

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone

from customers.loyalty.services import loyalty_program_get
from customers.loyalty.services.earning import points_welcome_for_created, welcome_points
from customers.models import Customer, Purchase
from customers.services.purchase_input import ItemsSeen, PurchaseInput, purchase_conflict
from customers.services.purchase_sets import purchases_apply, purchases_insert
from customers.services.purchases import purchase_record
from retention_crm import validation as v
from retention_crm.bound_cursor import bound_cursor, sql_array
from retention_crm.errors import ApplicationError

logger = logging.getLogger(__name__)

MAX_BULK_PURCHASES = 1_000


@dataclass(frozen=True)
class BulkResult:
    external_id: str | None
    status: str  # created | exists | error
    error: dict[str, Any] | None = None


# What an insert may raise for one item that validation let through: a database error, or text
# the driver cannot encode (UnicodeEncodeError is a ValueError).
UNEXPECTED_AT_INSERT = (DatabaseError, ValueError)


def _error(raw: Any, error: ApplicationError) -> BulkResult:
    external_id = raw.get("external_id") if isinstance(raw, dict) else None
    return BulkResult(
        external_id=v.printable(external_id) if isinstance(external_id, str) else None,
        status="error",
        error=v.printable(error.as_dict()["error"]),
    )


@dataclass(frozen=True)
class PreparedPurchases:
    """A batch validated and fingerprinted, nothing read or written yet (``purchases_prepare``)."""

    raw_purchases: list[Any]
    results: list[BulkResult | None]  # decided already: invalid, or a repeat within the batch
    candidates: list[tuple[int, PurchaseInput, str]]  # (index, purchase, content digest) to look up


def purchases_record_bulk(*, raw_purchases: list[Any], max_purchases: int = MAX_BULK_PURCHASES) -> list[BulkResult]:
    """Record up to ``max_purchases`` purchases (the API's 1,000 by default; the CSV import sends
    larger batches, which cost fewer statements per order); one result per item, in request order.

    An item is ``created``, ``exists`` (the same content was stored before, or earlier in this
    batch) or ``error`` (invalid, or its external_id is taken by other content). A bad item
    fails only itself.

    On PostgreSQL the customers the batch names are created first, in a short transaction of
    their own (with their welcome bonus), then the purchases in one transaction. A concurrent
    batch naming the same new customer so waits for that short transaction only, not for this
    whole batch. Called inside a caller's transaction, everything commits together.
    """
    return purchases_record_prepared(purchases_prepare(raw_purchases=raw_purchases, max_purchases=max_purchases))


def purchases_prepare(*, raw_purchases: list[Any], max_purchases: int = MAX_BULK_PURCHASES) -> PreparedPurchases:
    """The first half of ``purchases_record_bulk``: validate every item and take its content
    digest, in Python only (no database), so a caller may do it in another thread than the
    recording (the CSV import validates the next batch while the last one is being written)."""
    if not isinstance(raw_purchases, list):
        raise v.invalid("purchases", "must be a list")
    if len(raw_purchases) > max_purchases:
        raise v.invalid("purchases", f"at most {max_purchases} purchases per request")

    results: list[BulkResult | None] = [None] * len(raw_purchases)
    first_seen: dict[str, str] = {}  # external_id -> digest of its first valid item
    candidates: list[tuple[int, PurchaseInput, str]] = []
    items_seen: ItemsSeen = {}
    for index, raw in enumerate(raw_purchases):
        try:
            item = PurchaseInput.clean(raw, items_seen=items_seen)
        except ApplicationError as error:
            results[index] = _error(raw, error)
            continue
        digest = item.digest()
        if item.external_id in first_seen:
            same = first_seen[item.external_id] == digest
            results[index] = (
                BulkResult(item.external_id, "exists") if same else _error(raw, purchase_conflict(item.external_id))
            )
            continue
        first_seen[item.external_id] = digest
        candidates.append((index, item, digest))
    return PreparedPurchases(raw_purchases, results, candidates)


def purchases_record_prepared(prepared: PreparedPurchases) -> list[BulkResult]:
    """The second half of ``purchases_record_bulk``: record the prepared batch."""
    raw_purchases, results, candidates = prepared.raw_purchases, list(prepared.results), prepared.candidates
    stored = _stored_digests([item.external_id for _, item, _ in candidates])
    new: list[tuple[int, PurchaseInput, str]] = []
    for index, item, digest in candidates:
        if item.external_id not in stored:
            new.append((index, item, digest))
        elif item.same_content(stored[item.external_id]):
            results[index] = BulkResult(item.external_id, "exists")
        else:
            results[index] = _error(raw_purchases[index], purchase_conflict(item.external_id))

    if new:
        customer_ids = _customers_ensure(sorted({item.customer for _, item, _ in new}))
        with transaction.atomic():
            with connection.cursor() as cursor:
                # A batch's statements look costly to the planner (a thousand lookups each), so it
                # would JIT-compile them: ~10 ms each, more than the lookups themselves take.
                cursor.execute("SET LOCAL jit = off")
            try:
                with transaction.atomic():
                    _insert_set_based(new, customer_ids, results)
            except UNEXPECTED_AT_INSERT:
                logger.warning("purchases.bulk.fallback", extra={"items": len(new)}, exc_info=True)
                _insert_one_by_one(new, raw_purchases, results)

    # Items that lost a race to a concurrent request with the same external_id.
    pending = {index: (item, digest) for index, item, digest in new}
    for index, result in enumerate(results):
        if result is None:
            item, digest = pending[index]
            existing = Purchase.objects.filter(external_id=item.external_id).values_list("content_digest", flat=True)
            same = item.same_content(existing.first())
            results[index] = (
                BulkResult(item.external_id, "exists")
                if same
                else _error(raw_purchases[index], purchase_conflict(item.external_id))
            )
    return results  # type: ignore[return-value]


# The batch's lookups by external id, bound on the server: through the ORM, psycopg quoted each
# of thousands of ids into the statement's text, a fifth of a writer's Python time.
_STORED_DIGESTS = "SELECT external_id, content_digest FROM customers_purchase WHERE external_id = ANY(%s::varchar[])"
_CUSTOMER_IDS = "SELECT external_id, id FROM customers_customer WHERE external_id = ANY(%s::varchar[])"


def _stored_digests(external_ids: list[str]) -> dict[str, str]:
    """The content digests of the purchases stored under these external ids."""
    if not external_ids:
        return {}
    with bound_cursor() as cursor:
        cursor.execute(_STORED_DIGESTS, [sql_array(external_ids)])
        return dict(cursor.fetchall())


def _customer_ids(names: list[str]) -> dict[str, int]:
    """The ids of the customers with these external ids (the unknown ones are left out)."""
    if not names:
        return {}
    with bound_cursor() as cursor:
        cursor.execute(_CUSTOMER_IDS, [sql_array(names)])
        return dict(cursor.fetchall())


@transaction.atomic
def _customers_ensure(names: list[str]) -> dict[str, int]:
    """The ids of the named customers, creating the unknown ones with their welcome bonus."""
    known = _customer_ids(names)
    unknown = [name for name in names if name not in known]
    if not unknown:
        return known  # the usual case once a shop is running: one lookup, nothing to create
    now = timezone.now()
    program = loyalty_program_get()
    created = _customers_create(unknown, now=now, points_balance=welcome_points(program))
    # A name another request created meanwhile is not in ``created``: it got its bonus there.
    points_welcome_for_created(customer_ids=list(created.values()), now=now, program=program)
    known.update(created)
    if len(known) < len(names):
        known.update(_customer_ids(unknown))
    return known


def _new_customer_columns(*, now: dt.datetime, points_balance: int) -> dict[str, Any]:
    """A new customer's columns besides its external_id: the model's defaults (Django's, not the
    database's), prepared for the database once, as Django would for each instance."""
    template = Customer(external_id="-", created_at=now, updated_at=now, points_balance=points_balance)
    return {
        field.column: field.get_db_prep_save(field.pre_save(template, add=True), connection)
        for field in Customer._meta.concrete_fields
        if not field.primary_key and not field.generated and field.name != "external_id"
    }


def _customers_create(names: list[str], *, now: dt.datetime, points_balance: int) -> dict[str, int]:
    """Insert customers by external id with the model's defaults, in one INSERT ... SELECT; returns
    those this statement created (a name a concurrent request created is skipped).

    The names were just looked up and not found, so the insert first goes without ON CONFLICT,
    whose speculative insertion costs every row; a name created meanwhile fails it, and it is run
    again skipping the taken names."""
    columns = _new_customer_columns(now=now, points_balance=points_balance)
    sql = (
        f"INSERT INTO customers_customer (external_id, {', '.join(columns)}) "
        f"SELECT name, {', '.join(['%s'] * len(columns))} FROM unnest(%s::varchar[]) AS name "
        "{on_conflict} RETURNING external_id, id"
    )
    parameters = [*columns.values(), sql_array(names)]
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql.format(on_conflict=""), parameters)
            return dict(cursor.fetchall())
    except IntegrityError:
        with connection.cursor() as cursor:
            cursor.execute(sql.format(on_conflict="ON CONFLICT (external_id) DO NOTHING"), parameters)
            return dict(cursor.fetchall())


def _insert_one_by_one(
    new: list[tuple[int, PurchaseInput, str]], raw_purchases: list[Any], results: list[BulkResult | None]
) -> None:
    for index, item, _ in new:
        try:
            with transaction.atomic():
                _, created = purchase_record(data=item)
        except ApplicationError as error:
            results[index] = _error(raw_purchases[index], error)
            continue
        except UNEXPECTED_AT_INSERT:
            logger.warning("purchases.bulk.item_failed", extra={"external_id": item.external_id}, exc_info=True)
            results[index] = _error(
                raw_purchases[index], ApplicationError("This purchase could not be stored.", code="not_stored")
            )
            continue
        results[index] = BulkResult(item.external_id, "created" if created else "exists")


def _insert_set_based(
    new: list[tuple[int, PurchaseInput, str]], customer_ids: dict[str, int], results: list[BulkResult | None]
) -> None:
    """PostgreSQL: the whole batch in a few statements (see purchase_sets).

    The purchases and items go in before the customers are locked: inserting them takes no lock
    a concurrent batch waits on, so only the short part that updates the customers queues up.
    """
    now = timezone.now()
    # Every id was just looked up and found free: one taken meanwhile by a concurrent request fails
    # the statement, and the batch goes one by one (which tells a repeat from a conflict).
    inserted = purchases_insert([(item, digest) for _, item, digest in new], customer_ids, now=now, skip_taken=False)
    purchases_apply([item for _, item, _ in new], inserted, customer_ids, now=now)
    for index, item, _ in new:
        if item.external_id in inserted:
            results[index] = BulkResult(item.external_id, "created")
