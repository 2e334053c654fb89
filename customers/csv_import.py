"""Reading a purchases CSV and recording it order by order, for ``manage.py import_purchases``.

This module only reads and maps: what a valid purchase is, and what recording one does, is decided
by ``PurchaseInput.clean`` and ``purchase_record``, which every order goes through here exactly as
it would through the API.

A file has one line per order, or one line per item line of an order (several lines sharing the
order's external_id). The file is streamed and only the order being read is held, so a file of any
size imports in bounded memory. That is why the lines of one order must be adjacent: an order id
that comes back later is reported as an error, not merged. The one thing that grows with the file
is the set of order ids already seen, kept to notice exactly that.
"""

import codecs
import csv
import io
import itertools
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, Self

from django.db import transaction

from customers.services import LineItemInput, PurchaseInput, purchase_record
from customers.services.purchases import MAX_ITEMS_PER_ORDER, PURCHASE_REQUIRED_FIELDS
from retention_crm.errors import ApplicationError

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

    @property
    def has_items(self) -> bool:
        return any(name in self.positions for name in ITEM_FIELDS)


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
        for name, position in self.layout.positions.items():
            value = cells[position].strip()
            if name in ITEM_FIELDS or not value:
                continue  # a blank order-level cell on a further item line means "as above"
            first = self.values.setdefault(name, (value, line))
            if first[0] != value:
                message = f"{value!r} differs from {first[0]!r} on line {first[1]} of the same order"
                self.error(line, name, message, code="lines_disagree")
        item = {name: cells[p].strip() for name, p in self.layout.positions.items() if name in ITEM_FIELDS}
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

    def errors_from(self, exc: ApplicationError) -> None:
        """Place each field of the error at its line: an item's on the item's line."""
        for key, messages in exc.fields.items():
            name, line = key, self.values.get(key, ("", self.first_line))[1]
            match = _ITEM_KEY.fullmatch(key)
            if match and int(match[1]) < len(self.items):
                line, name = self.items[int(match[1])][0], match[2] or ""
            for message in messages if isinstance(messages, list | tuple) else [messages]:
                column = self.layout.columns.get(name, "")
                self.errors.append(RowError(line, self.external_id, name, column, exc.code, str(message)))
        if not exc.fields:
            self.errors.append(RowError(self.first_line, self.external_id, "", "", exc.code, exc.message))

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
            if any(cell.strip() for cell in cells):
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


def order_record(order: OrderLines) -> OrderResult:
    """Validate and record one order; its problems come back in the result, never as an exception.

    ``purchase_record`` runs in its own transaction (a savepoint inside a dry run's), so a failing
    order leaves nothing behind and does not disturb the others.
    """
    if order.errors:
        return order.result(ERROR)
    try:
        _, created = purchase_record(data=PurchaseInput.clean(order.purchase_raw()))
    except ApplicationError as exc:
        order.errors_from(exc)
        return order.result(ERROR)
    return order.result(CREATED if created else EXISTS)


def orders_import(orders: Iterable[OrderLines], *, dry_run: bool = False) -> Iterator[OrderResult]:
    """Record each order and yield its result, in file order.

    A dry run records everything inside one transaction that is rolled back at the end, so it
    reports exactly what a real run would (a customer created by one order is there for the next),
    at the price of holding those customers' row locks until it ends.
    """
    seen: set[str] = set()
    with transaction.atomic() if dry_run else nullcontext():
        for order in orders:
            if order.external_id in seen:
                order.error(
                    order.first_line,
                    "external_id",
                    "order lines must be adjacent: this order already appeared earlier in the file",
                    code="lines_not_adjacent",
                )
                yield order.result(ERROR)
                continue
            if order.external_id:
                seen.add(order.external_id)
            yield order_record(order)
        if dry_run:
            transaction.set_rollback(True)
