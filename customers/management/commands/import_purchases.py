"""``manage.py import_purchases FILE.csv``: load a shop's order export (SPEC §7). See docs/IMPORT.md.

An interface only: it parses the options, hands the file to ``customers.csv_import`` (which records
the orders in batches through ``purchases_record_bulk``, the bulk API's service), shows progress and
reports what happened. Safe to re-run: orders are keyed on their external_id, so ones already
stored count as ``exists``.
"""

import csv
import logging
import sys
from collections import Counter
from contextlib import ExitStack, closing
from pathlib import Path
from typing import Any, TextIO

from django.core.management.base import BaseCommand, CommandError, CommandParser

from customers.csv_import import (
    BATCH_ORDERS,
    CREATED,
    ERROR,
    EXISTS,
    FIELDS,
    JOBS,
    MAX_JOBS,
    CsvImportError,
    PurchaseCsv,
    RowError,
    delimiter_parse,
    mapping_parse,
    orders_import,
)
from customers.services.bulk import MAX_BULK_PURCHASES
from retention_crm.progress import LINE_EVERY_SECONDS, progress_report

logger = logging.getLogger(__name__)

MAX_PRINTED_ERRORS = 200  # the terminal gets the first ones; --errors-csv gets them all
ERRORS_CSV_COLUMNS = ("line", "external_id", "field", "column", "code", "message")


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


def error_line(error: RowError) -> str:
    """``line 4: order A-1003: amount (total): must not be negative``: the column as the file names it."""
    where = error.column or error.field
    if error.column and error.field and error.column != error.field:
        where = f"{error.column} ({error.field})"
    order = error.external_id or "(no external_id)"
    return f"line {error.line}: order {order}: " + (f"{where}: " if where else "") + error.message


def progress_stream(options: dict[str, Any]) -> TextIO:
    """The stream progress goes to: the one given to call_command, else the process's stderr.

    Not ``self.stderr``: that wrapper ends every write with a newline, which breaks a bar's
    redraws and doubles the newline of each progress line.
    """
    return options.get("stderr") or sys.stderr


class Command(BaseCommand):
    help = (
        "Import purchases from a CSV file: one line per order, or one per item line with the order's "
        "lines adjacent. Safe to re-run; exits non-zero if any order failed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="the CSV file; its first line is the header")
        parser.add_argument(
            "--map",
            action="append",
            default=[],
            metavar="FIELD=COLUMN",
            help=f"read FIELD from the column named COLUMN (repeatable). Fields: {', '.join(FIELDS)}",
        )
        parser.add_argument("--delimiter", default=",", help="cell separator (default ','; '\\t' or 'tab' for tabs)")
        parser.add_argument("--encoding", default="utf-8", help="text encoding (default utf-8; a BOM is accepted)")
        parser.add_argument(
            "--ignore-unknown-columns",
            action="store_true",
            help="skip columns that map to no field instead of refusing",
        )
        parser.add_argument("--errors-csv", metavar="PATH", help="also write the error report to this CSV file")
        parser.add_argument("--dry-run", action="store_true", help="validate and report, write nothing")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar or progress lines")
        parser.add_argument(
            "--progress-every",
            type=float,
            default=LINE_EVERY_SECONDS,
            metavar="SECONDS",
            help=f"off a terminal, print a progress line this often (default {LINE_EVERY_SECONDS:g})",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=BATCH_ORDERS,
            metavar="ORDERS",
            help=f"orders recorded together (1 to {MAX_BULK_PURCHASES}, default {BATCH_ORDERS})",
        )
        parser.add_argument(
            "--jobs",
            type=int,
            default=JOBS,
            help=f"batches recorded side by side, each on its own connection (1 to {MAX_JOBS}, default {JOBS})",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not 1 <= options["batch_size"] <= MAX_BULK_PURCHASES:
            raise CommandError(f"--batch-size must be between 1 and {MAX_BULK_PURCHASES}")
        if not 1 <= options["jobs"] <= MAX_JOBS:
            raise CommandError(f"--jobs must be between 1 and {MAX_JOBS}")
        if options["progress_every"] <= 0:
            raise CommandError("--progress-every must be a positive number of seconds")
        try:
            source = PurchaseCsv(
                options["file"],
                encoding=options["encoding"],
                delimiter=delimiter_parse(options["delimiter"]),
                mapping=mapping_parse(options["map"]),
                ignore_unknown_columns=options["ignore_unknown_columns"],
            )
        except CsvImportError as exc:
            raise CommandError(str(exc)) from None

        with ExitStack() as stack:
            stack.enter_context(source)
            report = ErrorReport(self._errors_csv_open(stack, options["errors_csv"], source.path))
            tally, stopped = self._import(source, report, options)

        self._print_report(report)
        dry_run = "dry run, nothing written: " if options["dry_run"] else ""
        summary = f"{dry_run}created {tally[CREATED]}, exists {tally[EXISTS]}, errors {tally[ERROR]}"
        self.stdout.write(self.style.ERROR(summary) if tally[ERROR] or stopped else self.style.SUCCESS(summary))
        logger.info(
            "purchases.imported",
            extra={
                "file": source.path.name,
                "dry_run": options["dry_run"],
                # "created" is a LogRecord attribute already, hence the prefix.
                **{f"orders_{status}": tally[status] for status in (CREATED, EXISTS, ERROR)},
            },
        )
        if stopped is not None:
            verb = "checked" if options["dry_run"] else "imported"
            raise CommandError(
                f"stopped reading at {stopped}; only the orders counted above were {verb} "
                "(fix the file and run it again: imported orders count as exists)"
            )
        if tally[ERROR]:
            raise CommandError(f"{tally[ERROR]} order(s) failed; see the error report above")

    def _import(
        self, source: PurchaseCsv, report: ErrorReport, options: dict[str, Any]
    ) -> tuple[Counter[str], CsvImportError | None]:
        """Orders counted by outcome, and the error that stopped the reading early, if one did."""
        tally: Counter[str] = Counter()
        done = source.header_end_line
        progress = progress_report(
            total=(source.total_lines - done) or None,
            unit="lines",
            label="import_purchases",
            stream=progress_stream(options),
            enabled=not options["no_progress"],
            every=options["progress_every"],
        )
        results = orders_import(
            source.orders(), dry_run=options["dry_run"], batch_size=options["batch_size"], jobs=options["jobs"]
        )
        # closing(): whatever ends the loop (Ctrl-C too), the writers finish their batch and stop.
        with progress as tick, closing(results):
            try:
                for result in results:
                    tally[result.status] += 1
                    for error in result.errors:
                        report.add(error)
                    tick(result.end_line - done)
                    done = result.end_line
            except CsvImportError as exc:
                # The rest of the file cannot be read; what came before stays recorded (re-runs are safe).
                return tally, exc
        return tally, None

    def _errors_csv_open(self, stack: ExitStack, path_text: str | None, source_path: Path) -> TextIO | None:
        if not path_text:
            return None
        path = Path(path_text)
        if path.resolve() == source_path.resolve():
            raise CommandError("--errors-csv must not be the file being imported")
        try:
            return stack.enter_context(path.open("w", encoding="utf-8", newline=""))
        except OSError as exc:
            raise CommandError(f"--errors-csv {path}: {exc.strerror}") from None

    def _print_report(self, report: ErrorReport) -> None:
        if not report.count:
            return
        self.stdout.write(f"Errors ({report.count}):")
        for error in report.kept:
            self.stdout.write(f"  {error_line(error)}")
        if report.count > len(report.kept):
            more = report.count - len(report.kept)
            self.stdout.write(f"  ... and {more} more; --errors-csv PATH writes them all")
