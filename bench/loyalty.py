"""Loyalty benchmark: redemptions per second (one hot account, many accounts) and the daily expiry
pass over every customer, each next to a raw-SQL bound measured in the same run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/retention_crm_bench \\
        python bench/loyalty.py [--workers 8] [--seconds 15] [--write-doc]

Runs against the data set of bench/generate.py (1M customers / 10M purchases) and leaves it as it
found it:

- Redemptions commit (worker processes, one connection each), so they use customers of their own
  (``bench-loyalty-*``), created for the run and deleted at the end with their ledger entries.
  Deleting ledger entries is refused by the ledger's triggers; the clean-up session sets
  ``session_replication_role = replica`` (superuser only), which skips them.
- The expiry pass works inside one transaction that is rolled back: lots for every customer are
  inserted, the service's pass runs (its per-batch transactions become savepoints), the balances
  and lots are checked, everything is rolled back to a savepoint, then the raw-SQL bound runs on
  the same rows, then the whole transaction is rolled back. ``VACUUM (ANALYZE)`` then clears the
  dead rows the rollback left behind.

The bounds do the least correct work and nothing else: a redemption is one conditional UPDATE of
the balance, one UPDATE of the oldest lot and one INSERT, committed; the expiry is one statement
(data-modifying CTEs) that writes the same expire entries, balances and lots, without batching,
locks or running balances.
"""

import argparse
import datetime as dt
import os
import resource
import sys
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "retention_crm.settings")

from bench.report import performance_section_write  # noqa: E402

PREFIX = "bench-loyalty"
MANY_ACCOUNTS = 1_000
HOT_POINTS = 50_000_000
MANY_POINTS = 1_000_000


@dataclass
class Rate:
    operations: int
    seconds: float
    failures: int = 0

    @property
    def per_second(self) -> float:
        return self.operations / self.seconds if self.seconds else 0.0


EXPIRY_BATCH_CUSTOMERS = 5_000  # the service's default (customers.loyalty.services.daily)


def _setup_django() -> None:
    import django
    from django.conf import settings

    django.setup()
    # As in production: with DEBUG on, Django keeps every query's SQL in memory, which would
    # be measured as the pass's memory.
    settings.DEBUG = False


# --- Redemptions ------------------------------------------------------------------------------------


def redemption_accounts() -> tuple[int, list[int]]:
    """Create the hot account and the many accounts, each with one big lot (committed)."""
    from django.db import transaction
    from django.utils import timezone

    from customers.loyalty.services import Credit, credits_write
    from customers.models import Customer, PointsKind

    with transaction.atomic():
        Customer.objects.bulk_create(
            [Customer(external_id=f"{PREFIX}-hot")]
            + [Customer(external_id=f"{PREFIX}-m-{n:05d}") for n in range(MANY_ACCOUNTS)],
            ignore_conflicts=True,
        )
        hot = Customer.objects.get(external_id=f"{PREFIX}-hot").pk
        many = list(
            Customer.objects.filter(external_id__startswith=f"{PREFIX}-m-").order_by("pk").values_list("pk", flat=True)
        )
        now = timezone.now()
        credits_write(
            [Credit(hot, PointsKind.BONUS, HOT_POINTS, f"{PREFIX}:seed:{hot}", now + dt.timedelta(days=365))]
            + [
                Credit(pk, PointsKind.BONUS, MANY_POINTS, f"{PREFIX}:seed:{pk}", now + dt.timedelta(days=365))
                for pk in many
            ],
            at=now,
        )
    return hot, many


def _redeem_loop(args: tuple[str, list, float, float, int]) -> tuple[int, int]:
    """One worker process: redeem 1 point at a time until the time is up; (done, failed)."""
    import random

    kind, accounts, start_at, seconds, worker = args
    rng = random.Random(worker)
    run = f"{time.time_ns()}-{worker}"
    if kind == "service":
        from customers.loyalty.services import points_redeem

        def redeem(n: int) -> None:
            points_redeem(
                customer=rng.choice(accounts), points=1, order_total="100.00", idempotency_key=f"svc-{run}-{n}"
            )

    else:
        import psycopg
        from django.conf import settings

        db = settings.DATABASES["default"]
        conn = psycopg.connect(
            dbname=db["NAME"],
            user=db["USER"],
            password=db["PASSWORD"] or None,
            host=db["HOST"],
            port=db["PORT"] or None,
        )

        def redeem(n: int) -> None:
            customer = rng.choice(accounts)
            with conn.cursor() as cur:
                cur.execute(_RAW_SPEND, [customer])
                row = cur.fetchone()
                if row is None:
                    conn.rollback()
                    raise RuntimeError("insufficient")
                cur.execute(_RAW_LOT, [customer])
                cur.execute(_RAW_ENTRY, [customer, f"{PREFIX}:raw:{run}-{n}", row[0]])
            conn.commit()

    time.sleep(max(0.0, start_at - time.time()))
    done = failed = n = 0
    deadline = start_at + seconds
    while time.time() < deadline:
        try:
            redeem(n)
            done += 1
        except Exception:
            failed += 1
        n += 1
    return done, failed


def redemptions(kind: str, workers: int, seconds: float, accounts: list) -> Rate:
    """``workers`` processes (as gunicorn runs the API), each with its own database connection,
    redeeming for ``accounts`` (external ids for the service, ids for the raw bound)."""
    import multiprocessing

    from django.db import connections

    connections.close_all()  # the children open their own; none may share the parent's socket
    start_at = time.time() + 2.0  # every worker ready before the clock starts
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        results = pool.map(_redeem_loop, [(kind, accounts, start_at, seconds, w) for w in range(workers)])
    return Rate(sum(done for done, _ in results), seconds, sum(failed for _, failed in results))


_RAW_SPEND = (
    "UPDATE customers_customer SET points_balance = points_balance - 1 "
    "WHERE id = %s AND points_balance >= 1 RETURNING points_balance"
)
_RAW_LOT = (
    "UPDATE customers_pointsentry SET remaining = remaining - 1 WHERE id = ("
    "SELECT id FROM customers_pointsentry WHERE customer_id = %s AND remaining > 0 "
    "ORDER BY expires_at, id LIMIT 1)"
)
_RAW_ENTRY = (
    "INSERT INTO customers_pointsentry (customer_id, kind, points, idempotency_key, created_at, reason, "
    "uncovered, balance_after, order_id, order_total, discount) "
    "VALUES (%s, 'redeem', -1, %s, now(), '', 0, %s, '', 100.00, 0.01)"
)


def redemption_cleanup() -> None:
    """Delete the run's customers and their entries; the ledger's triggers are skipped on purpose."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(
            "DELETE FROM customers_pointsentry WHERE customer_id IN "
            "(SELECT id FROM customers_customer WHERE external_id LIKE %s)",
            [f"{PREFIX}-%"],
        )
        cursor.execute(
            "DELETE FROM customers_tierchange WHERE customer_id IN "
            "(SELECT id FROM customers_customer WHERE external_id LIKE %s)",
            [f"{PREFIX}-%"],
        )
        cursor.execute("DELETE FROM customers_customer WHERE external_id LIKE %s", [f"{PREFIX}-%"])


def check_accounts(customer_ids: list[int]) -> None:
    from customers.loyalty.selectors import loyalty_mismatches

    bad = loyalty_mismatches().filter(pk__in=customer_ids).count()
    if bad:
        raise SystemExit(f"{bad} bench account(s) out of line after the redemptions")


# --- Expiry -------------------------------------------------------------------------------------------

# Every customer gets one lot whose expiry has come; every second customer one more that stays.
_SEED_LOTS = """
    INSERT INTO customers_pointsentry
        (customer_id, kind, points, idempotency_key, created_at, reason, expires_at, remaining, uncovered, order_id)
    SELECT id, 'earn', points, %(prefix)s || ':expiring:' || id, %(now)s - interval '366 days', '',
           %(now)s - interval '1 day' + (id %% 3600) * interval '1 second', points, 0, ''
    FROM (SELECT id, 1 + (id %% 500) AS points FROM customers_customer WHERE id <= %(max_id)s) AS c
    UNION ALL
    SELECT id, 'earn', points, %(prefix)s || ':live:' || id, %(now)s - interval '10 days', '',
           %(now)s + interval '355 days', points, 0, ''
    FROM (SELECT id, 1 + (id %% 300) AS points FROM customers_customer WHERE id %% 2 = 0 AND id <= %(max_id)s) AS c
"""
_SEED_BALANCES = """
    UPDATE customers_customer AS c SET points_balance = c.points_balance + s.total
    FROM (SELECT customer_id, SUM(remaining) AS total FROM customers_pointsentry
          WHERE idempotency_key LIKE %(pattern)s GROUP BY customer_id) AS s
    WHERE c.id = s.customer_id
"""
_RAW_EXPIRY = """
    WITH due AS (
        SELECT id, customer_id, remaining, purchase_id FROM customers_pointsentry
        WHERE remaining > 0 AND expires_at <= %(now)s
    ), zeroed AS (
        UPDATE customers_pointsentry AS lot SET remaining = 0 FROM due WHERE lot.id = due.id
    ), balances AS (
        UPDATE customers_customer AS c SET points_balance = c.points_balance - s.total
        FROM (SELECT customer_id, SUM(remaining) AS total FROM due GROUP BY customer_id) AS s
        WHERE c.id = s.customer_id
    )
    INSERT INTO customers_pointsentry
        (customer_id, kind, points, idempotency_key, created_at, purchase_id, reason, uncovered,
         related_entry_id, order_id)
    SELECT customer_id, 'expire', -remaining, 'expire:lot:' || id, %(now)s, purchase_id, '', 0, id, ''
    FROM due
"""


@dataclass
class Timed:
    seconds: float
    rows: int
    python_peak_mb: float = 0.0
    rss_growth_mb: float = 0.0


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def expiry_bench(limit: int | None, batch_size: int) -> tuple[int, int, Timed, Timed]:
    from django.db import connection, transaction
    from django.utils import timezone

    from customers.loyalty.services.daily import points_expire_due
    from customers.models import Customer, PointsEntry

    now = timezone.now()
    with transaction.atomic():
        with connection.cursor() as cursor:
            max_id = 2**63 - 1
            if limit:  # a trial over the first ``limit`` customers
                max_id = Customer.objects.order_by("pk").values_list("pk", flat=True)[limit - 1]
            started = time.monotonic()
            cursor.execute(_SEED_LOTS, {"prefix": PREFIX, "now": now, "max_id": max_id})
            lots = cursor.rowcount
            cursor.execute(_SEED_BALANCES, {"pattern": f"{PREFIX}:%"})
            cursor.execute("ANALYZE customers_pointsentry")
            cursor.execute("ANALYZE customers_customer")
            print(f"seeded {lots:,} lots in {time.monotonic() - started:.1f} s", flush=True)
        customers = Customer.objects.filter(points_entries__idempotency_key__startswith=f"{PREFIX}:expiring:").count()
        due_points = sum(
            PointsEntry.objects.filter(remaining__gt=0, expires_at__lte=now)
            .values_list("remaining", flat=True)
            .iterator()
        )

        savepoint = transaction.savepoint()
        rss_before = _rss_mb()
        tracemalloc.start()
        started = time.monotonic()
        result = points_expire_due(now=now, batch_size=batch_size)
        seconds = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        service = Timed(seconds, result.lots, peak / 2**20, _rss_mb() - rss_before)
        print(f"service pass: {result} in {seconds:.1f} s", flush=True)
        if result.customers != customers or result.points != due_points:
            raise SystemExit(f"the pass expired {result}, expected {customers} customers and {due_points} points")
        if PointsEntry.objects.filter(remaining__gt=0, expires_at__lte=now).exists():
            raise SystemExit("lots past expiry were left open")
        transaction.savepoint_rollback(savepoint)

        savepoint = transaction.savepoint()
        with connection.cursor() as cursor:
            started = time.monotonic()
            cursor.execute(_RAW_EXPIRY, {"now": now})
            bound = Timed(time.monotonic() - started, cursor.rowcount)
        print(f"raw bound: {bound.rows:,} entries in {bound.seconds:.1f} s", flush=True)
        transaction.savepoint_rollback(savepoint)
        transaction.set_rollback(True)
    return customers, lots, service, bound


def vacuum() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        for table in ("customers_pointsentry", "customers_customer"):
            cursor.execute(f"VACUUM (ANALYZE) {table}")


# --- Report -----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=8, help="redeeming processes (one connection each)")
    parser.add_argument("--seconds", type=float, default=15, help="duration of each redemption run")
    parser.add_argument("--limit", type=int, default=None, help="expiry over the first N customers only (a trial)")
    parser.add_argument("--expiry-batch", type=int, default=EXPIRY_BATCH_CUSTOMERS, help="customers per batch")
    parser.add_argument("--skip-redemptions", action="store_true")
    parser.add_argument("--skip-expiry", action="store_true")
    parser.add_argument("--write-doc", action="store_true", help="put the table into docs/PERFORMANCE.md")
    args = parser.parse_args(argv)
    if "DATABASE_URL" not in os.environ:
        parser.error("set DATABASE_URL to the benchmark database")
    _setup_django()
    from django.db import connection

    from customers.models import Customer

    rows: list[str] = []
    if not args.skip_redemptions:
        try:
            hot, many = redemption_accounts()
            many_names = list(Customer.objects.filter(pk__in=many).values_list("external_id", flat=True))
            workers, seconds = args.workers, args.seconds
            runs = [
                (
                    "one hot account",
                    redemptions("service", workers, seconds, [f"{PREFIX}-hot"]),
                    redemptions("raw", workers, seconds, [hot]),
                ),
                (
                    f"{MANY_ACCOUNTS:,} accounts, random",
                    redemptions("service", workers, seconds, many_names),
                    redemptions("raw", workers, seconds, many),
                ),
            ]
            check_accounts([hot, *many])
        finally:
            redemption_cleanup()
        for name, service, bound in runs:
            print(
                f"redemptions, {name}: service {service.per_second:,.0f}/s ({service.failures} failed), "
                f"raw bound {bound.per_second:,.0f}/s",
                flush=True,
            )
            ratio = bound.per_second / service.per_second
            rows.append(
                f"| redemptions/s, {name} ({args.workers} processes, {args.seconds:.0f} s) "
                f"| {service.per_second:,.0f}/s | {bound.per_second:,.0f}/s | {ratio:.1f}x |"
            )
    if not args.skip_expiry:
        try:
            customers, lots, service, bound = expiry_bench(args.limit, args.expiry_batch)
        finally:
            connection.close()
            vacuum()
        rows.append(
            f"| daily expiry pass: {service.rows:,} lots of {customers:,} customers ({lots:,} lots in all) "
            f"| {service.seconds:.1f} s, Python peak {service.python_peak_mb:.1f} MB "
            f"(RSS +{service.rss_growth_mb:.0f} MB) "
            f"| {bound.seconds:.1f} s (one statement) | {service.seconds / bound.seconds:.1f}x |"
        )
    table = "\n".join(
        ["| measurement | service | raw-SQL bound | service / bound |", "| --- | --- | --- | --- |", *rows]
    )
    print(table)
    if args.write_doc:
        performance_section_write("loyalty", f"{SECTION_INTRO}\n{table}\n{SECTION_NOTES}")
    return 0


SECTION_INTRO = """## Loyalty

Measured by `bench/loyalty.py` on the 1M customers / 10M purchases data set, with the benchmark's
worker processes and PostgreSQL on the same 2-core machine (other benchmarks were running on it
too: compare each figure with its bound, measured in the same run). Redemptions call the service
(`points_redeem`, as the API does) from 8 processes with a connection each (as gunicorn workers
would), for one customer (every request queues on that customer's row) and spread over 1,000
customers. The expiry pass expires a due lot for every one of the 1M customers at once: the worst
night there can be (a normal night expires only the lots earned on one day a year before).
"""
SECTION_NOTES = """
- The redemption bound is the least a correct ledger write needs: a conditional UPDATE of the
  balance, an UPDATE of the oldest lot and an INSERT, committed, from plain psycopg. The service
  also reads the settings, finds the customer by external id and looks up the idempotency key
  before it writes, through the ORM: 3.9 ms per redemption on one idle process, 2.3 ms of it
  Python CPU. With 8 processes on 2 cores that CPU is the limit, which the many-accounts ratio
  shows. On one hot account the row lock is held only from the conditional UPDATE to the commit
  (the reads come first; two requests racing with one key are settled by the unique key), so the
  gap there is the CPU the lock holder waits for.
- The expiry bound is one statement with data-modifying CTEs: no batches, no locks, no running
  balances. The service walks the customers 5,000 at a time, locks each batch (a checkout waits at
  most one batch), and writes per batch one INSERT of expire entries, one UPDATE of the balances
  and one UPDATE of the lots; its Python memory is a batch of ids, flat with the customer count.
- Most of either expiry's time is writing: each expired lot is an INSERT into a table with 11
  indexes plus an UPDATE of the lot and of its customer's row (the customers table has 11 indexes
  too; a balance update that cannot stay on its page, as after a COPY load, touches all of them).
- Nothing is left behind: the redemption customers and their entries are deleted after the run;
  the expiry runs inside a transaction that is rolled back, then `VACUUM (ANALYZE)`.
"""


if __name__ == "__main__":
    raise SystemExit(main())
