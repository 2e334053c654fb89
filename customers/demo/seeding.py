"""``demo_seed``: the demo's stages in one transaction, each timed and reported to the caller.

customers -> orders -> campaigns -> scores -> snapshots (see the package's docstring). The same
seed and the same ``now`` on an empty database give the same data: every random draw comes
from generators seeded by it, every time is an offset from ``now`` (the campaigns run at a fixed
time of day), and the control groups hash (campaign id, customer id), which a fresh database
numbers the same way every time.
"""

import datetime as dt
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import Model
from django.utils import timezone

from campaigns.models import SENT_STATUSES, Message
from customers.demo.figures import scores_compute, snapshots_take
from customers.demo.history import CampaignHistory, answers_record, orders_backdate, orders_record
from customers.demo.shoppers import CUSTOMER_PREFIX, Shoppers
from customers.models import Cart, CartItem, Consent, Customer, PointsEntry, Purchase, PurchaseItem

DEMO_PREFIX = CUSTOMER_PREFIX
CAMPAIGN_SEED_OFFSET = 1_000_003  # the replay's generator: its own stream, so changing it leaves the shoppers alone


@dataclass(frozen=True)
class DemoOptions:
    seed: int = 42
    customers: int = 1_600
    years: int = 2  # of orders
    days: int = 60  # of campaign history
    snapshot_days: int = 90  # of daily snapshots, up to yesterday


@dataclass(frozen=True)
class StageReport:
    name: str
    summary: str
    seconds: float


class Progress:
    """What ``demo_seed`` tells its caller as it goes; this one tells nobody."""

    def stage(self, report: StageReport) -> None:
        """A stage is done."""

    @contextmanager
    def steps(self, total: int, label: str, unit: str = "steps") -> Iterator[Callable[[int], None]]:
        """A stage of ``total`` steps (counted in ``unit``): the caller gets a function to call
        with each few done."""
        yield lambda n: None


def demo_exists() -> int:
    """How many demo customers there are (a second seed would collide with them)."""
    return Customer.objects.filter(external_id__startswith=DEMO_PREFIX).count()


def analyze(*models: type[Model]) -> None:
    """Refresh the planner's statistics of tables that were empty a moment ago: with stale ones
    PostgreSQL picks plans for a handful of rows (a scan of every purchase per customer)."""
    with connection.cursor() as cursor:
        for model in models:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")


def demo_seed(
    *, options: DemoOptions, progress: Progress | None = None, now: dt.datetime | None = None
) -> list[StageReport]:
    """Write the demo in one transaction; returns each stage's report, in order."""
    progress = progress or Progress()
    now = (now or timezone.now()).replace(microsecond=0)
    reports: list[StageReport] = []

    def done(name: str, summary: str, started: float) -> None:
        reports.append(StageReport(name, summary, time.monotonic() - started))
        progress.stage(reports[-1])

    with transaction.atomic():
        with connection.cursor() as cursor:
            # Hundreds of small statements over a small data set: compiling them costs more than it saves.
            cursor.execute("SET LOCAL jit = off")

        started = time.monotonic()
        shoppers = Shoppers(rng=random.Random(options.seed), now=now, years=options.years, campaign_days=options.days)
        shoppers.write(options.customers)
        analyze(Customer, Consent, Cart, CartItem)
        counts = shoppers.counts
        done(
            "customers",
            f"{counts['customers']} customers, {counts['consents']} consents, {counts['carts']} carts, "
            f"{counts['products']} new products",
            started,
        )

        started = time.monotonic()
        with progress.steps(len(shoppers.purchases), "orders", unit="orders") as tick:
            orders = orders_record(shoppers.purchases, tick=tick)
        answers = answers_record(shoppers.answers)
        analyze(Customer, Purchase, PurchaseItem, PointsEntry)
        done("orders", f"{orders} orders, {answers} NPS answers", started)

        started = time.monotonic()
        history = CampaignHistory(
            shoppers=shoppers,
            rng=random.Random(options.seed * CAMPAIGN_SEED_OFFSET + 1),
            now=now,
            days=options.days,
        )
        with progress.steps(len(history.run_days()), "campaigns", unit="days") as tick:
            result = history.run(tick=tick, analyze=lambda: analyze(Message))
        orders_backdate(now=now)
        statuses = result.statuses
        sent = sum(n for status, n in statuses.items() if status in SENT_STATUSES)
        done(
            "campaigns",
            f"{result.campaigns} campaigns, {result.runs} runs over {options.days} days: "
            f"{sum(statuses.values())} messages ({sent} sent, {statuses['held_out']} held out, "
            f"{statuses['suppressed']} suppressed, {statuses['failed']} failed, {statuses['queued']} queued), "
            f"{result.events} provider events, {result.responses} orders in response, "
            f"{result.attributed} attributed, {result.answers} NPS answers",
            started,
        )

        started = time.monotonic()
        scored = scores_compute(now=now)
        done("scores", f"{scored.customers} customers: RFM segment and churn risk", started)

        started = time.monotonic()
        days = snapshots_take(now=now, days=options.snapshot_days)
        span = f" ({days[0]} to {days[-1]})" if days else ""
        done("snapshots", f"{len(days)} daily snapshots{span}", started)
    return reports
