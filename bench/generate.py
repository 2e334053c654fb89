"""Load a benchmark-sized data set into PostgreSQL with COPY: 1M customers and 10M purchases by default.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/retention_crm_bench python bench/generate.py --drop

Also loads email/SMS consents (with their history) and open carts, which the campaign triggers read.
Rows are generated in Python as COPY text and streamed while the next rows are built. The loaded
tables lose their secondary indexes and foreign keys during the load and get them back (same names,
same definitions, read from the catalogue) before commit: building an index once is much faster
than maintaining it row by row, and re-adding a foreign key checks every row in one join instead of
queueing one deferred trigger per row (PostgreSQL manual, "Populating a Database").
Everything up to the rebuilt indexes is one transaction: a failed load leaves the database as it was.
"""

import argparse
import base64
import datetime as dt
import hashlib
import os
import random
import sys
import time
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import psycopg
from psycopg import sql
from psycopg.copy import QueuedLibpqWriter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from metrics.cohort_rollup_sql import rebuild_sql as cohort_rebuild_sql  # plain SQL text, no Django
from metrics.rollup_sql import ROLLUP_TABLES, rebuild_sql, singles_rebuild_sql, totals_rebuild_sql
from metrics.rollup_triggers_sql import ROLLUP_TRIGGERS

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

CUSTOMER = "customers_customer"
CONSENT = "customers_consent"
CONSENT_EVENT = "customers_consentevent"
PURCHASE = "customers_purchase"
CART = "customers_cart"
CART_ITEM = "customers_cartitem"
LOADED_TABLES = (CUSTOMER, CONSENT, CONSENT_EVENT, PURCHASE, CART, CART_ITEM)

COPY_CHUNK_ROWS = 20_000  # rows joined into one write to the COPY stream
SECONDS_PER_DAY = 86_400
NEVER_BOUGHT_RATE = 0.20  # signed up, never ordered
ONE_TIMER_RATE = 0.35  # of the buyers
LAPSED_RATE = 0.25  # of the buyers: stopped buying at some point before now
PARETO_ALPHA = 1.3  # purchase rate of repeat buyers: a few buy very often
PARETO_CAP = 50.0  # ... but no one orders several times a day for two years
REFUND_RATE = 0.03
CANCEL_RATE = 0.015
ORDER_VALUE_MU, ORDER_VALUE_SIGMA = 3.9, 0.6  # lognormal order value, median about 49
EMAIL_CONSENT_RATE = 0.80
SMS_CONSENT_RATE = 0.35  # of those with a phone number
PHONE_RATE = 0.60
BIRTH_DATE_RATE = 0.75
OTHER_TIMEZONE_RATE = 0.15
OPEN_CART_RATE = 0.05
OPEN_CART_MAX_DAYS = 7
OTHER_TIMEZONES = ("Europe/Berlin", "Europe/London", "America/New_York", "Asia/Tokyo", "Australia/Sydney")
FIRST_NAMES = ("Anna", "Ben", "Clara", "David", "Elif", "Felix", "Grace", "Hugo", "Ida", "Jun", "Kira", "Leo")
LAST_NAMES = ("Adams", "Becker", "Costa", "Dubois", "Evans", "Garcia", "Hansen", "Ito", "Novak", "Rossi", "Weber")
CART_PRODUCTS = (
    ("COF-001", "House blend beans 1 kg", "coffee", "24.90"),
    ("TEA-002", "Sencha green tea 100 g", "tea", "12.40"),
    ("PET-001", "Dry dog food 12 kg", "pet", "54.99"),
    ("SKN-001", "Daily moisturiser 50 ml", "skincare", "19.95"),
    ("APP-003", "Hoodie", "apparel", "59.00"),
)
NULL = "\\N"


@dataclass
class Phase:
    name: str
    rows: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Report:
    phases: list[Phase] = field(default_factory=list)

    def time(self, name: str, started: float, rows: int = 0) -> None:
        self.phases.append(Phase(name, rows, time.monotonic() - started))

    @property
    def seconds(self) -> float:
        return sum(phase.seconds for phase in self.phases)

    def render(self) -> str:
        lines = [f"{'phase':<34}{'rows':>12}{'seconds':>10}{'rows/s':>12}"]
        for p in self.phases:
            rate = f"{p.rows_per_second:,.0f}" if p.rows else ""
            lines.append(f"{p.name:<34}{p.rows:>12,}{p.seconds:>10.1f}{rate:>12}")
        lines.append(f"{'total':<34}{sum(p.rows for p in self.phases):>12,}{self.seconds:>10.1f}")
        return "\n".join(lines)


class Clock:
    """COPY text for instants given as whole seconds since the start of the history (UTC midnight).

    Formatting a datetime per row would dominate the run; a day prefix plus a time-of-day suffix
    from two small tables is a string concatenation.
    """

    def __init__(self, start: dt.datetime, days: int) -> None:
        self.start = start
        self.days = [f"{(start + dt.timedelta(days=d)).date().isoformat()} " for d in range(days + 1)]
        self.times = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}+00" for s in range(SECONDS_PER_DAY)]

    def text(self, second: int) -> str:
        return self.days[second // SECONDS_PER_DAY] + self.times[second % SECONDS_PER_DAY]


@dataclass
class _SavedIndexes:
    """What a table had before the load: plain indexes, then unique and foreign-key constraints."""

    table: str
    indexes: list[str]
    constraints: list[tuple[str, str]]  # (name, definition)


def _drop_secondary_indexes(cur: psycopg.Cursor, table: str) -> _SavedIndexes:
    cur.execute(
        """
        SELECT pg_get_indexdef(i.indexrelid), i.indexrelid::regclass::text
        FROM pg_index i
        WHERE i.indrelid = %s::regclass
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
        """,
        [table],
    )
    indexes = cur.fetchall()
    cur.execute(
        """
        SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
        WHERE conrelid = %s::regclass AND contype IN ('u', 'f')
        ORDER BY contype, conname  -- foreign keys ('f') go first
        """,
        [table],
    )
    constraints = cur.fetchall()
    for name, _ in constraints:
        cur.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(sql.Identifier(table), sql.Identifier(name)))
    for _, name in indexes:
        cur.execute(sql.SQL("DROP INDEX {}").format(sql.SQL(name)))  # regclass text is already quoted
    return _SavedIndexes(table, [definition for definition, _ in indexes], constraints)


def _restore_indexes(cur: psycopg.Cursor, saved: list[_SavedIndexes]) -> None:
    for table in saved:
        for definition in table.indexes:
            cur.execute(definition)
        for name, definition in table.constraints:
            if not definition.startswith("FOREIGN KEY"):
                cur.execute(_add_constraint(table.table, name, definition))
    for table in saved:  # foreign keys last: they may need another table's unique index
        for name, definition in table.constraints:
            if definition.startswith("FOREIGN KEY"):
                cur.execute(_add_constraint(table.table, name, definition))


def _add_constraint(table: str, name: str, definition: str) -> sql.Composed:
    return sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
        sql.Identifier(table), sql.Identifier(name), sql.SQL(definition)
    )


def _copy(cur: psycopg.Cursor, table: str, columns: tuple[str, ...], lines: Iterable[str]) -> int:
    """Stream text-format rows (tab-separated, newline-terminated) into ``table``; returns the count."""
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    count = 0
    # The queued writer sends on a thread, so PostgreSQL ingests while Python builds the next chunk.
    with cur.copy(statement, writer=QueuedLibpqWriter(cur)) as copy:
        chunk: list[str] = []
        for line in lines:
            chunk.append(line)
            if len(chunk) >= COPY_CHUNK_ROWS:
                copy.write("".join(chunk))
                count += len(chunk)
                chunk.clear()
        if chunk:
            copy.write("".join(chunk))
            count += len(chunk)
    return count


class Generator:
    """All rows of one load, drawn from one seeded generator so a seed gives the same data."""

    def __init__(
        self,
        *,
        customers: int,
        purchases: int,
        seed: int,
        years: int,
        now: dt.datetime,
        currency: str,
        store_timezone: str,
    ) -> None:
        self.rng = random.Random(seed)
        self.customers = customers
        self.purchases = purchases
        self.currency = currency
        self.store_timezone = store_timezone
        now = now.astimezone(dt.UTC).replace(microsecond=0)
        self.now = now
        start = (now - dt.timedelta(days=365 * years)).replace(hour=0, minute=0, second=0)
        self.clock = Clock(start, (now - start).days + 1)
        self.now_second = int((now - start).total_seconds())
        self.signup: array[int] = array("q")  # seconds since the start, by customer position
        self.last_purchase: array[int] = array("q")  # latest purchase of any status, -1 if none

    # --- customers, consents ------------------------------------------------------------------

    def customer_lines(self) -> Iterator[str]:
        rng, clock, store_tz = self.rng, self.clock, self.store_timezone
        signups = sorted(rng.randrange(self.now_second) for _ in range(self.customers))
        self.signup = array("q", signups)
        for position, second in enumerate(signups):
            number = position + 1
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            phone = f"+1555{number:07d}" if rng.random() < PHONE_RATE else ""
            birth = NULL
            if rng.random() < BIRTH_DATE_RATE:
                birth = (dt.date(rng.randint(1955, 2006), 1, 1) + dt.timedelta(days=rng.randrange(365))).isoformat()
            zone = rng.choice(OTHER_TIMEZONES) if rng.random() < OTHER_TIMEZONE_RATE else store_tz
            created = clock.text(second)
            yield (
                f"{number}\tbench-c-{number:08d}\tc{number}@example.com\t{phone}\t{first}\t{last}\t{birth}\t"
                f"{zone}\t[]\t{{}}\t{created}\t{created}\t0\t0.00\t0\tbronze\n"
            )

    def consent_lines(self) -> tuple[list[str], list[str]]:
        """Consent rows and their history (one 'granted' import event each), same ids for both."""
        rng, clock = self.rng, self.clock
        consents: list[str] = []
        events: list[str] = []
        for position, second in enumerate(self.signup):
            number = position + 1
            at = clock.text(second)
            channels = []
            if rng.random() < EMAIL_CONSENT_RATE:
                channels.append("email")
            if rng.random() < PHONE_RATE * SMS_CONSENT_RATE:
                channels.append("sms")
            for channel in channels:
                row_id = len(consents) + 1
                consents.append(f"{row_id}\t{channel}\tt\timport\t{at}\t{number}\n")
                events.append(f"{row_id}\t{channel}\tt\timport\t{at}\t{number}\n")
        return consents, events

    # --- purchases ----------------------------------------------------------------------------

    def _orders_per_customer(self) -> list[int]:
        """Skewed counts summing to exactly ``purchases``: never-buyers, many one-timers, a heavy tail."""
        rng, n = self.rng, self.customers
        counts = [0] * n
        buyers = [i for i in range(n) if rng.random() >= NEVER_BOUGHT_RATE][: self.purchases]
        for i in buyers:
            counts[i] = 1
        repeat = [i for i in buyers if rng.random() >= ONE_TIMER_RATE]
        extra = self.purchases - len(buyers)
        if not repeat:
            repeat = buyers
        # Rate times time since sign-up: long-standing customers have had longer to order.
        weights = [
            min(rng.paretovariate(PARETO_ALPHA), PARETO_CAP) * (self.now_second - self.signup[i] + 1) for i in repeat
        ]
        scale = extra / sum(weights) if weights else 0
        assigned = 0
        for i, weight in zip(repeat, weights, strict=True):
            share = int(weight * scale)
            counts[i] += share
            assigned += share
        for i in rng.sample(repeat, extra - assigned) if repeat else []:
            counts[i] += 1
        return counts

    def _order_keys(self, counts: list[int]) -> tuple[list[int], int]:
        """(second << bits | customer position) per order, sorted: the table fills in time order, as
        a shop's would, so ids and placed_at correlate like in production."""
        rng, now = self.rng, self.now_second
        bits = max(1, self.customers.bit_length())
        keys: list[int] = []
        append = keys.append
        for position, count in enumerate(counts):
            if not count:
                continue
            begin = self.signup[position]
            end = now
            if rng.random() < LAPSED_RATE:
                end = begin + int((now - begin) * rng.random())
            span = end - begin
            for _ in range(count):
                append((begin + int(span * rng.random())) << bits | position)
        keys.sort()
        return keys, bits

    def purchase_lines(self) -> Iterator[str]:
        rng, clock, now, currency = self.rng, self.clock, self.now_second, self.currency
        keys, bits = self._order_keys(self._orders_per_customer())
        mask = (1 << bits) - 1
        last = self.last_purchase = array("q", [-1]) * self.customers
        sha256, lognormal, random_ = hashlib.sha256, rng.lognormvariate, rng.random
        for number, key in enumerate(keys, start=1):
            second, position = key >> bits, key & mask
            last[position] = second
            external_id = f"bench-o-{number:09d}"
            roll = random_()
            changed = NULL
            if roll < REFUND_RATE + CANCEL_RATE:
                status = "refunded" if roll < REFUND_RATE else "cancelled"
                changed = clock.text(min(now, second + int(14 * SECONDS_PER_DAY * random_())))
            else:
                status = "completed"
            cents = int(lognormal(ORDER_VALUE_MU, ORDER_VALUE_SIGMA) * 100)
            placed = clock.text(second)
            digest = base64.urlsafe_b64encode(sha256(external_id.encode()).digest()[:16])[:22].decode()  # as the API's
            yield (
                f"{number}\t{external_id}\t{placed}\t{cents // 100}.{cents % 100:02d}\t{currency}\t{status}\t\t0\t"
                f"{digest}\t{placed}\t{changed}\t{position + 1}\n"
            )

    # --- carts ----------------------------------------------------------------------------------

    def cart_lines(self) -> tuple[list[str], list[str]]:
        """Open carts updated after the owner's last purchase (else a purchase would have converted them)."""
        rng, clock, now = self.rng, self.clock, self.now_second
        carts: list[str] = []
        items: list[str] = []
        for position in range(self.customers):
            if rng.random() >= OPEN_CART_RATE:
                continue
            earliest = max(self.signup[position], self.last_purchase[position] + 1, now - OPEN_CART_MAX_DAYS * 86_400)
            earliest = min(earliest, now)
            updated = earliest + int((now - earliest) * rng.random())
            cart_id = len(carts) + 1
            at = clock.text(updated)
            carts.append(f"{cart_id}\tbench-cart-{cart_id:08d}\topen\t{at}\t{at}\t{position + 1}\n")
            for sku, name, category, price in rng.sample(CART_PRODUCTS, rng.randint(1, 3)):
                items.append(f"{len(items) + 1}\t{sku}\t{name}\t{category}\t{rng.randint(1, 2)}\t{price}\t{cart_id}\n")
        return carts, items


CUSTOMER_COLUMNS = (
    "id",
    "external_id",
    "email",
    "phone",
    "first_name",
    "last_name",
    "birth_date",  # birth_month and birth_day are generated from it by the database
    "timezone",
    "tags",
    "attributes",
    "created_at",
    "updated_at",
    "orders_count",
    "total_spent",
    "points_balance",
    "tier",
)
CONSENT_COLUMNS = ("id", "channel", "granted", "source", "updated_at", "customer_id")
CONSENT_EVENT_COLUMNS = ("id", "channel", "granted", "source", "recorded_at", "customer_id")
PURCHASE_COLUMNS = (
    "id",
    "external_id",
    "placed_at",
    "total",
    "currency",
    "status",
    "cart_external_id",
    "points_redeemed",
    "content_digest",
    "created_at",
    "status_changed_at",
    "customer_id",
)
CART_COLUMNS = ("id", "external_id", "status", "created_at", "updated_at", "customer_id")
CART_ITEM_COLUMNS = ("id", "sku", "name", "category", "quantity", "unit_price", "cart_id")

# One statement for every customer's stats, the same figures customer_stats_refresh keeps.
# Stats, and each customer's tier as the nightly recompute would leave it (the trailing 365 days'
# spend against the program's thresholds), so the first new purchase does not have to fix it.
STATS_UPDATE = f"""
UPDATE {CUSTOMER} AS c
SET first_purchase_at = s.first_at, last_purchase_at = s.last_at, orders_count = s.orders, total_spent = s.spent,
    tier = COALESCE(
        (SELECT t.code FROM customers_loyaltytier t WHERE t.threshold <= s.trailing ORDER BY t.threshold DESC LIMIT 1),
        c.tier
    )
FROM (
    SELECT customer_id, min(placed_at) AS first_at, max(placed_at) AS last_at, count(*) AS orders,
           sum(total) AS spent,
           coalesce(sum(total) FILTER (WHERE placed_at > %(now)s - interval '365 days' AND placed_at <= %(now)s), 0)
               AS trailing
    FROM {PURCHASE}
    WHERE status = 'completed'
    GROUP BY customer_id
) AS s
WHERE c.id = s.customer_id
"""


class LoadRefused(Exception):
    """The database already holds data and --drop was not given."""


def _prepare(cur: psycopg.Cursor, *, drop: bool) -> None:
    if drop:
        # CASCADE also empties what hangs off these tables (messages, points, purchase items).
        cur.execute(
            sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(
                sql.SQL(", ").join(map(sql.Identifier, LOADED_TABLES))
            )
        )
        return
    for table in LOADED_TABLES:
        cur.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(table)))
        if cur.fetchone()[0]:
            raise LoadRefused(f"{table} is not empty; pass --drop to truncate the loaded tables first.")


def _rollup_triggers_set(cur: psycopg.Cursor, *, enabled: bool) -> bool:
    """Turn the metrics rollup triggers on or off (a database migrated without them: no-op)."""
    cur.execute("SELECT tgname FROM pg_trigger WHERE tgname = ANY(%s)", [list(ROLLUP_TRIGGERS)])
    names = [name for (name,) in cur.fetchall()]
    for name in names:
        action = "ENABLE" if enabled else "DISABLE"
        statement = sql.SQL("ALTER TABLE {} " + action + " TRIGGER {}")
        cur.execute(statement.format(sql.Identifier(PURCHASE), sql.Identifier(name)))
    return bool(names)


def _rollups_rebuild(cur: psycopg.Cursor, store_timezone: str) -> int:
    """The rollups from the loaded purchases, as ``manage.py metrics_rollups_rebuild`` computes them."""
    for table in ROLLUP_TABLES:
        cur.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(table)))
    cur.execute(rebuild_sql(), {"zone": store_timezone})
    pairs = cur.rowcount
    for rebuild in (totals_rebuild_sql(), singles_rebuild_sql(), cohort_rebuild_sql()):
        cur.execute(rebuild, {"zone": store_timezone})
    cur.execute(
        "INSERT INTO metrics_rollupstate (id, time_zone, built_at) VALUES (1, %s, now())"
        " ON CONFLICT (id) DO UPDATE SET time_zone = EXCLUDED.time_zone, built_at = EXCLUDED.built_at",
        [store_timezone],
    )
    return pairs


def bench_load(
    conn: psycopg.Connection,
    *,
    customers: int,
    purchases: int,
    seed: int = 42,
    years: int = 2,
    drop: bool = False,
    currency: str = "USD",
    store_timezone: str = "UTC",
    now: dt.datetime | None = None,
    out: TextIO = sys.stdout,
) -> Report:
    """Load the data set through ``conn`` (a psycopg 3 connection); returns the per-phase timings."""
    report = Report()
    gen = Generator(
        customers=customers,
        purchases=purchases,
        seed=seed,
        years=years,
        now=now or dt.datetime.now(dt.UTC),
        currency=currency,
        store_timezone=store_timezone,
    )

    def step(name: str) -> None:
        print(f"... {name}", file=out, flush=True)

    with conn.transaction(), conn.cursor() as cur:
        started = time.monotonic()
        _prepare(cur, drop=drop)
        cur.execute("SET LOCAL maintenance_work_mem = '1GB'")
        saved = [_drop_secondary_indexes(cur, table) for table in LOADED_TABLES]
        report.time("prepare (truncate, drop indexes)", started)

        step("customers")
        started = time.monotonic()
        report.time("customers", started, _copy(cur, CUSTOMER, CUSTOMER_COLUMNS, gen.customer_lines()))

        step("consents")
        started = time.monotonic()
        consents, events = gen.consent_lines()
        rows = _copy(cur, CONSENT, CONSENT_COLUMNS, consents) + _copy(cur, CONSENT_EVENT, CONSENT_EVENT_COLUMNS, events)
        report.time("consents and history", started, rows)
        del consents, events

        step("purchases")
        started = time.monotonic()
        rollup_triggers = _rollup_triggers_set(cur, enabled=False)  # rebuilt once below
        report.time("purchases", started, _copy(cur, PURCHASE, PURCHASE_COLUMNS, gen.purchase_lines()))

        step("carts")
        started = time.monotonic()
        carts, items = gen.cart_lines()
        rows = _copy(cur, CART, CART_COLUMNS, carts) + _copy(cur, CART_ITEM, CART_ITEM_COLUMNS, items)
        report.time("open carts and items", started, rows)

        step("customer stats")
        started = time.monotonic()
        for table in LOADED_TABLES:
            # Explicit ids were loaded; move each identity past them for the rows the app adds later.
            cur.execute(
                sql.SQL(
                    "SELECT setval(pg_get_serial_sequence({}, 'id'), coalesce(max(id), 0) + 1, false) FROM {}"
                ).format(sql.Literal(table), sql.Identifier(table))
            )
        cur.execute(f"ANALYZE {CUSTOMER}, {PURCHASE}")
        cur.execute(STATS_UPDATE, {"now": gen.now})
        report.time("customer stats (one UPDATE)", started, cur.rowcount)

        step("indexes and foreign keys")
        started = time.monotonic()
        _restore_indexes(cur, saved)
        report.time("indexes and foreign keys", started)

        if rollup_triggers:
            step("metrics rollups")
            started = time.monotonic()
            report.time("metrics rollups (one INSERT)", started, _rollups_rebuild(cur, store_timezone))
            _rollup_triggers_set(cur, enabled=True)

    step("vacuum analyze")
    started = time.monotonic()
    with conn.cursor() as cur:
        # VACUUM cannot run inside a transaction; a caller holding one gets ANALYZE alone.
        idle = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        command = "VACUUM (ANALYZE)" if conn.autocommit and idle else "ANALYZE"
        for table in LOADED_TABLES:
            cur.execute(sql.SQL(command + " {}").format(sql.Identifier(table)))
    report.time(command.lower(), started)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--purchases", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--years", type=int, default=2, help="length of the purchase history")
    parser.add_argument("--drop", action="store_true", help="truncate the loaded tables (and dependants) first")
    args = parser.parse_args(argv)
    if args.customers < 1 or args.purchases < 0 or args.years < 1:
        parser.error("--customers and --years must be at least 1, --purchases at least 0")

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "retention_crm.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    if settings.EMBEDDED_DATABASE:
        parser.error("set DATABASE_URL to the benchmark's PostgreSQL database (not the embedded demo's)")
    call_command("migrate", verbosity=0)
    connection.ensure_connection()
    started = time.monotonic()
    try:
        report = bench_load(
            connection.connection,
            customers=args.customers,
            purchases=args.purchases,
            seed=args.seed,
            years=args.years,
            drop=args.drop,
            currency=settings.STORE_CURRENCY,
            store_timezone=settings.TIME_ZONE,
        )
    except LoadRefused as refused:
        print(refused, file=sys.stderr)
        return 2
    print(report.render())
    print(f"loaded into {connection.settings_dict['NAME']} in {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
