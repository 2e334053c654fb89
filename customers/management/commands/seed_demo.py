"""``manage.py seed_demo``: load the demo (``customers.demo``): customers and two years of orders,
months of campaign history with control groups and conversions, scores and daily snapshots.

An interface only: it checks the options, runs ``demo_seed`` and prints a line per stage (a bar
on a terminal while a stage runs). ``make run`` calls it with ``--if-empty`` on every start.
"""

import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from customers.demo import DEMO_PREFIX, DemoOptions, StageReport, demo_exists, demo_seed
from customers.demo.seeding import Progress
from customers.models import Customer

# The services log an event per evaluation, send batch and recompute: hundreds during a seed,
# which the stage lines sum up. Shown again with --verbosity 2.
QUIET_LOGGERS = ("campaigns", "customers", "metrics")
MAX_DAYS = 365


class CommandProgress(Progress):
    def __init__(self, command: BaseCommand) -> None:
        self.command = command

    def stage(self, report: StageReport) -> None:
        self.command.stdout.write(f"seed_demo: {report.name:<9} {report.summary} ({report.seconds:.1f} s)")

    @contextmanager
    def steps(self, total: int, label: str) -> Iterator[Callable[[int], None]]:
        disable = not sys.stderr.isatty()
        with tqdm(total=total, desc=f"seed_demo: {label}", file=sys.stderr, disable=disable, leave=False) as bar:
            yield bar.update


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

    def handle(self, *args: Any, **options: Any) -> None:
        if options["customers"] < 1:
            raise CommandError("--customers must be at least 1.")
        if options["years"] < 1:
            raise CommandError("--years must be at least 1.")
        for option in ("days", "snapshot_days"):
            if not 1 <= options[option] <= MAX_DAYS:
                raise CommandError(f"--{option.replace('_', '-')} must be between 1 and {MAX_DAYS}.")
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
            demo_seed(options=demo, progress=CommandProgress(self))
        self.stdout.write(
            self.style.SUCCESS(f"seed_demo: done in {time.monotonic() - started:.1f} s (seed {demo.seed}).")
        )
