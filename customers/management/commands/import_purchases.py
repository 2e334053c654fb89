"""``manage.py import_purchases FILE.csv``: load a shop's order export (SPEC §7). See docs/IMPORT.md.

An interface only: it parses the options, hands the file to ``customers.csv_import`` (which records
the orders in batches through ``purchases_record_bulk``, the bulk API's service), shows progress and
reports what happened. Safe to re-run: orders are keyed on their external_id, so ones already
stored count as ``exists``.
"""

import logging
from collections import Counter
from contextlib import ExitStack, closing
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

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
from customers.csv_import import (
    BATCH_ORDERS,
    CREATED,
    ERROR,
    EXISTS,
    FIELDS,
    JOBS,
    MAX_BATCH_ORDERS,
    MAX_JOBS,
    PurchaseCsv,
    mapping_parse,
    orders_import,
)
from retention_crm.progress import LINE_EVERY_SECONDS, progress_report

logger = logging.getLogger(__name__)

WORDING = Wording(
    record="order",
    counted="order",
    stopped="stopped reading at",
    rerun_hint="fix the file and run it again: imported orders count as exists",
)


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
            help=f"orders recorded together (1 to {MAX_BATCH_ORDERS:,}, default {BATCH_ORDERS:,})",
        )
        parser.add_argument(
            "--jobs",
            type=int,
            default=JOBS,
            help=f"batches recorded side by side, each on its own connection (1 to {MAX_JOBS}, default {JOBS})",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not 1 <= options["batch_size"] <= MAX_BATCH_ORDERS:
            raise CommandError(f"--batch-size must be between 1 and {MAX_BATCH_ORDERS:,}")
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
            report = ErrorReport(errors_csv_open(stack, options["errors_csv"], source.path))
            tally, stopped = self._import(source, report, options)

        command_finish(
            self,
            report,
            Outcome(
                summary=f"created {tally[CREATED]}, exists {tally[EXISTS]}, errors {tally[ERROR]}",
                failed=tally[ERROR],
                stopped=stopped,
            ),
            dry_run=options["dry_run"],
            wording=WORDING,
            event="purchases.imported",
            # "created" is a LogRecord attribute already, hence the prefix.
            log_extra={
                "file": source.path.name,
                **{f"orders_{status}": tally[status] for status in (CREATED, EXISTS, ERROR)},
            },
            logger=logger,
        )

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
        # (A generator, though annotated as an Iterator, which has no close().)
        with progress as tick, closing(results):  # type: ignore[type-var]
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
