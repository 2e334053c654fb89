"""Import benchmark (SPEC §7): ``manage.py import_purchases`` of 1,000,000 CSV lines into the 1M/10M
data set and into an empty database, each next to PostgreSQL's COPY of the same file.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/retention_crm_bench \\
    BENCH_EMPTY_DATABASE_URL=postgres://postgres@127.0.0.1:5432/retention_crm_bench_empty \\
        python bench/imports.py [--lines 1000000] [--memory-lines 100000] [--no-write]

``DATABASE_URL`` holds the data set of bench/generate.py; the empty database is one that has been
migrated and holds no customers (``createdb`` it, then ``manage.py migrate``).

The file: new orders of two item lines each (the second line leaves the order's cells blank, as
shop exports do) for customers drawn at random from the data set's, placed over the last 60 days,
3 % refunded and 1 % cancelled, over a catalogue of 200 products. In the empty database every
customer is new, so there the import also creates about 400,000 customers with their welcome bonus.

For each database, in one run:

1. COPY: the file into a plain table with the columns' types of the tables the import writes (no
   indexes, no constraints), committed, then dropped: the least loading the file can cost.
2. The import: ``manage.py import_purchases FILE`` in a process of its own, with its defaults, as a
   shop would run it (off a terminal, so it prints a progress line every 5 s). Measured: lines/s,
   that process's CPU time and peak resident set (from the kernel, ``wait4``).
3. Memory: a second file of ``--memory-lines`` other new orders imported under ``tracemalloc``
   (which slows Python down about four times, hence the smaller file): Python's peak allocation
   and the resident set, to set next to the full run's.
4. The import's writes in bare SQL (``writes_bound``): the file COPYed again, then the purchases,
   their items, an earn entry each and the buyers' stats and balances (and, into the empty
   database, the customers with their welcome entry) in a few statements, on as many connections
   as the import has writers, rolled back: what those writes cost PostgreSQL itself.

The imports run with DEBUG off (with it on Django keeps the text of every statement, about 100 KB
for a batch's). The loaded database keeps the imported orders, under the run's own prefix (runs
never collide; bench/generate.py --drop restores the data set); the empty database is emptied
again at the end.
"""

import argparse
import datetime as dt
import json
import os
import random
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.report import performance_section_write  # noqa: E402

LINES = 1_000_000
MEMORY_LINES = 100_000
LINES_PER_ORDER = 2
PRODUCTS = 200
CATEGORIES = ("coffee", "tea", "kitchen", "pet", "skincare", "apparel", "books", "garden")
DAYS = 60
REFUND_RATE, CANCEL_RATE = 0.03, 0.01
COPY_TABLE = "bench_import_copy"
COPY_CHUNK_BYTES = 1 << 20
GOAL_LINES_PER_SECOND = 10_000
GOAL_COPY_RATIO = 15
# The CSV's columns and the table column whose type each takes in the plain COPY table.
COLUMNS = (
    ("external_id", "customers_purchase", "external_id"),
    ("customer", "customers_customer", "external_id"),
    ("placed_at", "customers_purchase", "placed_at"),
    ("total", "customers_purchase", "total"),
    ("status", "customers_purchase", "status"),
    ("sku", "customers_purchaseitem", "sku"),
    ("name", "customers_purchaseitem", "name"),
    ("category", "customers_purchaseitem", "category"),
    ("quantity", "customers_purchaseitem", "quantity"),
    ("unit_price", "customers_purchaseitem", "unit_price"),
)
# Emptying the empty database again: these and every table that refers to them.
EMPTIED_TABLES = ("customers_customer", "customers_purchase", "customers_product", "customers_pointsentry")


def csv_write(path: Path, *, lines: int, customers: int, prefix: str, seed: int) -> int:
    """``lines`` lines (plus the header) of new orders of LINES_PER_ORDER item lines; returns the orders."""
    rng = random.Random(seed)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    prices = [rng.randrange(150, 6000) for _ in range(PRODUCTS)]
    orders = lines // LINES_PER_ORDER
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(",".join(name for name, _, _ in COLUMNS) + "\n")
        for number in range(orders):
            customer = f"bench-c-{rng.randrange(1, customers + 1):08d}"
            placed_at = (now - dt.timedelta(seconds=rng.randrange(DAYS * 86_400))).isoformat()
            roll = rng.random()
            status = "refunded" if roll < REFUND_RATE else "cancelled" if roll < REFUND_RATE + CANCEL_RATE else ""
            items = [(rng.randrange(PRODUCTS), 1 + rng.randrange(3)) for _ in range(LINES_PER_ORDER)]
            total = sum(prices[product] * quantity for product, quantity in items)
            order_cells = f"{prefix}-{number:07d},{customer},{placed_at},{total // 100}.{total % 100:02d},{status}"
            blank_cells = f"{prefix}-{number:07d},,,,"
            for index, (product, quantity) in enumerate(items):
                price = prices[product]
                out.write(
                    f"{order_cells if index == 0 else blank_cells},IMP-{product:04d},Product {product},"
                    f"{CATEGORIES[product % len(CATEGORIES)]},{quantity},{price // 100}.{price % 100:02d}\n"
                )
    return orders


@dataclass
class Copied:
    seconds: float
    rows: int


def copy_columns(conn: psycopg.Connection) -> str:
    """The COPY table's column definitions: each of the file's columns with the SQL type of the
    table column it goes to."""
    types = dict(
        conn.execute(
            "SELECT attrelid::regclass::text || '.' || attname, format_type(atttypid, atttypmod) "
            "FROM pg_attribute WHERE attrelid = ANY(%s::regclass[]) AND attnum > 0",
            [sorted({table for _, table, _ in COLUMNS})],
        ).fetchall()
    )
    return ", ".join(f"{name} {types[f'{table}.{column}']}" for name, table, column in COLUMNS)


def copy_bound(url: str, path: Path) -> Copied:
    """COPY the file into a plain table of the same columns (created, committed, dropped)."""
    with psycopg.connect(url, autocommit=True) as conn:
        columns = copy_columns(conn)
        conn.execute(f"DROP TABLE IF EXISTS {COPY_TABLE}")
        conn.execute(f"CREATE TABLE {COPY_TABLE} ({columns})")
        try:
            started = time.perf_counter()
            with conn.cursor() as cur:
                with (
                    path.open("rb") as stream,
                    cur.copy(f"COPY {COPY_TABLE} FROM STDIN (FORMAT csv, HEADER true)") as copy,
                ):
                    while chunk := stream.read(COPY_CHUNK_BYTES):
                        copy.write(chunk)
                rows = cur.rowcount  # known once the COPY has ended, while the cursor is open
            return Copied(time.perf_counter() - started, rows)
        finally:
            conn.execute(f"DROP TABLE IF EXISTS {COPY_TABLE}")


# The import's own writes in bare SQL, from the copied file: the purchases, their items, an earn
# entry each and the buyers' stats and balances in one statement, and in the empty database first
# the customers with their welcome entry. No validation, carts, tiers or attribution; the ids take
# a prefix of their own, since the import has stored the file's ones by then.
_SQL_NEW_CUSTOMERS = f"""
    WITH created AS (
        INSERT INTO customers_customer
            (external_id, email, phone, first_name, last_name, timezone, tags, attributes, created_at,
             updated_at, orders_count, total_spent, points_balance, tier)
        SELECT DISTINCT 'sql-' || customer, '', '', '', '', 'UTC', '[]'::jsonb, '{{{{}}}}'::jsonb, now(), now(),
               0, 0, 100, 'bronze'
        FROM {COPY_TABLE} WHERE customer IS NOT NULL AND {{share}}
        RETURNING id
    )
    INSERT INTO customers_pointsentry
        (kind, points, idempotency_key, created_at, reason, expires_at, remaining, uncovered, customer_id,
         balance_after, order_id)
    SELECT 'bonus', 100, 'sql:welcome:' || id, now(), 'Welcome bonus', now() + interval '365 days', 100, 0, id,
           100, ''
    FROM created
"""
_SQL_PURCHASES = f"""
    WITH purchase AS (
        INSERT INTO customers_purchase
            (external_id, customer_id, placed_at, total, currency, status, cart_external_id, points_redeemed,
             content_digest, created_at)
        SELECT 'sql-' || copied.external_id, customer.id, copied.placed_at, copied.total, 'USD',
               COALESCE(copied.status, 'completed'), '', 0, md5(copied.external_id), now()
        FROM {COPY_TABLE} AS copied
        JOIN customers_customer AS customer ON customer.external_id = {{customer_name}}
        WHERE {{share}}
        RETURNING id, external_id, customer_id, placed_at, total, status
    ), item AS (
        INSERT INTO customers_purchaseitem (purchase_id, sku, name, category, quantity, unit_price)
        SELECT purchase.id, copied.sku, copied.name, copied.category, copied.quantity, copied.unit_price
        FROM {COPY_TABLE} AS copied JOIN purchase ON purchase.external_id = 'sql-' || copied.external_id
        RETURNING 1
    ), earned AS (
        INSERT INTO customers_pointsentry
            (kind, points, idempotency_key, created_at, reason, expires_at, remaining, uncovered, customer_id,
             purchase_id, order_id)
        SELECT 'earn', GREATEST(floor(total), 1), 'sql:earn:' || id, now(), '', placed_at + interval '365 days',
               GREATEST(floor(total), 1), 0, customer_id, id, ''
        FROM purchase WHERE status = 'completed'
    ), moved AS (
        UPDATE customers_customer AS customer SET
        orders_count = customer.orders_count + bought.orders,
        total_spent = customer.total_spent + bought.spent,
        first_purchase_at = LEAST(customer.first_purchase_at, bought.first_at),
        last_purchase_at = GREATEST(customer.last_purchase_at, bought.last_at),
        points_balance = customer.points_balance + bought.points
    FROM (
        SELECT customer_id, count(*) AS orders, sum(total) AS spent, min(placed_at) AS first_at,
               max(placed_at) AS last_at, sum(GREATEST(floor(total), 1))::bigint AS points
        FROM purchase WHERE status = 'completed' GROUP BY customer_id
    ) AS bought
    WHERE customer.id = bought.customer_id
    RETURNING 1
    )
    SELECT (SELECT count(*) FROM purchase), (SELECT count(*) FROM item)
"""


def writes_bound(url: str, path: Path, *, new_customers: bool, jobs: int = 2) -> Copied:
    """The least PostgreSQL itself needs for the import's writes (see _SQL_PURCHASES), on as many
    connections as the import has writers, each for its share of the customers: the file COPYed
    into a temporary table, those statements and the foreign-key checks a commit runs, in one
    transaction that is rolled back."""

    def share_write(share: int) -> tuple[int, int, int]:
        try:
            return share_written(share)
        except BaseException:
            barrier.abort()  # the other connections stop waiting for this one
            raise

    def share_written(share: int) -> tuple[int, int, int]:
        with psycopg.connect(url) as conn:
            columns = copy_columns(conn)
            mine = f"abs(hashtext({{column}})) % {jobs} = {share}"  # this connection's customers
            with conn.transaction(force_rollback=True), conn.cursor() as cur:
                cur.execute(f"CREATE TEMPORARY TABLE {COPY_TABLE} ({columns}) ON COMMIT DROP")
                copy_sql = f"COPY {COPY_TABLE} FROM STDIN (FORMAT csv, HEADER true)"
                with path.open("rb") as stream, cur.copy(copy_sql) as copy:
                    while chunk := stream.read(COPY_CHUNK_BYTES):
                        copy.write(chunk)
                rows = cur.rowcount
                cur.execute(f"ANALYZE {COPY_TABLE}")
                if new_customers:
                    cur.execute(_SQL_NEW_CUSTOMERS.format(share=mine.format(column="customer")))
                name = "'sql-' || copied.customer" if new_customers else "copied.customer"
                cur.execute(_SQL_PURCHASES.format(customer_name=name, share=mine.format(column="copied.customer")))
                purchases, items = cur.fetchone()
                cur.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the foreign-key checks a commit would run
                barrier.wait()  # every share written before any rolls back
            return rows, purchases, items

    written_at: list[float] = []  # when the last share was written (the rollbacks are not timed)
    barrier = threading.Barrier(jobs, action=lambda: written_at.append(time.perf_counter()))
    started = time.perf_counter()
    with ThreadPoolExecutor(jobs) as pool:
        shares = list(pool.map(share_write, range(jobs)))
    lines, written = shares[0][0], sum(purchases + items for _, purchases, items in shares)
    if written != lines + lines // LINES_PER_ORDER:  # a purchase per order and an item per line
        raise SystemExit(f"the bare SQL wrote {written:,} purchases and items for a file of {lines:,} lines")
    return Copied(written_at[0] - started, lines)


@dataclass
class Imported:
    seconds: float
    summary: str
    cpu_seconds: float
    rss_mb: float
    python_peak_mb: float | None
    load: tuple[float, float]  # one-minute load average at the start and at the end


def import_run(url: str, path: Path, *, traced: bool) -> Imported:
    """``manage.py import_purchases`` in a child process (see ``child_main``), measured from here."""
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DEBUG": "false",
        "SECRET_KEY": os.environ.get("SECRET_KEY") or "bench-imports-only-" + "x" * 40,
        "LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, str(Path(__file__).resolve()), "--child", str(path)]
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    child = subprocess.Popen([*command, *(["--traced"] if traced else [])], env=env, stdout=subprocess.PIPE, text=True)
    output = child.stdout.read() if child.stdout else ""
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if child.returncode != 0:
        raise SystemExit(f"the import into {url.rsplit('/', 1)[-1]} failed (exit {child.returncode})")
    report = json.loads(output.strip().splitlines()[-1])
    return Imported(
        seconds=seconds,
        summary=report["summary"],
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        rss_mb=usage.ru_maxrss / 1024,
        python_peak_mb=report["python_peak_mb"],
        load=(load_before, os.getloadavg()[0]),
    )


def child_main(path: str, *, traced: bool) -> int:
    """In the child: run the command as a shop would, then print one JSON line for the parent."""
    import io
    import tracemalloc

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "retention_crm.settings")
    django.setup()
    from django.core.management import call_command

    if traced:
        tracemalloc.start()
    out = io.StringIO()
    call_command("import_purchases", path, stdout=out)  # progress lines go to stderr, as in a cron job
    peak = tracemalloc.get_traced_memory()[1] / 2**20 if traced else None
    summary = out.getvalue().strip().splitlines()[-1]
    print(json.dumps({"summary": summary, "python_peak_mb": peak}), flush=True)
    return 0


def data_set_size(url: str) -> tuple[int, int]:
    """The data set's bench customers, and its purchases as the planner's statistics have them."""
    with psycopg.connect(url) as conn:
        customers = conn.execute("SELECT count(*) FROM customers_customer WHERE external_id LIKE 'bench-c-%'")
        purchases = conn.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = 'customers_purchase'::regclass")
        return customers.fetchone()[0], max(purchases.fetchone()[0], 0)


def empty_check(url: str) -> None:
    with psycopg.connect(url) as conn:
        if conn.execute("SELECT to_regclass('customers_customer')").fetchone()[0] is None:
            raise SystemExit("the empty database is not migrated: run manage.py migrate on it first")
        if conn.execute("SELECT EXISTS (SELECT 1 FROM customers_customer)").fetchone()[0]:
            raise SystemExit("the empty database holds customers: give the URL of a freshly migrated one")


def empty_again(url: str) -> None:
    """Leave the empty database as it was: its customers and everything hanging off them go."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {', '.join(EMPTIED_TABLES)} CASCADE")
        conn.execute("VACUUM ANALYZE")


@dataclass
class Target:
    name: str
    copied: Copied
    full: Imported
    memory: Imported
    written: Copied


def measure(name: str, url: str, full_file: Path, memory_file: Path, *, new_customers: bool) -> Target:
    print(f"{name}: COPY ...", flush=True)
    copied = copy_bound(url, full_file)
    print(f"{name}: COPY {copied.rows:,} lines in {copied.seconds:.1f} s; import ...", flush=True)
    full = import_run(url, full_file, traced=False)
    print(f"{name}: {full.summary} in {full.seconds:.1f} s; the traced import ...", flush=True)
    memory = import_run(url, memory_file, traced=True)
    print(
        f"{name}: {memory.summary}, Python peak {memory.python_peak_mb:.1f} MB; the writes in bare SQL ...", flush=True
    )
    written = writes_bound(url, full_file, new_customers=new_customers)
    print(f"{name}: the writes in bare SQL in {written.seconds:.1f} s", flush=True)
    return Target(name, copied, full, memory, written)


def server_settings(url: str) -> str:
    """The server's version and the settings the figures depend on (docs/OPERATIONS.md)."""
    with psycopg.connect(url) as conn:
        version, buffers, wal, timeout = conn.execute(
            "SELECT current_setting('server_version'), current_setting('shared_buffers'), "
            "current_setting('max_wal_size'), current_setting('checkpoint_timeout')"
        ).fetchone()
    return (
        f"PostgreSQL {version.split()[0]} (shared_buffers {buffers}, max_wal_size {wal}, checkpoint_timeout {timeout})"
    )


def report(
    targets: list[Target], *, lines: int, orders: int, memory_lines: int, data_set: tuple[int, int], server: str
) -> str:
    def row(label: str, render, goal: str = "") -> str:
        return f"| {label} | " + " | ".join(render(target) for target in targets) + f" | {goal} |"

    rate = {target.name: lines / target.full.seconds for target in targets}
    copy_rate = {target.name: target.copied.rows / target.copied.seconds for target in targets}
    sql_rate = {target.name: target.written.rows / target.written.seconds for target in targets}
    header = " | ".join(target.name for target in targets)
    rows = [
        f"| measurement | {header} | goal |",
        "| --- |" + " ---: |" * len(targets) + " --- |",
        row(
            "`import_purchases` with its defaults (2 writers, batches of 5,000 orders)",
            lambda t: f"{rate[t.name]:,.0f} lines/s ({orders / t.full.seconds:,.0f} orders/s), {t.full.seconds:.0f} s",
            f">= {GOAL_LINES_PER_SECOND:,} lines/s",
        ),
        row(
            "COPY of the same file into a plain table of the same columns",
            lambda t: f"{copy_rate[t.name]:,.0f} lines/s, {t.copied.seconds:.1f} s",
        ),
        row("COPY is faster by", lambda t: f"{copy_rate[t.name] / rate[t.name]:.0f}x", f"within {GOAL_COPY_RATIO}x"),
        row(
            "the import's writes in bare SQL from the file, on 2 connections",
            lambda t: f"{sql_rate[t.name]:,.0f} lines/s, {t.written.seconds:.1f} s",
        ),
        row("bare SQL is faster than the import by", lambda t: f"{sql_rate[t.name] / rate[t.name]:.2f}x"),
        row("COPY is faster than bare SQL by", lambda t: f"{copy_rate[t.name] / sql_rate[t.name]:.0f}x"),
        row(
            "the import process: CPU time, peak RSS",
            lambda t: f"{t.full.cpu_seconds:.0f} s, {t.full.rss_mb:.0f} MB",
            "flat in the file's size",
        ),
        row(
            f"{memory_lines:,} other lines under tracemalloc: Python peak, peak RSS",
            lambda t: f"{t.memory.python_peak_mb:.1f} MB, {t.memory.rss_mb:.0f} MB",
        ),
        row(
            "machine load (1-minute average) at the import's start / end",
            lambda t: f"{t.full.load[0]:.1f} / {t.full.load[1]:.1f}",
            "2 cores",
        ),
    ]
    intro = (
        "## CSV imports\n\n"
        f"Measured by `bench/imports.py`: `manage.py import_purchases` of {lines:,} CSV lines ({orders:,} new "
        f"orders of {LINES_PER_ORDER} item lines each, for customers drawn at random from the data set's, with "
        "refunds and cancellations), with stats, points, tiers, cart conversion and attribution, into the "
        f"data set of bench/generate.py ({data_set[0]:,} customers, about {data_set[1]:,} purchases) and into "
        "an empty database (where every customer is new and gets its welcome bonus), next to PostgreSQL's "
        "COPY of the same file in the same run (whose rate tells the machine's speed), and the import's own "
        "writes done by PostgreSQL alone from that COPY (the purchases, their items, an earn entry each, "
        "the buyers' stats and balances, the new customers with their welcome entry, and the foreign-key "
        "checks; no validation, carts, tiers or attribution; rolled back), on a 2-core machine, "
        f"with {server}. "
        f"Results: {'; '.join(f'{t.name}: {t.full.summary}' for t in targets)}. Where the time goes, and "
        "what would raise the rate: [IMPORT.md](IMPORT.md#batches-and-speed)."
    )
    heading, text = intro.split("\n\n", 1)
    return (
        heading
        + "\n\n"
        + textwrap.fill(text, width=100, break_on_hyphens=False, break_long_words=False)
        + "\n\n"
        + "\n".join(rows)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=LINES, help=f"CSV lines to import (default {LINES:,})")
    parser.add_argument(
        "--memory-lines", type=int, default=MEMORY_LINES, help=f"lines of the traced run (default {MEMORY_LINES:,})"
    )
    parser.add_argument(
        "--empty-database-url",
        default=os.environ.get("BENCH_EMPTY_DATABASE_URL", ""),
        help="a migrated database without customers (default: BENCH_EMPTY_DATABASE_URL)",
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no-write", action="store_true", help="print the table, leave docs/PERFORMANCE.md alone")
    parser.add_argument("--child", metavar="FILE", help=argparse.SUPPRESS)
    parser.add_argument("--traced", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args.child, traced=args.traced)
    loaded_url = os.environ.get("DATABASE_URL", "")
    if not loaded_url or not args.empty_database_url:
        parser.error("set DATABASE_URL (the data set) and --empty-database-url or BENCH_EMPTY_DATABASE_URL")
    customers, purchases = data_set_size(loaded_url)
    if not customers:
        raise SystemExit("DATABASE_URL holds no bench customers: load it with bench/generate.py first")
    empty_check(args.empty_database_url)

    run = f"bench-imp-{time.time():.0f}"
    with tempfile.TemporaryDirectory(prefix="bench-imports-") as directory:
        full_file, memory_file = Path(directory) / "orders.csv", Path(directory) / "more-orders.csv"
        orders = csv_write(full_file, lines=args.lines, customers=customers, prefix=f"{run}-o", seed=args.seed)
        csv_write(memory_file, lines=args.memory_lines, customers=customers, prefix=f"{run}-m", seed=args.seed + 1)
        size = full_file.stat().st_size / 2**20
        print(f"{args.lines:,} lines ({orders:,} orders, {size:.0f} MB) for {customers:,} customers", flush=True)
        targets = [measure("into the data set", loaded_url, full_file, memory_file, new_customers=False)]
        try:
            targets.append(
                measure("into an empty database", args.empty_database_url, full_file, memory_file, new_customers=True)
            )
        finally:
            empty_again(args.empty_database_url)
    text = report(
        targets,
        lines=args.lines,
        orders=orders,
        memory_lines=args.memory_lines,
        data_set=(customers, purchases),
        server=server_settings(loaded_url),
    )
    print(text)
    if not args.no_write:
        performance_section_write("imports", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
