"""``manage.py import_customers FILE.csv``: load a shop's customer export with consents (SPEC §7).

An interface only: it parses the options, hands the file to ``customers.customer_import`` (which
validates every row with the shared rules and writes them set-based, in batches) and reports what
happened, with the conventions of ``import_purchases`` (options, error report, summary). Safe to
re-run: customers are keyed on their external_id, so a second run updates, never duplicates.
See docs/IMPORT.md.
"""

import logging
from collections import Counter
from contextlib import ExitStack, closing
from pathlib import Path
from typing import Any, TextIO

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from customers.csv_import import CsvImportError, RowError, delimiter_parse
from customers.customer_import import (
    BATCH_ROWS,
    ERROR,
    MAX_BATCH_ROWS,
    STATUSES,
    TAG_SEPARATOR,
    CustomerCsv,
    customers_import,
    fields_described,
    mapping_parse,
)
from customers.management.commands.import_purchases import ErrorReport, progress_stream
from retention_crm.progress import LINE_EVERY_SECONDS, progress_report

logger = logging.getLogger(__name__)


def error_line(error: RowError) -> str:
    """``line 4: customer c-9: newsletter (consent.email): must be true, ...``: the column as the file names it."""
    where = error.column or error.field
    if error.column and error.field and error.column != error.field:
        where = f"{error.column} ({error.field})"
    customer = error.external_id or "(no external_id)"
    return f"line {error.line}: customer {customer}: " + (f"{where}: " if where else "") + error.message


class Command(BaseCommand):
    help = (
        "Import customers from a CSV file, one line per customer: contact fields, tags, attributes, "
        "consents and referrals. Safe to re-run (keyed on external_id); exits non-zero if any row failed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="the CSV file; its first line is the header")
        parser.add_argument(
            "--map",
            action="append",
            default=[],
            metavar="FIELD=COLUMN",
            help=f"read FIELD from the column named COLUMN (repeatable). Fields: {fields_described()}; "
            f"tags are separated by {TAG_SEPARATOR!r}",
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
            default=BATCH_ROWS,
            metavar="ROWS",
            help=f"rows written together (1 to {MAX_BATCH_ROWS:,}, default {BATCH_ROWS:,})",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not 1 <= options["batch_size"] <= MAX_BATCH_ROWS:
            raise CommandError(f"--batch-size must be between 1 and {MAX_BATCH_ROWS:,}")
        if options["progress_every"] <= 0:
            raise CommandError("--progress-every must be a positive number of seconds")
        try:
            source = CustomerCsv(
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
        summary = dry_run + ", ".join(
            f"{status if status != ERROR else 'errors'} {tally[status]}" for status in STATUSES
        )
        self.stdout.write(self.style.ERROR(summary) if tally[ERROR] or stopped else self.style.SUCCESS(summary))
        logger.info(
            "customers.imported",
            extra={
                "file": source.path.name,
                "dry_run": options["dry_run"],
                # "created" is a LogRecord attribute already, hence the prefix.
                **{f"customers_{status}": tally[status] for status in STATUSES},
            },
        )
        if stopped is not None:
            verb = "checked" if options["dry_run"] else "imported"
            raise CommandError(
                f"stopped at {stopped}; only the rows counted above were {verb} "
                "(fix the cause and run it again: imported customers count as unchanged)"
            )
        if tally[ERROR]:
            raise CommandError(f"{tally[ERROR]} row(s) failed; see the error report above")

    def _import(
        self, source: CustomerCsv, report: ErrorReport, options: dict[str, Any]
    ) -> tuple[Counter[str], CsvImportError | None]:
        """Rows counted by outcome, and the error that stopped the reading early, if one did."""
        tally: Counter[str] = Counter()
        done = source.header_end_line
        progress = progress_report(
            total=(source.total_lines - done) or None,
            unit="lines",
            label="import_customers",
            stream=progress_stream(options),
            enabled=not options["no_progress"],
            every=options["progress_every"],
        )
        results = customers_import(source, dry_run=options["dry_run"], batch_rows=options["batch_size"])
        # closing(): whatever ends the loop (Ctrl-C too), the reading thread stops and temporary tables go.
        with progress as tick, closing(results):
            try:
                for result in results:
                    tally[result.status] += 1
                    for error in result.errors:
                        report.add(error)
                    if result.end_line > done:  # rows that waited for a referrer come back later
                        tick(result.end_line - done)
                        done = result.end_line
            except CsvImportError as exc:
                # The rest of the file cannot be read; what came before stays written (re-runs are safe).
                return tally, exc
            except DatabaseError as exc:
                # The connection is gone (a server restart, a network cut): the same, from here on.
                detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                return tally, CsvImportError(f"a database error ({detail})")
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
