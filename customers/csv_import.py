"""Reading a purchases CSV and recording it in batches, for ``manage.py import_purchases``.

This module only reads and maps: what a valid purchase is, and what recording one does, is decided
by ``purchases_record_bulk``, the service behind ``POST /api/v1/purchases/bulk``, called in its two
halves (``purchases_prepare`` validates, ``purchases_record_prepared`` records) so that the reading
thread validates while the writers record. Orders go to it a
batch at a time (``BATCH_ORDERS``), so a file is recorded with the same few set-based statements
per batch as the API, with the same stats, points, cart conversion, attribution and journey exits;
the service answers for each order, so one bad order fails only itself.

A file has one line per order, or one line per item line of an order (several lines sharing the
order's external_id). The file is streamed and only the batch being read is held, so a file of any
size imports in bounded memory. That is why the lines of one order must be adjacent: an order id
that comes back later is reported as an error, not merged. The ids already read, needed to notice
exactly that, go to a temporary table of the import's database session (``SeenOrders``) rather
than into memory.

Batches are recorded by a few writer threads side by side (``Writers``), each taking the orders
of its own share of the customers, while the calling thread reads ahead; results still come out in
file order.
Inside a transaction (a dry run's, or a caller's) everything runs in the calling thread instead.
"""

import queue
import re
import threading
import zlib
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from contextlib import nullcontext
from dataclasses import MISSING, dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import Any, Self

from django.db import connection, connections, transaction

from customers.csv_common import (
    CsvImportError,
    CsvSource,
    RowError,
    batches,
    collector_relaxed,
    column_list,
    statistics_refresh,
)
from customers.csv_common import mapping_parse as mapping_parse_for
from customers.services import BulkResult, LineItemInput, PurchaseInput
from customers.services.bulk import PreparedPurchases, purchases_prepare, purchases_record_prepared
from customers.services.purchase_input import MAX_ITEMS_PER_ORDER, PURCHASE_REQUIRED_FIELDS
from retention_crm.bound_cursor import bound_cursor, sql_array

# The SPEC §6 purchase fields, taken from the service's input types so the two cannot drift apart.
ORDER_FIELDS = tuple(f.name for f in fields(PurchaseInput) if f.name != "items")
ITEM_FIELDS = tuple(f.name for f in fields(LineItemInput))
FIELDS = ORDER_FIELDS + ITEM_FIELDS
# PurchaseInput.clean requires these; checking the header for them fails a file before any row does.
REQUIRED_FIELDS = PURCHASE_REQUIRED_FIELDS
# An item cannot be valid without these, so a file that has item columns must have all of them.
REQUIRED_ITEM_FIELDS = tuple(
    f.name for f in fields(LineItemInput) if f.default is MISSING and f.default_factory is MISSING
)
# Orders per call of the bulk service. Larger than the API's batch (MAX_BULK_PURCHASES): each batch
# costs a fixed number of statements, round trips and a commit, so larger batches cost less per order.
BATCH_ORDERS = 5_000
MAX_BATCH_ORDERS = 20_000
JOBS = 2  # batches recorded side by side (see Writers)
MAX_JOBS = 8

CREATED, EXISTS, ERROR = "created", "exists", "error"
_ITEM_KEY = re.compile(r"items\[(\d+)\](?:\.(\w+))?")


@dataclass(frozen=True)
class OrderResult:
    external_id: str
    status: str  # CREATED, EXISTS or ERROR, the words of the bulk API
    first_line: int
    end_line: int
    errors: tuple[RowError, ...] = ()


def _field_problem(name: str) -> str | None:
    return None if name in FIELDS else f"unknown field {name!r}"


def mapping_parse(pairs: Iterable[str]) -> dict[str, str]:
    """``["external_id=order_no", ...]`` as ``{"external_id": "order_no"}``; refuses unknown fields."""
    return mapping_parse_for(
        pairs, field_problem=_field_problem, fields_text=", ".join(FIELDS), example="external_id=order_no"
    )


@dataclass(frozen=True)
class Layout:
    """Which column of the file holds which purchase field."""

    columns: dict[str, str]  # field -> column name in the file
    positions: dict[str, int]  # field -> index of that column in a row
    width: int  # number of columns in the header

    @cached_property
    def has_items(self) -> bool:
        return any(name in self.positions for name in ITEM_FIELDS)

    # Read once per line of the file: worked out once per file.
    @cached_property
    def order_positions(self) -> tuple[tuple[str, int], ...]:
        return tuple((name, p) for name, p in self.positions.items() if name not in ITEM_FIELDS)

    @cached_property
    def item_positions(self) -> tuple[tuple[str, int], ...]:
        return tuple((name, p) for name, p in self.positions.items() if name in ITEM_FIELDS)


def layout_from_header(header: list[str], mapping: dict[str, str], *, ignore_unknown_columns: bool) -> Layout:
    """Match the header to the fields: ``mapping`` first, then columns named like a field."""
    names = [name.strip() for name in header]
    repeated = [name for name, count in Counter(names).items() if count > 1]
    if repeated:
        raise CsvImportError(f"the header has these columns more than once: {column_list(repeated)}")
    for name, column in mapping.items():
        if column not in names:
            raise CsvImportError(
                f"--map {name}={column}: the file has no column {column!r}; its columns are {column_list(names)}"
            )
    columns = dict(mapping)
    claimed = set(mapping.values())
    for name in FIELDS:
        # A column mapped to another field is not also read as the field it is named after.
        if name not in columns and name in names and name not in claimed:
            columns[name] = name
    missing = [name for name in REQUIRED_FIELDS if name not in columns]
    if missing:
        raise CsvImportError(
            f"missing required columns: {', '.join(missing)}; the file's columns are {column_list(names)} "
            "(name a differently called column with --map field=column)"
        )
    if any(name in columns for name in ITEM_FIELDS):
        missing = [name for name in REQUIRED_ITEM_FIELDS if name not in columns]
        if missing:
            raise CsvImportError(f"item columns need {', '.join(REQUIRED_ITEM_FIELDS)}; missing: {', '.join(missing)}")
    used = set(columns.values())
    unknown = [name or f"(unnamed column {i + 1})" for i, name in enumerate(names) if name not in used]
    if unknown and not ignore_unknown_columns:
        raise CsvImportError(
            f"unknown columns: {column_list(unknown)}; map them with --map field=column or pass "
            f"--ignore-unknown-columns (the fields are {', '.join(FIELDS)})"
        )
    return Layout(columns=columns, positions={n: names.index(c) for n, c in columns.items()}, width=len(names))


@dataclass
class OrderLines:
    """The lines of one order, folded as they are read so memory is bounded by its items."""

    external_id: str
    layout: Layout
    first_line: int
    end_line: int = 0
    values: dict[str, tuple[str, int]] = field(default_factory=dict)  # order field -> (value, its line)
    items: list[tuple[int, dict[str, str]]] = field(default_factory=list)  # (line, item fields)
    errors: list[RowError] = field(default_factory=list)

    def add(self, line: int, end_line: int, cells: list[str]) -> None:
        self.end_line = end_line
        if len(cells) != self.layout.width:
            self.error(
                line,
                "",
                f"has {len(cells)} cells but the header has {self.layout.width}; is a delimiter or quote out of place?",
                code="line_width",
            )
            return  # its cells are likely shifted: comparing them would only add noise
        for name, position in self.layout.order_positions:
            value = cells[position].strip()
            if not value:
                continue  # a blank order-level cell on a further item line means "as above"
            first = self.values.setdefault(name, (value, line))
            if first[0] != value:
                message = f"{value!r} differs from {first[0]!r} on line {first[1]} of the same order"
                self.error(line, name, message, code="lines_disagree")
        item = {name: cells[p].strip() for name, p in self.layout.item_positions}
        # One item past the limit is kept so that PurchaseInput.clean reports the order as too large.
        if any(item.values()) and len(self.items) <= MAX_ITEMS_PER_ORDER:
            self.items.append((line, item))

    def error(self, line: int, name: str, message: str, *, code: str) -> None:
        if any(e.field == name for e in self.errors):
            return  # the first of each kind is enough to fix the file; a long order would repeat it
        column = self.layout.columns.get(name, "")
        self.errors.append(RowError(line, self.external_id, name, column, code, message))

    def purchase_raw(self) -> dict[str, Any]:
        """The order as the SPEC §6 purchase shape, cells still as text for PurchaseInput.clean."""
        raw: dict[str, Any] = {
            name: self.values.get(name, ("", 0))[0] for name in ORDER_FIELDS if name in self.layout.positions
        }
        if self.layout.has_items:
            raw["items"] = [item for _, item in self.items]
        return raw

    def errors_from(self, error: dict[str, Any]) -> None:
        """Place each field of the service's error (``{"code", "message", "fields"}``) at its line:
        an item's on the item's line, an order field's on the line its value came from."""
        code, fields_ = error.get("code", "invalid"), error.get("fields") or {}
        for key, messages in fields_.items():
            name, line = key, self.values.get(key, ("", self.first_line))[1]
            match = _ITEM_KEY.fullmatch(key)
            if match and int(match[1]) < len(self.items):
                line, name = self.items[int(match[1])][0], match[2] or ""
            for message in messages if isinstance(messages, list | tuple) else [messages]:
                column = self.layout.columns.get(name, "")
                self.errors.append(RowError(line, self.external_id, name, column, code, str(message)))
        if not fields_:
            self.errors.append(RowError(self.first_line, self.external_id, "", "", code, error.get("message", "")))

    def result(self, status: str) -> OrderResult:
        return OrderResult(self.external_id, status, self.first_line, self.end_line, tuple(self.errors))


class PurchaseCsv(CsvSource[Layout]):
    """One purchases CSV (see CsvSource), read as orders."""

    def __init__(self, path: str | Path, **options: Any) -> None:
        super().__init__(path, layout_from_header=layout_from_header, **options)

    def orders(self) -> Iterator[OrderLines]:
        """The file's orders, each made of its adjacent lines with the same external_id."""
        position = self.layout.positions["external_id"]
        current: OrderLines | None = None
        for start, end, cells in self.records():
            external_id = cells[position].strip() if position < len(cells) else ""
            # Lines without an id are never merged: each is its own (failing) order.
            if current is None or not external_id or external_id != current.external_id:
                if current is not None:
                    yield current
                current = OrderLines(external_id=external_id, layout=self.layout, first_line=start)
            current.add(start, end, cells)
        if current is not None:
            yield current


_SEEN_TABLE = "purchase_import_seen"
_SEEN_CREATE = f"""
    DROP TABLE IF EXISTS pg_temp.{_SEEN_TABLE};
    CREATE TEMPORARY TABLE {_SEEN_TABLE} (key uuid PRIMARY KEY)
"""
# The ids claimed now; those claimed before come back (usually none). Each id is kept as its MD5
# (16 bytes whatever the cell holds: a cell may be far longer than an index entry can be).
_SEEN_CLAIM = f"""
    WITH given AS (
        SELECT DISTINCT external_id, md5(external_id)::uuid AS key FROM unnest(%s::text[]) AS given(external_id)
    ), claimed AS (
        INSERT INTO {_SEEN_TABLE} SELECT key FROM given ON CONFLICT (key) DO NOTHING RETURNING key
    )
    SELECT external_id FROM given WHERE key NOT IN (SELECT key FROM claimed)
"""


class SeenOrders:
    """The order ids read so far, to tell an order whose lines come back later from a new one.

    They go to a temporary table of the importing thread's database session, dropped on exit, so
    that the process's memory does not grow with the file (a million ids held in a Python set
    would take about 100 MB): one statement a batch, an index probe per id. The table lives in the
    session, not in the import's transactions: each batch commits its own.
    """

    def __enter__(self) -> Self:
        with connection.cursor() as cursor:
            cursor.execute(_SEEN_CREATE)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if connection.needs_rollback:  # a dry run's rollback takes the table with it
            return
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS pg_temp.{_SEEN_TABLE}")

    def add(self, external_ids: list[str]) -> set[str]:
        """Remember these ids; returns those that were read before (by an earlier call)."""
        # PostgreSQL text holds no NUL character; such an id fails validation anyway.
        by_text = {external_id.replace("\x00", "\ufffd"): external_id for external_id in external_ids}
        with bound_cursor() as cursor:
            cursor.execute(_SEEN_CLAIM, [sql_array(by_text)])
            return {by_text[text] for (text,) in cursor.fetchall()}


def _adjacency_check(batch: list[OrderLines], seen: SeenOrders) -> None:
    """Fail the orders whose id was read before, in an earlier batch or earlier in this one."""
    named = [order for order in batch if order.external_id]  # lines without an id fail on their own
    read_before = seen.add([order.external_id for order in named])
    in_batch: set[str] = set()
    for order in named:
        if order.external_id in read_before or order.external_id in in_batch:
            order.error(
                order.first_line,
                "external_id",
                "order lines must be adjacent: this order already appeared earlier in the file",
                code="lines_not_adjacent",
            )
        in_batch.add(order.external_id)


@dataclass(frozen=True)
class PreparedBatch:
    """Orders read and validated (``batch_prepare``), waiting to be recorded (``batch_record``)."""

    orders: list[OrderLines]
    ready: list[OrderLines]  # those sent to the service: the others' lines are already known wrong
    purchases: PreparedPurchases | None


def batch_prepare(batch: list[OrderLines]) -> PreparedBatch:
    """Validate a batch with the bulk service's rules (Python only: the reading thread does it
    while the writers' connections record earlier batches)."""
    ready = [order for order in batch if not order.errors]
    purchases = (
        purchases_prepare(raw_purchases=[order.purchase_raw() for order in ready], max_purchases=MAX_BATCH_ORDERS)
        if ready
        else None
    )
    return PreparedBatch(batch, ready, purchases)


def batch_record(prepared: PreparedBatch) -> list[OrderResult]:
    """Record a batch of orders through the bulk service; one result per order, in file order.

    The orders whose lines are already known to be wrong are not sent; the service validates and
    records the others, answering each on its own (an order it refuses leaves nothing behind).
    """
    answers: dict[int, BulkResult] = {}
    if prepared.purchases is not None:
        answered = purchases_record_prepared(prepared.purchases)
        answers = {id(order): answer for order, answer in zip(prepared.ready, answered, strict=True)}
    results = []
    for order in prepared.orders:
        answer = answers.get(id(order))
        if answer is None:
            results.append(order.result(ERROR))
            continue
        if answer.error is not None:
            order.errors_from(answer.error)
        results.append(order.result(answer.status))
    return results


def customer_share(order: OrderLines, shares: int) -> int:
    """Which of ``shares`` writers records this order: the same for every order of one customer
    (an order without a customer fails validation whichever writer has it)."""
    return zlib.crc32(order.values.get("customer", ("",))[0].encode(errors="surrogatepass")) % shares


class Writers:
    """Threads that record batches, each on a database connection of its own.

    While one waits for the database, another runs its share of Python and the calling thread
    reads the file ahead, so the import uses more than one core. Each batch is split between the
    writers by customer (``customer_share``): a writer records only the orders of its own customers, so two
    writers never wait for each other. Recording locks the buyers' rows until the batch commits;
    with every writer free to take any order, two batches of random customers out of a million
    always share a few, and the writers mostly took turns.
    """

    def __init__(self, count: int) -> None:
        self._queues: list[queue.SimpleQueue[tuple[Future[list[OrderResult]], PreparedBatch] | None]] = [
            queue.SimpleQueue() for _ in range(count)
        ]
        self._pending: list[Future[list[OrderResult]]] = []
        self._threads = [
            threading.Thread(target=self._work, args=(tasks,), name=f"import-writer-{n}", daemon=True)
            for n, tasks in enumerate(self._queues)
        ]
        for thread in self._threads:
            thread.start()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Batches not started yet are dropped (the caller stopped early); running ones finish."""
        for future in self._pending:
            future.cancel()
        for tasks in self._queues:
            tasks.put(None)
        for thread in self._threads:
            thread.join()

    def submit(self, batch: list[OrderLines]) -> "BatchInFlight":
        parts: list[list[OrderLines]] = [[] for _ in self._queues]
        owners = [customer_share(order, len(self._queues)) for order in batch]
        for order, owner in zip(batch, owners, strict=True):
            parts[owner].append(order)
        futures: list[Future[list[OrderResult]] | None] = []
        for tasks, part in zip(self._queues, parts, strict=True):
            if not part:
                futures.append(None)
                continue
            future: Future[list[OrderResult]] = Future()
            tasks.put((future, batch_prepare(part)))
            futures.append(future)
        self._pending = [pending for pending in self._pending if not pending.done()]
        self._pending += [future for future in futures if future is not None]
        return BatchInFlight(owners, futures)

    @staticmethod
    def _work(tasks: "queue.SimpleQueue[tuple[Future[list[OrderResult]], PreparedBatch] | None]") -> None:
        try:
            while (task := tasks.get()) is not None:
                future, batch = task
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    future.set_result(batch_record(batch))
                except BaseException as exc:  # handed to the calling thread, which raises it
                    future.set_exception(exc)
        finally:
            connections.close_all()  # this thread's connection; the others are not its to close


@dataclass(frozen=True)
class BatchInFlight:
    """A batch handed to the writers: which writer has each order, and each writer's answer."""

    owners: list[int]
    futures: list[Future[list[OrderResult]] | None]

    def results(self) -> Iterator[OrderResult]:
        """The orders' results in the batch's order (each writer answers its part in order)."""
        answers = [iter(future.result()) if future is not None else iter(()) for future in self.futures]
        for owner in self.owners:
            yield next(answers[owner])


def _import_one_by_one(
    batches: Iterable[list[OrderLines]], seen: SeenOrders, *, dry_run: bool
) -> Iterator[OrderResult]:
    """Every batch in the calling thread, on its connection and in its transaction, if any."""
    with transaction.atomic() if dry_run else nullcontext():
        for batch in batches:
            _adjacency_check(batch, seen)
            yield from batch_record(batch_prepare(batch))
            statistics_refresh()
        if dry_run:
            transaction.set_rollback(True)


def _import_in_parallel(batches: Iterable[list[OrderLines]], seen: SeenOrders, *, jobs: int) -> Iterator[OrderResult]:
    """Batches recorded by ``jobs`` writers, results in file order; one batch more is read ahead."""
    in_flight: deque[BatchInFlight] = deque()
    with Writers(jobs) as writers:
        stopped: CsvImportError | None = None
        try:
            for batch in batches:
                _adjacency_check(batch, seen)  # here, in file order, before the batch is handed out
                in_flight.append(writers.submit(batch))
                while len(in_flight) > jobs:
                    yield from in_flight.popleft().results()
                    statistics_refresh()
        except CsvImportError as exc:
            stopped = exc  # the batches read before it are recorded and reported first
        while in_flight:
            yield from in_flight.popleft().results()
        if stopped is not None:
            raise stopped


def orders_import(
    orders: Iterable[OrderLines], *, dry_run: bool = False, batch_size: int = BATCH_ORDERS, jobs: int = JOBS
) -> Iterator[OrderResult]:
    """Record the orders ``batch_size`` at a time and yield each one's result, in file order.

    Each batch commits on its own (the service's transactions), so an interrupted import keeps the
    batches it finished and a re-run counts them as ``exists``. ``jobs`` batches are recorded side
    by side (see Writers), except inside a transaction, the caller's or a dry run's: there every
    batch goes through the calling thread's connection, which alone sees that transaction's rows.
    A dry run records everything inside one transaction that is rolled back at the end, so it
    reports exactly what a real run would (a customer created by one order is there for the
    next), at the price of holding those customers' row locks until it ends.
    """
    if not 1 <= batch_size <= MAX_BATCH_ORDERS:
        raise CsvImportError(f"the batch size must be between 1 and {MAX_BATCH_ORDERS:,}")
    if not 1 <= jobs <= MAX_JOBS:
        raise CsvImportError(f"the number of jobs must be between 1 and {MAX_JOBS}")
    with collector_relaxed(), SeenOrders() as seen:
        batched = batches(orders, batch_size)
        if dry_run or connection.in_atomic_block:
            yield from _import_one_by_one(batched, seen, dry_run=dry_run)
        else:
            yield from _import_in_parallel(batched, seen, jobs=jobs)
