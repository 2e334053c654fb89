"""The nightly jobs, one after another, on the loaded data set: does a night's work fit in one hour?

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/retention_crm_bench \\
        python bench/nightly.py [--no-ledger] [--no-write]

Runs what every nightly beat schedule runs (customers/, metrics/ and campaigns/schedules.py), in
their store-time order, each by calling the service its Celery task calls, in the task's own
transactions (the script runs in autocommit, as a worker does):

1. loyalty: birthday bonuses (00:05), ``points_birthday_bonuses``;
2. loyalty: expire points (00:15), ``points_expire_due``;
3. loyalty: recompute tiers (00:30), ``tiers_recompute_all``;
4. metrics: refresh customer scores (01:00), ``customer_scores_refresh`` (RFM and churn risk);
5. metrics: daily snapshot (01:30), ``snapshots_fill``;
6. a campaign pass: one active campaign per standard trigger, default parameters, each evaluated
   once by ``campaign_run`` (what ``campaigns.evaluate`` calls every 5 minutes);
7. campaigns: expire overdue messages (03:00), ``messages_expire_stale``.

Each job's wall-clock seconds, the rows its service reports, and the process's peak RSS after it
(``getrusage``: free to read; PostgreSQL's own memory is not in it). The total is set against the
one-hour budget.

What a night leaves stays: the scores, the tiers (and their history), the snapshot. The rest is
removed at the end, so a second run does the same work: the campaigns with their entries, messages,
step counts and outcome rows (the contact policy is restored as it was), the birthday bonuses (once
a year per customer: kept, a second run the same day would credit none), and the ledger slice
seeded for the run.

The ledger slice (untimed; ``--no-ledger`` skips it): the data set loads no points, so the expiry
pass and the points-expiring trigger would read empty indexes. The script gives every completed
purchase placed in the day that ended ``expiry_days`` ago, and in the ``days_ahead`` days after
it, the earn lot it would have earned (``floor(total * earn_rate)``, expiring ``expiry_days``
after the purchase), and adds them to the balances: one night's lots to expire, and the lots that
expire in the trigger's window. Also untimed, before the run: the snapshots missing before
yesterday, so the timed snapshot job is a normal night's (yesterday retaken), not a 30-day backfill.
The send hand-off after each evaluation (a few broker messages after commit) is counted, not
published: no worker sends the bench's messages.
"""

import argparse
import datetime as dt
import os
import resource
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "retention_crm.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from bench.report import performance_section_write  # noqa: E402
from campaigns.models import Campaign, ContactPolicy  # noqa: E402
from campaigns.services import (  # noqa: E402
    EvaluationResult,
    campaign_create,
    campaign_run,
    messages_expire_stale,
)
from campaigns.tasks import send_batch  # noqa: E402
from customers.loyalty.services.daily import (  # noqa: E402
    points_birthday_bonuses,
    points_expire_due,
    tiers_recompute_all,
)
from customers.loyalty.services.program import loyalty_program_get  # noqa: E402
from metrics.churn_risk import customer_scores_refresh  # noqa: E402
from metrics.models import DailySnapshot  # noqa: E402
from metrics.periods import store_tz  # noqa: E402
from metrics.snapshots import SNAPSHOT_BACKFILL_DAYS, snapshots_fill  # noqa: E402

BUDGET_SECONDS = 3_600
BENCH_PREFIX = "bench nightly"
LOT_PREFIX = "bench-nightly:lot:"
POINTS_EXPIRING_DAYS_AHEAD = 14  # the points-expiring trigger's default window
# One campaign per standard trigger, default parameters ({}): all of them read the loaded data set
# (carts, purchases, sign-ups, birthdays, scores, and the seeded lots).
TRIGGERS = ("reactivation", "churn_risk", "points_expiring", "birthday", "welcome", "post_purchase", "abandoned_cart")
# Tables holding a campaign's rows, children first (outcomes, counts and totals are kept by the
# message triggers and carry a plain campaign id, no foreign key).
CAMPAIGN_TABLES = (
    "campaigns_attribution",
    "campaigns_message",
    "campaigns_entry",
    "campaigns_stepcount",
    "campaigns_variantwinner",
    "campaigns_messageoutcome",
    "campaigns_messagecount",
    "campaigns_reporttotal",
)


@dataclass(frozen=True)
class Job:
    name: str
    service: str
    seconds: float
    rows: str
    peak_rss_mb: float


def rss_mb() -> float:
    """The process's peak resident set so far (a high-water mark: it never goes down)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def execute(sql: str, params: Any = None) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def scalar(sql: str, params: Any = None) -> Any:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]


def vacuum(*tables: str) -> None:
    for table in tables:
        execute(f"VACUUM (ANALYZE) {table}")


def timed(name: str, service: str, run: Callable[[], Any], describe: Callable[[Any], str]) -> tuple[Job, Any]:
    """Run one job and measure it; ``describe`` turns the service's result into the rows column."""
    print(f"{name} ...", flush=True)
    started = time.perf_counter()
    result = run()
    job = Job(name, service, time.perf_counter() - started, describe(result), rss_mb())
    print(f"  {job.seconds:,.2f} s: {job.rows}", flush=True)
    return job, result


# --- Untimed preparation -------------------------------------------------------------------------


def ledger_seed(now: dt.datetime) -> int:
    """The earn lots of the purchases placed in the day that ended ``expiry_days`` ago and in the
    trigger's window after it, added to the balances; returns the lots written (0: no expiry)."""
    program = loyalty_program_get()
    if not program.expiry_days:
        return 0
    expiry = dt.timedelta(days=program.expiry_days)
    params = {
        "prefix": LOT_PREFIX,
        "rate": program.earn_rate,
        "expiry": expiry,
        "since": now - expiry - dt.timedelta(days=1),
        "until": now - expiry + dt.timedelta(days=POINTS_EXPIRING_DAYS_AHEAD),
    }
    with transaction.atomic():
        lots = execute(
            "INSERT INTO customers_pointsentry (customer_id, kind, points, idempotency_key, created_at, purchase_id,"
            "   reason, expires_at, remaining, uncovered, order_id)"
            " SELECT p.customer_id, 'earn', s.points, %(prefix)s || p.id, p.placed_at, p.id, '',"
            "   p.placed_at + %(expiry)s, s.points, 0, ''"
            " FROM customers_purchase p CROSS JOIN LATERAL (SELECT floor(p.total * %(rate)s)::bigint AS points) s"
            " WHERE p.status = 'completed' AND p.placed_at > %(since)s AND p.placed_at <= %(until)s AND s.points > 0",
            params,
        )
        execute(
            "UPDATE customers_customer c SET points_balance = c.points_balance + s.total"
            " FROM (SELECT customer_id, sum(points) AS total FROM customers_pointsentry"
            "       WHERE idempotency_key LIKE %s GROUP BY customer_id) s WHERE c.id = s.customer_id",
            [LOT_PREFIX + "%"],
        )
    vacuum("customers_pointsentry", "customers_customer")
    return lots


def snapshots_prepare() -> int:
    """The snapshots an installed shop already holds: the days before yesterday that the nightly
    fill would otherwise backfill, if any is missing; returns the snapshots taken."""
    yesterday = timezone.now().astimezone(store_tz()).date() - dt.timedelta(days=1)
    earlier = [yesterday - dt.timedelta(days=n) for n in range(1, SNAPSHOT_BACKFILL_DAYS)]
    if DailySnapshot.objects.filter(date__in=earlier).count() == len(earlier):
        return 0
    return len(snapshots_fill(until=earlier[0], days=len(earlier)))


def policy_save() -> dict | None:
    return ContactPolicy.objects.filter(pk=ContactPolicy.SINGLETON_ID).values().first()


def policy_restore(saved: dict | None) -> None:
    """As it was, ``updated_at`` included (``update`` skips ``auto_now``); gone if it was not there."""
    if saved is None:
        ContactPolicy.objects.filter(pk=ContactPolicy.SINGLETON_ID).delete()
    else:
        ContactPolicy.objects.filter(pk=ContactPolicy.SINGLETON_ID).update(**saved)


# --- The campaign pass ---------------------------------------------------------------------------


def make_campaign(trigger: str) -> Campaign:
    return campaign_create(
        data={
            "name": f"{BENCH_PREFIX}: {trigger}",
            "trigger": trigger,
            "channel": "email",
            "status": "active",
            "subject": "Hello {{ customer.first_name }}",
            "body": "Hello {{ customer.first_name }}: {{ unsubscribe_url }}",
            "params": {},
        }
    )


@contextmanager
def sends_counted(handoffs: list[int]) -> Iterator[None]:
    """``send_batch.delay`` records the campaign instead of publishing: the senders are another
    worker's job, and no worker anywhere may pick up a bench message."""
    with mock.patch.object(send_batch, "delay", side_effect=lambda campaign_id, *_: handoffs.append(campaign_id)):
        yield


def evaluation_rows(result: EvaluationResult, handoffs: int) -> str:
    return (
        f"{result.entered:,} entries; messages: {result.queued:,} queued ({result.due_now:,} due now),"
        f" {result.held_out:,} held out, {result.deferred:,} deferred, {result.suppressed:,} suppressed;"
        f" {handoffs} send tasks"
    )


def campaign_job(trigger: str) -> Job:
    """Create an active campaign for ``trigger`` and evaluate it once, as the beat task does."""
    campaign = make_campaign(trigger)
    handoffs: list[int] = []
    with sends_counted(handoffs):
        job, _ = timed(
            f"campaign pass: {trigger}",
            "campaign_run",
            lambda: campaign_run(campaign_id=campaign.pk),
            lambda result: evaluation_rows(result, len(handoffs)),
        )
    return job


def campaign_pass() -> list[Job]:
    """One active campaign per standard trigger, evaluated one after another (as one worker would)."""
    return [campaign_job(trigger) for trigger in TRIGGERS]


# --- Clean-up ------------------------------------------------------------------------------------


def campaigns_cleanup() -> int:
    """Delete the bench's campaigns and every row they wrote; returns the campaigns deleted."""
    ids = list(Campaign.objects.filter(name__startswith=BENCH_PREFIX).values_list("pk", flat=True))
    if not ids:
        return 0
    with transaction.atomic():
        for table in CAMPAIGN_TABLES:
            execute(f"DELETE FROM {table} WHERE campaign_id = ANY(%s)", [ids])
        Campaign.objects.filter(pk__in=ids).delete()
    vacuum("campaigns_message", "campaigns_entry")
    return len(ids)


def ledger_cleanup(*, after_id: int) -> int:
    """Delete the seeded lots, their expire entries and the run's birthday bonuses, and take their
    net off the balances; returns the entries deleted. The ledger is append-only: its triggers refuse
    deletes, so this session skips them (``session_replication_role``, superuser only)."""
    with transaction.atomic():
        execute("SET LOCAL session_replication_role = replica")
        execute(
            "CREATE TEMPORARY TABLE bench_nightly_entries ON COMMIT DROP AS"
            " SELECT e.id, e.customer_id, e.points FROM customers_pointsentry e"
            " WHERE e.idempotency_key LIKE %(lots)s"
            "    OR (e.kind = 'expire' AND e.related_entry_id IN ("
            "        SELECT l.id FROM customers_pointsentry l WHERE l.idempotency_key LIKE %(lots)s))"
            "    OR (e.id > %(after)s AND e.kind = 'bonus' AND e.idempotency_key LIKE 'bonus:birthday:%%')",
            {"lots": LOT_PREFIX + "%", "after": after_id},
        )
        execute(
            "UPDATE customers_customer c SET points_balance = c.points_balance - s.net"
            " FROM (SELECT customer_id, sum(points) AS net FROM bench_nightly_entries GROUP BY customer_id) s"
            " WHERE c.id = s.customer_id AND s.net <> 0"
        )
        deleted = execute("DELETE FROM customers_pointsentry WHERE id IN (SELECT id FROM bench_nightly_entries)")
    vacuum("customers_pointsentry", "customers_customer")
    return deleted


def ledger_state(*, after_id: int) -> tuple[int, int, int]:
    """What a complete clean-up gives back: the entries up to ``after_id``, the entries after it
    other than what a night keeps (expire entries of lots the data set already held), and the sum
    of the balances without those kept expiries. Equal before and after the run."""
    with connection.cursor() as cursor:
        cursor.execute(
            "WITH kept AS (SELECT e.id, e.points FROM customers_pointsentry e"
            "   WHERE e.id > %(after)s AND e.kind = 'expire' AND e.related_entry_id <= %(after)s)"
            " SELECT (SELECT count(*) FROM customers_pointsentry WHERE id <= %(after)s),"
            "  (SELECT count(*) FROM customers_pointsentry WHERE id > %(after)s AND id NOT IN (SELECT id FROM kept)),"
            "  (SELECT coalesce(sum(points_balance), 0) FROM customers_customer)"
            "   - (SELECT coalesce(sum(points), 0) FROM kept)",
            {"after": after_id},
        )
        return tuple(cursor.fetchone())


# --- The night -----------------------------------------------------------------------------------


def expiry_rows(result: Any) -> str:
    return f"{result.lots:,} lots of {result.customers:,} customers, {result.points:,} points"


def night() -> list[Job]:
    """The nightly jobs in their beat order; each service runs its own transactions."""
    jobs = []
    for name, service, run, describe in (
        ("loyalty: birthday bonuses", "points_birthday_bonuses", points_birthday_bonuses, "{:,} credited".format),
        ("loyalty: expire points", "points_expire_due", points_expire_due, expiry_rows),
        ("loyalty: recompute tiers", "tiers_recompute_all", tiers_recompute_all, "{:,} customers moved".format),
        (
            "metrics: refresh customer scores",
            "customer_scores_refresh",
            customer_scores_refresh,
            lambda r: f"{r.customers:,} customers scored ({r.bgnbd_customers:,} by BG/NBD)",
        ),
        ("metrics: daily snapshot", "snapshots_fill", snapshots_fill, lambda days: f"{len(days)} day(s) taken"),
    ):
        job, _ = timed(name, service, run, describe)
        jobs.append(job)
    jobs += campaign_pass()
    job, _ = timed(
        "campaigns: expire overdue messages", "messages_expire_stale", messages_expire_stale, "{:,} suppressed".format
    )
    jobs.append(job)
    return jobs


def report(jobs: list[Job], customers: int, purchases: int, lots: int, prepared_days: int) -> str:
    total = sum(job.seconds for job in jobs)
    campaigns = sum(job.seconds for job in jobs if job.service == "campaign_run")
    seeded = (
        f", plus {lots:,} earn lots seeded for the run (the purchases of the day that ended `expiry_days` ago and"
        f" of the {POINTS_EXPIRING_DAYS_AHEAD} days after it)"
        if lots
        else " (no points ledger seeded)"
    )
    lines = [
        "## Nightly jobs",
        "",
        f"Measured by `bench/nightly.py` on {customers:,} customers / {purchases:,} purchases{seeded};",
        "PostgreSQL and the benchmark on the same 2-core machine. Each job calls the service its Celery",
        "task calls, in the task's own transactions, one after another in the beat schedules' order.",
        "",
        "| job | service | seconds | rows written / affected | process peak RSS |",
        "| --- | --- | ---: | --- | ---: |",
    ]
    lines += [
        f"| {job.name} | `{job.service}` | {job.seconds:,.1f} | {job.rows} | {job.peak_rss_mb:,.0f} MB |"
        for job in jobs
    ]
    lines += [
        f"| **total** | | **{total:,.1f}** | {total / BUDGET_SECONDS:.1%} of the one-hour budget"
        f" ({'within' if total <= BUDGET_SECONDS else 'over'} it) | |",
        "",
        f"- Campaign pass: {campaigns:,.1f} s in all. One active campaign per standard trigger, default parameters,",
        "  email, 10 % control group, under the contact policy as it stands (quiet hours defer, not skip),",
        "  each evaluated for the first time, so every candidate is new; the every-5-minutes re-runs skip",
        "  existing dedupe keys (see Campaigns). The send tasks handed off after commit are counted, not published.",
        f"- The snapshot is a normal night's, yesterday retaken: the {SNAPSHOT_BACKFILL_DAYS - 1} days before it"
        f" were there ({prepared_days} taken, untimed, before the run).",
        "- Peak RSS is the process's high-water mark after each job (PostgreSQL's memory is not in it).",
        "- Kept: scores, tiers and their history, the snapshot. Removed afterwards: the campaigns and all",
        "  their rows, the birthday bonuses, the seeded lots with their expire entries (balances restored).",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-ledger", action="store_true", help="seed no earn lots for the expiry and its trigger")
    parser.add_argument("--no-write", action="store_true", help="print the table, leave docs/PERFORMANCE.md alone")
    parser.add_argument(
        "--section", default="nightly", help="the docs/PERFORMANCE.md section to write (one per data set size)"
    )
    args = parser.parse_args()
    if settings.EMBEDDED_DATABASE:
        raise SystemExit("Set DATABASE_URL to the benchmark's PostgreSQL database (not the embedded demo's).")
    # As in production: with DEBUG on, Django keeps every query's SQL in memory (measured as RSS).
    settings.DEBUG = False
    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("SELECT (SELECT count(*) FROM customers_customer), (SELECT count(*) FROM customers_purchase)")
        customers, purchases = cursor.fetchone()
    if customers == 0:
        raise SystemExit("No customers: load the data set with bench/generate.py first.")
    now = timezone.now()
    policy = policy_save()
    # What an interrupted run may have left: its campaigns, its seeded lots.
    campaigns_cleanup()
    ledger_cleanup(after_id=scalar("SELECT coalesce(max(id), 0) FROM customers_pointsentry"))
    after_id = scalar("SELECT coalesce(max(id), 0) FROM customers_pointsentry")
    ledger_before = ledger_state(after_id=after_id)
    try:
        started = time.perf_counter()
        lots = 0 if args.no_ledger else ledger_seed(now)
        prepared = snapshots_prepare()
        print(
            f"prepared (untimed): {lots:,} earn lots, {prepared} earlier snapshot(s)"
            f" in {time.perf_counter() - started:,.1f} s",
            flush=True,
        )
        jobs = night()
    finally:
        print(f"clean-up: {campaigns_cleanup()} campaigns", flush=True)
        print(f"clean-up: {ledger_cleanup(after_id=after_id):,} ledger entries", flush=True)
        policy_restore(policy)
    ledger_after = ledger_state(after_id=after_id)
    if ledger_after != ledger_before:
        raise SystemExit(f"ledger not as before the run: {ledger_before} -> {ledger_after}")
    text = report(jobs, customers, purchases, lots, prepared)
    print(text)
    if not args.no_write:
        performance_section_write(args.section, text)


if __name__ == "__main__":
    main()
