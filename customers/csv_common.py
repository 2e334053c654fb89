"""What the two CSV imports (``import_purchases``, ``import_customers``) share: the file's checks
and reading, column mapping, batches, the planner's statistics during an import, and the
commands' error report and summary. Each import keeps only what its file means.

A file is checked up front (it exists, decodes in the given encoding, has a header and a row),
then streamed; line numbers are the file's physical lines, the header being line 1, so a quoted
cell that spans lines does not shift the numbers of the rows after it.
"""

import codecs
import csv
import gc
import io
import itertools
import logging
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Self, TextIO, TypeVar

from django.core.management.base import BaseCommand, CommandError
from django.db import connection

READ_CHUNK_BYTES = 1 << 20  # bytes decoded at a time by the encoding check
# A table is analyzed during an import once it holds this many rows more than twice what its
# statistics say (see statistics_refresh).
ANALYZE_AFTER_ROWS = 1_000
MAX_PRINTED_ERRORS = 200  # the terminal gets the first ones; --errors-csv gets them all
ERRORS_CSV_COLUMNS = ("line", "external_id", "field", "column", "code", "message")

T = TypeVar("T")
L = TypeVar("L")  # a file's layout: which column holds which field


class CsvImportError(Exception):
    """The file or the options cannot be imported at all (as opposed to one bad row)."""


@dataclass(frozen=True)
class RowError:
    """One problem of one record (an order, a customer), placed at the file line and column where
    it was found."""

    line: int
    external_id: str
    field: str  # the field's name; "" when the problem is a whole line or record
    column: str  # that field's column in this file; "" when it has none
    code: str
    message: str


# --- Options -------------------------------------------------------------------------------------


def delimiter_parse(value: str) -> str:
    """One character; ``\\t`` and ``tab`` spell a tab, which is awkward to pass in a shell."""
    delimiter = "\t" if value in ("\\t", "tab") else value
    if len(delimiter) != 1 or delimiter in '"\r\n':
        raise CsvImportError(f"--delimiter {value!r}: must be one character other than a quote or newline")
    return delimiter


def mapping_parse(
    pairs: Iterable[str], *, field_problem: Callable[[str], str | None], fields_text: str, example: str
) -> dict[str, str]:
    """``["external_id=order_no", ...]`` as ``{"external_id": "order_no"}``; refuses names that
    ``field_problem`` explains are no field (``fields_text`` lists the fields in the message)."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        name, equals, column = (part.strip() for part in pair.partition("="))
        if not equals or not name or not column:
            raise CsvImportError(f"--map {pair!r}: write it as field=column, e.g. --map {example}")
        if problem := field_problem(name):
            raise CsvImportError(f"--map {pair!r}: {problem}; the fields are {fields_text}")
        if mapping.get(name, column) != column:
            raise CsvImportError(f"--map: field {name!r} is mapped to both {mapping[name]!r} and {column!r}")
        mapping[name] = column
    return mapping


def column_list(names: Iterable[str]) -> str:
    return ", ".join(repr(name) for name in names)


# --- The file ------------------------------------------------------------------------------------


def codec_for(encoding: str) -> str:
    try:
        name = codecs.lookup(encoding).name
        io.TextIOWrapper(io.BytesIO(), encoding=name)  # refuses codecs that are not text encodings (base64)
    except LookupError:
        raise CsvImportError(f"unknown text encoding {encoding!r}") from None
    # Excel marks UTF-8 with a BOM; utf-8-sig drops one if present and reads plain UTF-8 otherwise.
    return "utf-8-sig" if name in ("utf-8", "utf-8-sig") else name


def text_check(path: Path, codec: str) -> int:
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


class CsvSource(Generic[L]):
    """One CSV file: checked up front (file, encoding, header, at least one row), then streamed.
    ``layout_from_header(cells, mapping, ignore_unknown_columns=...)`` reads its header."""

    def __init__(
        self,
        path: str | Path,
        *,
        layout_from_header: Callable[..., L],
        encoding: str = "utf-8",
        delimiter: str = ",",
        mapping: dict[str, str] | None = None,
        ignore_unknown_columns: bool = False,
    ) -> None:
        self.path = Path(path)
        codec = codec_for(encoding)
        if not self.path.exists():
            raise CsvImportError(f"{self.path}: no such file")
        if self.path.is_dir():
            raise CsvImportError(f"{self.path} is a directory, not a CSV file")
        self.total_lines = text_check(self.path, codec)
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
            self.layout: L = layout_from_header(cells, mapping or {}, ignore_unknown_columns=ignore_unknown_columns)
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

    def records(self) -> Iterator[tuple[int, int, list[str]]]:
        """The rows after the header, as (first line, last line, cells)."""
        return itertools.chain([self._first_row], self._records)


# --- Batches and the planner's statistics --------------------------------------------------------


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


# An import allocates a few objects per cell and keeps a few batches of them alive, almost none in
# reference cycles; with the collector's default thresholds it runs a collection every 700
# allocations and rescans every object Django and the batches hold: a fifth of an import's Python
# time, for a few dozen objects freed. During an import it runs every 50,000 allocations instead,
# and what existed before the import (the loaded app) is left out of its scans.
RELAXED_GC_THRESHOLDS = (50_000, 20, 100)


@contextmanager
def collector_relaxed() -> Iterator[None]:
    """The cyclic garbage collector made rare for the length of an import (see above)."""
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(*RELAXED_GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """The items (orders, rows) ``size`` at a time. When the file cannot be read further, the items
    read up to there still come out as a last batch before the error goes on to the caller."""
    batch: list[T] = []
    try:
        for item in items:
            batch.append(item)
            if len(batch) >= size:
                yield batch
                batch = []
    except CsvImportError:
        if batch:
            yield batch
        raise
    if batch:
        yield batch


# --- The commands' report ------------------------------------------------------------------------


class ErrorReport:
    """Row errors as they come: all of them to the --errors-csv file, the first few kept to print."""

    def __init__(self, stream: TextIO | None) -> None:
        self.count = 0
        self.kept: list[RowError] = []
        self._writer = csv.writer(stream) if stream is not None else None
        if self._writer is not None:
            self._writer.writerow(ERRORS_CSV_COLUMNS)

    def add(self, error: RowError) -> None:
        self.count += 1
        if len(self.kept) < MAX_PRINTED_ERRORS:
            self.kept.append(error)
        if self._writer is not None:
            self._writer.writerow([getattr(error, name) for name in ERRORS_CSV_COLUMNS])


def error_line(error: RowError, *, noun: str) -> str:
    """``line 4: order A-1003: amount (total): must not be negative``: the column as the file names it."""
    where = error.column or error.field
    if error.column and error.field and error.column != error.field:
        where = f"{error.column} ({error.field})"
    record = error.external_id or "(no external_id)"
    return f"line {error.line}: {noun} {record}: " + (f"{where}: " if where else "") + error.message


def progress_stream(options: dict[str, Any]) -> TextIO:
    """The stream progress goes to: the one given to call_command, else the process's stderr.

    Not ``self.stderr``: that wrapper ends every write with a newline, which breaks a bar's
    redraws and doubles the newline of each progress line.
    """
    return options.get("stderr") or sys.stderr


def errors_csv_open(stack: ExitStack, path_text: str | None, source_path: Path) -> TextIO | None:
    """The --errors-csv file, open for writing until ``stack`` closes; None without the option."""
    if not path_text:
        return None
    path = Path(path_text)
    if path.resolve() == source_path.resolve():
        raise CommandError("--errors-csv must not be the file being imported")
    try:
        return stack.enter_context(path.open("w", encoding="utf-8", newline=""))
    except OSError as exc:
        raise CommandError(f"--errors-csv {path}: {exc.strerror}") from None


@dataclass(frozen=True)
class Outcome:
    """How an import ended, for its report: the summary of the counts, how many records failed,
    and the error that stopped the reading early, if one did."""

    summary: str
    failed: int
    stopped: CsvImportError | None


def command_finish(
    command: BaseCommand,
    report: ErrorReport,
    outcome: Outcome,
    *,
    dry_run: bool,
    wording: "Wording",
    event: str,
    log_extra: dict[str, Any],
    logger: logging.Logger,
) -> None:
    """Print the problems and the summary, log the event, and raise CommandError (a non-zero exit)
    when the import stopped early or any record failed."""
    if report.count:
        command.stdout.write(f"Errors ({report.count}):")
        for error in report.kept:
            command.stdout.write(f"  {error_line(error, noun=wording.record)}")
        if report.count > len(report.kept):
            more = report.count - len(report.kept)
            command.stdout.write(f"  ... and {more} more; --errors-csv PATH writes them all")
    summary = ("dry run, nothing written: " if dry_run else "") + outcome.summary
    failed = outcome.failed or outcome.stopped is not None
    command.stdout.write(command.style.ERROR(summary) if failed else command.style.SUCCESS(summary))
    logger.info(event, extra={"dry_run": dry_run, **log_extra})
    if outcome.stopped is not None:
        verb = "checked" if dry_run else "imported"
        raise CommandError(
            f"{wording.stopped} {outcome.stopped}; only the {wording.counted}s counted above were {verb} "
            f"({wording.rerun_hint})"
        )
    if outcome.failed:
        raise CommandError(f"{outcome.failed} {wording.counted}(s) failed; see the error report above")


@dataclass(frozen=True)
class Wording:
    """How a command's report names things."""

    record: str  # what an error line names: "order", "customer"
    counted: str  # what the summary counts: "order", "row"
    stopped: str  # "stopped reading at" (the file), "stopped at" (the file or the database)
    rerun_hint: str  # why running it again after a fix is safe
