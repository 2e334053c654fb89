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
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from customers.csv_common import (
    CsvImportError,
    ErrorReport,
    Outcome,
    Wording,
    command_finish,
    delimiter_parse,
    errors_csv_open,
    progress_stream,
)
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
from retention_crm.progress import LINE_EVERY_SECONDS, progress_report

logger = logging.getLogger(__name__)


WORDING = Wording(
    record="customer",
    counted="row",
    stopped="stopped at",
    rerun_hint="fix the cause and run it again: imported customers count as unchanged",
)


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
            report = ErrorReport(errors_csv_open(stack, options["errors_csv"], source.path))
            tally, stopped = self._import(source, report, options)

        command_finish(
            self,
            report,
            Outcome(
                summary=", ".join(f"{status if status != ERROR else 'errors'} {tally[status]}" for status in STATUSES),
                failed=tally[ERROR],
                stopped=stopped,
            ),
            dry_run=options["dry_run"],
            wording=WORDING,
            event="customers.imported",
            # "created" is a LogRecord attribute already, hence the prefix.
            log_extra={"file": source.path.name, **{f"customers_{status}": tally[status] for status in STATUSES}},
            logger=logger,
        )

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
        # (A generator, though annotated as an Iterator, which has no close().)
        with progress as tick, closing(results):  # type: ignore[type-var]
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
