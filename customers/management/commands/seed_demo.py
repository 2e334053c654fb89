"""``manage.py seed_demo``: load the demo (``customers.demo``): customers and two years of orders,
months of campaign history with control groups and conversions, scores and daily snapshots.

An interface only: it checks the options, runs ``demo_seed`` and prints a line per stage. While a
stage runs, its progress goes to stderr (``retention_crm.progress``): a bar on a terminal, a line
with count, rate and time left every few seconds otherwise (``make run``'s log, a pipe, CI).
``make run`` calls it with ``--if-empty`` on every start.
"""

import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from django.core.management.base import BaseCommand, CommandError, CommandParser

from customers.demo import DEMO_PREFIX, DemoOptions, StageReport, demo_exists, demo_seed
from customers.demo.seeding import Progress
from customers.models import Customer
from retention_crm.progress import LINE_EVERY_SECONDS, progress_report

# The services log an event per evaluation, send batch and recompute: hundreds during a seed,
# which the stage lines sum up. Shown again with --verbosity 2.
QUIET_LOGGERS = ("campaigns", "customers", "metrics")
MAX_DAYS = 365


class CommandProgress(Progress):
    """Stage lines to stdout; each stage's progress to ``stream`` (see the module's docstring)."""

    def __init__(self, command: BaseCommand, *, stream: TextIO, enabled: bool, every: float) -> None:
        self.command = command
        self.stream, self.enabled, self.every = stream, enabled, every

    def stage(self, report: StageReport) -> None:
        self.command.stdout.write(f"seed_demo: {report.name:<9} {report.summary} ({report.seconds:.1f} s)")

    @contextmanager
    def steps(self, total: int, label: str, unit: str = "steps") -> Iterator[Callable[[int], None]]:
        with progress_report(
            total=total,
            unit=unit,
            label=f"seed_demo: {label}",
            stream=self.stream,
            enabled=self.enabled,
            every=self.every,
        ) as tick:
            yield tick


@contextmanager
def quiet_logs(verbosity: int) -> Iterator[None]:
    if verbosity >= 2:
        yield
        return
    loggers = [logging.getLogger(name) for name in QUIET_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


class Command(BaseCommand):
    help = (
        "Load the demo: customers, orders, carts, consents, loyalty points, months of campaign history "
        "(sent, held-out, suppressed and converted messages), NPS answers, scores and daily snapshots."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        defaults = DemoOptions()
        parser.add_argument("--seed", type=int, default=defaults.seed, help=f"random seed (default {defaults.seed})")
        parser.add_argument(
            "--customers",
            type=int,
            default=defaults.customers,
            help=f"number of customers (default {defaults.customers})",
        )
        parser.add_argument(
            "--years", type=int, default=defaults.years, help=f"length of the order history (default {defaults.years})"
        )
        parser.add_argument(
            "--days", type=int, default=defaults.days, help=f"days of campaign history (default {defaults.days})"
        )
        parser.add_argument(
            "--snapshot-days",
            type=int,
            default=defaults.snapshot_days,
            help=f"daily snapshots up to yesterday (default {defaults.snapshot_days})",
        )
        parser.add_argument(
            "--if-empty", action="store_true", help="do nothing when any customer exists (for `make run`)"
        )
        parser.add_argument("--no-progress", action="store_true", help="no progress bar or progress lines")
        parser.add_argument(
            "--progress-every",
            type=float,
            default=LINE_EVERY_SECONDS,
            metavar="SECONDS",
            help=f"off a terminal, print a progress line this often (default {LINE_EVERY_SECONDS:g})",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["customers"] < 1:
            raise CommandError("--customers must be at least 1.")
        if options["years"] < 1:
            raise CommandError("--years must be at least 1.")
        for option in ("days", "snapshot_days"):
            if not 1 <= options[option] <= MAX_DAYS:
                raise CommandError(f"--{option.replace('_', '-')} must be between 1 and {MAX_DAYS}.")
        if options["progress_every"] <= 0:
            raise CommandError("--progress-every must be a positive number of seconds.")
        if options["if_empty"] and Customer.objects.exists():
            self.stdout.write("seed_demo: customers already exist; nothing to do (--if-empty).")
            return
        existing = demo_exists()
        if existing:
            raise CommandError(
                f"{existing} demo customers ({DEMO_PREFIX}...) already exist. "
                "Use --if-empty to skip seeding when data exists, or start from a fresh database."
            )
        demo = DemoOptions(
            seed=options["seed"],
            customers=options["customers"],
            years=options["years"],
            days=options["days"],
            snapshot_days=options["snapshot_days"],
        )
        started = time.monotonic()
        with quiet_logs(options["verbosity"]):
            progress = CommandProgress(
                self,
                # Not self.stderr: that wrapper ends every write with a newline, breaking a bar's redraws.
                stream=options.get("stderr") or sys.stderr,
                enabled=not options["no_progress"],
                every=options["progress_every"],
            )
            demo_seed(options=demo, progress=progress)
        self.stdout.write(
            self.style.SUCCESS(f"seed_demo: done in {time.monotonic() - started:.1f} s (seed {demo.seed}).")
        )
