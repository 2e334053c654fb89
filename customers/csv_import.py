"""Reading a purchases CSV and recording it in batches, for ``manage.py import_purchases``.

This module only reads and maps: what a valid purchase is, and what recording one does, is decided
by ``purchases_record_bulk``, the service behind ``POST /api/v1/purchases/bulk``. Orders go to it a
batch at a time (``BATCH_ORDERS``), so a file is recorded with the same few set-based statements
per batch as the API, with the same stats, points, cart conversion, attribution and journey exits;
the service answers for each order, so one bad order fails only itself.

A file has one line per order, or one line per item line of an order (several lines sharing the
order's external_id). The file is streamed and only the batch being read is held, so a file of any
size imports in bounded memory. That is why the lines of one order must be adjacent: an order id
that comes back later is reported as an error, not merged. The ids already read, needed to notice
exactly that, go to a throwaway SQLite file (``SeenOrders``) rather than into memory.

Batches are recorded by a few writer threads side by side (``Writers``), as concurrent bulk
requests would be, while the calling thread reads ahead; results still come out in file order.
Inside a transaction (a dry run's, or a caller's) everything runs in the calling thread instead.
"""

import codecs
import csv
import hashlib
import io
import itertools
import json
import queue
import re
import sqlite3
import tempfile
import threading
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from contextlib import nullcontext
from dataclasses import MISSING, dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import Any, Self

from django.db import connection, connections, transaction

from customers.services import BulkResult, LineItemInput, PurchaseInput, purchases_record_bulk
from customers.services.bulk import MAX_BULK_PURCHASES
from customers.services.purchases import MAX_ITEMS_PER_ORDER, PURCHASE_REQUIRED_FIELDS

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
READ_CHUNK_BYTES = 1 << 20  # bytes decoded at a time by the encoding check
# Orders per call of the bulk service: its own limit, the size at which it was measured.
BATCH_ORDERS = MAX_BULK_PURCHASES
JOBS = 2  # batches recorded side by side (see Writers)
MAX_JOBS = 8

# A table is analyzed during an import once it holds this many rows more than twice what its
# statistics say (see statistics_refresh).
ANALYZE_AFTER_ROWS = 1_000

CREATED, EXISTS, ERROR = "created", "exists", "error"
_ITEM_KEY = re.compile(r"items\[(\d+)\](?:\.(\w+))?")


class CsvImportError(Exception):
    """The file or the options cannot be imported at all (as opposed to one bad order)."""


@dataclass(frozen=True)
class RowError:
    """One problem of one order, placed at the file line and column where it was found."""

    line: int
    external_id: str
    field: str  # the purchase field (SPEC §6 name); "" when the problem is a whole line or order
    column: str  # that field's column in this file; "" when it has none
    code: str
    message: str


@dataclass(frozen=True)
class OrderResult:
    external_id: str
    status: str  # CREATED, EXISTS or ERROR, the words of the bulk API
    first_line: int
    end_line: int
    errors: tuple[RowError, ...] = ()


def mapping_parse(pairs: Iterable[str]) -> dict[str, str]:
    """``["external_id=order_no", ...]`` as ``{"external_id": "order_no"}``; refuses unknown fields."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        name, equals, column = (part.strip() for part in pair.partition("="))
        if not equals or not name or not column:
            raise CsvImportError(f"--map {pair!r}: write it as field=column, e.g. --map external_id=order_no")
        if name not in FIELDS:
            raise CsvImportError(f"--map {pair!r}: unknown field {name!r}; the fields are {', '.join(FIELDS)}")
        if mapping.get(name, column) != column:
            raise CsvImportError(f"--map: field {name!r} is mapped to both {mapping[name]!r} and {column!r}")
        mapping[name] = column
    return mapping


def delimiter_parse(value: str) -> str:
    """One character; ``\\t`` and ``tab`` spell a tab, which is awkward to pass in a shell."""
    delimiter = "\t" if value in ("\\t", "tab") else value
    if len(delimiter) != 1 or delimiter in '"\r\n':
        raise CsvImportError(f"--delimiter {value!r}: must be one character other than a quote or newline")
    return delimiter


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


def _column_list(names: Iterable[str]) -> str:
    return ", ".join(repr(name) for name in names)


def layout_from_header(header: list[str], mapping: dict[str, str], *, ignore_unknown_columns: bool) -> Layout:
    """Match the header to the fields: ``mapping`` first, then columns named like a field."""
    names = [name.strip() for name in header]
    repeated = [name for name, count in Counter(names).items() if count > 1]
    if repeated:
        raise CsvImportError(f"the header has these columns more than once: {_column_list(repeated)}")
    for name, column in mapping.items():
        if column not in names:
            raise CsvImportError(
                f"--map {name}={column}: the file has no column {column!r}; its columns are {_column_list(names)}"
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
            f"missing required columns: {', '.join(missing)}; the file's columns are {_column_list(names)} "
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
            f"unknown columns: {_column_list(unknown)}; map them with --map field=column or pass "
            f"--ignore-unknown-columns (the fields are {', '.join(FIELDS)})"
        )
    return Layout(columns=columns, positions={n: names.index(c) for n, c in columns.items()}, width=len(names))


def _codec_for(encoding: str) -> str:
    try:
        name = codecs.lookup(encoding).name
        io.TextIOWrapper(io.BytesIO(), encoding=name)  # refuses codecs that are not text encodings (base64)
    except LookupError:
        raise CsvImportError(f"unknown text encoding {encoding!r}") from None
    # Excel marks UTF-8 with a BOM; utf-8-sig drops one if present and reads plain UTF-8 otherwise.
    return "utf-8-sig" if name in ("utf-8", "utf-8-sig") else name


def _text_check(path: Path, codec: str) -> int:
    """Decode the whole file once and return its number of lines.

    A wrong encoding then stops the import before any order is written, with the byte offset and
    line of the first undecodable byte, instead of halfway through a large file.
    """
    plain = "utf-8" if codec == "utf-8-sig" else codec
    decoder = codecs.getincrementaldecoder(plain)(errors="strict")
    consumed = newlines = 0
    last = ""
    try:
        with path.open("rb") as stream:
            if codec == "utf-8-sig":
                # Skipped by hand so that offsets count from the real start of the file.
                if stream.read(len(codecs.BOM_UTF8)) == codecs.BOM_UTF8:
                    consumed = len(codecs.BOM_UTF8)
                else:
                    stream.seek(0)
            for chunk in itertools.chain(iter(lambda: stream.read(READ_CHUNK_BYTES), b""), [None]):
                pending = len(decoder.getstate()[0])  # bytes of an unfinished character from the last chunk
                try:
                    text = decoder.decode(chunk or b"", final=chunk is None)
                except UnicodeDecodeError as exc:
                    offset = consumed - pending + exc.start
                    line = newlines + exc.object[: exc.start].decode(plain, "replace").count("\n") + 1
                    raise CsvImportError(
                        f"{path} is not valid {plain} text: byte {exc.object[exc.start]:#04x} at byte offset "
                        f"{offset} (line {line}). Save it as UTF-8 or name its encoding with --encoding, "
                        "e.g. --encoding cp1252"
                    ) from None
                consumed += len(chunk or b"")
                newlines += text.count("\n")
                last = text[-1:] or last
    except OSError as exc:
        raise CsvImportError(f"cannot read {path}: {exc.strerror}") from None
    return newlines + (1 if last not in ("", "\n") else 0)


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


class PurchaseCsv:
    """One purchases CSV: checked up front (file, encoding, header, at least one row), then streamed.

    Line numbers are the file's physical lines, the header being line 1, so a quoted cell that
    spans lines does not shift the numbers of the rows after it.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        encoding: str = "utf-8",
        delimiter: str = ",",
        mapping: dict[str, str] | None = None,
        ignore_unknown_columns: bool = False,
    ) -> None:
        self.path = Path(path)
        codec = _codec_for(encoding)
        if not self.path.exists():
            raise CsvImportError(f"{self.path}: no such file")
        if self.path.is_dir():
            raise CsvImportError(f"{self.path} is a directory, not a CSV file")
        self.total_lines = _text_check(self.path, codec)
        if self.total_lines == 0:
            raise CsvImportError(f"{self.path} is empty: no rows")
        self._file = self.path.open(encoding=codec, newline="")
        try:
            self._reader = csv.reader(self._file, delimiter=delimiter)
            self._records = self._read()
            header = next(self._records, None)
            if header is None:
                raise CsvImportError(f"{self.path} is empty: no rows")
            _, self.header_end_line, cells = header
            self.layout = layout_from_header(cells, mapping or {}, ignore_unknown_columns=ignore_unknown_columns)
            self._first_row = next(self._records, None)
            if self._first_row is None:
                raise CsvImportError(f"{self.path} has a header but no rows")
        except BaseException:
            self._file.close()
            raise

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def _read(self) -> Iterator[tuple[int, int, list[str]]]:
        """Non-blank records as (first line, last line, cells)."""
        end = 0
        while True:
            try:
                cells = next(self._reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise CsvImportError(f"line {self._reader.line_num}: {exc}") from None
            except UnicodeDecodeError as exc:  # the file changed since it was checked
                raise CsvImportError(f"line {self._reader.line_num + 1}: not valid text ({exc.reason})") from None
            start, end = end + 1, self._reader.line_num
            if "".join(cells).strip():  # some cell has more than blanks
                yield start, end, cells

    def orders(self) -> Iterator[OrderLines]:
        """The file's orders, each made of its adjacent lines with the same external_id."""
        position = self.layout.positions["external_id"]
        current: OrderLines | None = None
        for start, end, cells in itertools.chain([self._first_row], self._records):
            external_id = cells[position].strip() if position < len(cells) else ""
            # Lines without an id are never merged: each is its own (failing) order.
            if current is None or not external_id or external_id != current.external_id:
                if current is not None:
                    yield current
                current = OrderLines(external_id=external_id, layout=self.layout, first_line=start)
            current.add(start, end, cells)
        if current is not None:
            yield current


class SeenOrders:
    """The order ids read so far, to tell an order whose lines come back later from a new one.

    They go to an SQLite file in the temporary directory, deleted on exit, so that the process's
    memory does not grow with the file: a million ids held in a Python set would take about 100 MB.
    Ids are stored as 128-bit hashes (fixed size, whatever the cell holds), one statement a batch.
    """

    def __enter__(self) -> Self:
        try:
            self._directory = tempfile.TemporaryDirectory(prefix="import-purchases-")
            # Throwaway data: no journal, no fsync; one connection, used by this thread only.
            self._db = sqlite3.connect(Path(self._directory.name) / "seen.sqlite3", isolation_level=None)
            self._db.executescript(
                "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;"
                "CREATE TABLE seen (key TEXT PRIMARY KEY) WITHOUT ROWID;"
            )
        except (OSError, sqlite3.Error) as exc:
            raise CsvImportError(
                f"the first line: no temporary file for the order ids could be created in {tempfile.gettempdir()} "
                f"({exc}); set TMPDIR to a writable directory"
            ) from None
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._db.close()
        self._directory.cleanup()

    @staticmethod
    def _key(external_id: str) -> str:
        return hashlib.blake2b(external_id.encode(), digest_size=16).hexdigest()

    def add(self, external_ids: list[str], *, line: int) -> set[str]:
        """Remember these ids (read from ``line`` on); returns those that were read before (by an
        earlier call)."""
        by_key = {self._key(external_id): external_id for external_id in external_ids}
        try:
            new = self._db.execute(
                "INSERT OR IGNORE INTO seen (key) SELECT value FROM json_each(?) RETURNING key",
                (json.dumps(list(by_key)),),
            ).fetchall()
        except sqlite3.Error as exc:  # a full disk, typically
            raise CsvImportError(f"line {line}: the temporary file of order ids cannot be written ({exc})") from None
        for (key,) in new:
            del by_key[key]
        return set(by_key.values())


def _adjacency_check(batch: list[OrderLines], seen: SeenOrders) -> None:
    """Fail the orders whose id was read before, in an earlier batch or earlier in this one."""
    named = [order for order in batch if order.external_id]  # lines without an id fail on their own
    read_before = seen.add([order.external_id for order in named], line=batch[0].first_line)
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


def batch_record(batch: list[OrderLines]) -> list[OrderResult]:
    """Record a batch of orders through the bulk service; one result per order, in file order.

    The orders whose lines are already known to be wrong are not sent; the service validates and
    records the others, answering each on its own (an order it refuses leaves nothing behind).
    """
    ready = [order for order in batch if not order.errors]
    answers: dict[int, BulkResult] = {}
    if ready:
        answered = purchases_record_bulk(raw_purchases=[order.purchase_raw() for order in ready])
        answers = {id(order): answer for order, answer in zip(ready, answered, strict=True)}
    results = []
    for order in batch:
        answer = answers.get(id(order))
        if answer is None:
            results.append(order.result(ERROR))
            continue
        if answer.error is not None:
            order.errors_from(answer.error)
        results.append(order.result(answer.status))
    return results


# A shop's first import grows tables from nothing (the ledger, the items; on a new database every
# table). With the statistics of a table from when it was nearly empty, the planner picks plans for
# a handful of rows (a scan of the whole ledger per batch, which grows with it), and autovacuum
# takes a minute or more to catch up. So a table that has doubled since its statistics were taken
# is analyzed again: a handful of times per table in a whole import, and never for a table that
# already holds far more rows than the import adds.
_TABLES_BEHIND = """
    SELECT quote_ident(stats.schemaname) || '.' || quote_ident(stats.relname)
    FROM pg_stat_user_tables stats JOIN pg_class class ON class.oid = stats.relid
    WHERE stats.schemaname = current_schema()
      AND stats.n_live_tup >= %s + 2 * greatest(class.reltuples, 0)
"""


def statistics_refresh() -> None:
    """Analyze the tables whose planner statistics lag far behind their size (see above)."""
    with connection.cursor() as cursor:
        cursor.execute(_TABLES_BEHIND, [ANALYZE_AFTER_ROWS])
        for (table,) in cursor.fetchall():
            cursor.execute(f"ANALYZE {table}")


def _batches(orders: Iterable[OrderLines], size: int) -> Iterator[list[OrderLines]]:
    """The orders ``size`` at a time. When the file cannot be read further, the orders read up to
    there still come out as a last batch before the error goes on to the caller."""
    batch: list[OrderLines] = []
    try:
        for order in orders:
            batch.append(order)
            if len(batch) >= size:
                yield batch
                batch = []
    except CsvImportError:
        if batch:
            yield batch
        raise
    if batch:
        yield batch


class Writers:
    """Threads that record batches, each on a database connection of its own.

    While one waits for the database, another runs its share of Python and the calling thread
    reads the file ahead, so the import uses more than one core. Batches of one import running
    side by side is what concurrent bulk requests to the API do: the service takes its locks in
    a fixed order for that.
    """

    def __init__(self, count: int) -> None:
        self._tasks: queue.SimpleQueue[tuple[Future[list[OrderResult]], list[OrderLines]] | None] = queue.SimpleQueue()
        self._pending: list[Future[list[OrderResult]]] = []
        self._threads = [
            threading.Thread(target=self._work, name=f"import-writer-{n}", daemon=True) for n in range(count)
        ]
        for thread in self._threads:
            thread.start()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Batches not started yet are dropped (the caller stopped early); running ones finish."""
        for future in self._pending:
            future.cancel()
        for _ in self._threads:
            self._tasks.put(None)
        for thread in self._threads:
            thread.join()

    def submit(self, batch: list[OrderLines]) -> Future[list[OrderResult]]:
        future: Future[list[OrderResult]] = Future()
        self._pending = [pending for pending in self._pending if not pending.done()] + [future]
        self._tasks.put((future, batch))
        return future

    def _work(self) -> None:
        try:
            while (task := self._tasks.get()) is not None:
                future, batch = task
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    future.set_result(batch_record(batch))
                except BaseException as exc:  # handed to the calling thread, which raises it
                    future.set_exception(exc)
        finally:
            connections.close_all()  # this thread's connection; the others are not its to close


def _import_one_by_one(
    batches: Iterable[list[OrderLines]], seen: SeenOrders, *, dry_run: bool
) -> Iterator[OrderResult]:
    """Every batch in the calling thread, on its connection and in its transaction, if any."""
    with transaction.atomic() if dry_run else nullcontext():
        for batch in batches:
            _adjacency_check(batch, seen)
            yield from batch_record(batch)
            statistics_refresh()
        if dry_run:
            transaction.set_rollback(True)


def _import_in_parallel(batches: Iterable[list[OrderLines]], seen: SeenOrders, *, jobs: int) -> Iterator[OrderResult]:
    """Batches recorded by ``jobs`` writers, results in file order; one batch more is read ahead."""
    in_flight: deque[Future[list[OrderResult]]] = deque()
    with Writers(jobs) as writers:
        stopped: CsvImportError | None = None
        try:
            for batch in batches:
                _adjacency_check(batch, seen)  # here, in file order, before the batch is handed out
                in_flight.append(writers.submit(batch))
                while len(in_flight) > jobs:
                    yield from in_flight.popleft().result()
                    statistics_refresh()
        except CsvImportError as exc:
            stopped = exc  # the batches read before it are recorded and reported first
        while in_flight:
            yield from in_flight.popleft().result()
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
    if not 1 <= batch_size <= MAX_BULK_PURCHASES:
        raise CsvImportError(f"the batch size must be between 1 and {MAX_BULK_PURCHASES}")
    if not 1 <= jobs <= MAX_JOBS:
        raise CsvImportError(f"the number of jobs must be between 1 and {MAX_JOBS}")
    with SeenOrders() as seen:
        batches = _batches(orders, batch_size)
        if dry_run or connection.in_atomic_block:
            yield from _import_one_by_one(batches, seen, dry_run=dry_run)
        else:
            yield from _import_in_parallel(batches, seen, jobs=jobs)
