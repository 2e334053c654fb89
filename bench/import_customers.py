"""``manage.py import_customers`` on 1,000,000 customers with email and SMS consents, next to
PostgreSQL's COPY of the same file into a plain table, in the same run (SPEC §7).

    createdb retention_crm_bench_customers
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/retention_crm_bench_customers \\
        python bench/import_customers.py --write-doc

Runs ``migrate`` itself. Refuses a database that holds customers unless ``--drop`` (which truncates
the customers and everything hanging off them). Each import runs as its own ``manage.py`` process,
as a shop would run it, so its peak memory is the process's own (``wait4``'s maxrss): a first
file of a tenth of the rows, then the full file (new customers), then the full file again (every
row unchanged). Peak memory staying the same from the small file to the large one shows it is
flat in the file's size.
"""

import argparse
import datetime as dt
import os
import random
import re
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.report import performance_section_write  # noqa: E402

SECTION = "import-customers"
HEADER = (
    "external_id,email,phone,first_name,last_name,birth_date,timezone,tags,attr.plan,"
    "consent.email,consent.email.at,consent.sms,created_at"
)
FIRST_NAMES = ("Anna", "Ben", "Clara", "David", "Elif", "Felix", "Grace", "Hugo", "Ida", "Jun", "Kira", "Leo")
LAST_NAMES = ("Adams", "Becker", "Costa", "Dubois", "Evans", "Garcia", "Hansen", "Ito", "Novak", "Rossi", "Weber")
TIMEZONES = ("", "", "", "", "Europe/Berlin", "Europe/London", "America/New_York", "Asia/Tokyo")
TAGS = ("", "", "vip", "newsletter", "vip|newsletter", "wholesale")
PLANS = ("", "basic", "plus", "gold")
PHONE_RATE = 0.60
BIRTH_DATE_RATE = 0.75
EMAIL_CONSENT_RATE = 0.80
SMS_CONSENT_RATE = 0.35
SIGN_UP_DAYS = 730  # sign-ups spread over two years; the last 30 days' get the welcome bonus
COPY_TABLE = "bench_customers_copy"
CUSTOMER_TABLES = ("customers_customer",)  # TRUNCATE ... CASCADE takes consents, history and points along


def csv_write(path: Path, *, rows: int, prefix: str, seed: int) -> None:
    """A shop's customer export: every row with an email and both consents, most with the rest."""
    rng = random.Random(seed)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    with path.open("w", encoding="utf-8", newline="") as stream:
        stream.write(HEADER + "\n")
        lines = []
        for n in range(1, rows + 1):
            external_id = f"{prefix}{n:08d}"
            signed_up = now - dt.timedelta(seconds=rng.randrange(SIGN_UP_DAYS * 86_400))
            consented = signed_up + dt.timedelta(minutes=rng.randrange(60))
            phone = f"+4915{rng.randrange(10**8, 10**9)}" if rng.random() < PHONE_RATE else ""
            birth = dt.date(1950, 1, 1) + dt.timedelta(days=rng.randrange(20_000))
            lines.append(
                ",".join(
                    (
                        external_id,
                        f"{external_id}@example.com",
                        phone,
                        rng.choice(FIRST_NAMES),
                        rng.choice(LAST_NAMES),
                        birth.isoformat() if rng.random() < BIRTH_DATE_RATE else "",
                        rng.choice(TIMEZONES),
                        rng.choice(TAGS),
                        rng.choice(PLANS),
                        "yes" if rng.random() < EMAIL_CONSENT_RATE else "no",
                        consented.isoformat(),
                        "yes" if phone and rng.random() < SMS_CONSENT_RATE else "no",
                        signed_up.isoformat(),
                    )
                )
            )
            if len(lines) == 10_000:
                stream.write("\n".join(lines) + "\n")
                lines = []
        if lines:
            stream.write("\n".join(lines) + "\n")


def copy_load(conn: psycopg.Connection, path: Path) -> float:
    """COPY of the file into a plain table of text columns (no index, no constraint): its seconds."""
    columns = ", ".join(f'"{name}" text' for name in HEADER.split(","))
    conn.execute(f"DROP TABLE IF EXISTS {COPY_TABLE}")
    conn.execute(f"CREATE TABLE {COPY_TABLE} ({columns})")
    started = time.perf_counter()
    copy_sql = f"COPY {COPY_TABLE} FROM STDIN WITH (FORMAT csv, HEADER true)"
    with conn.cursor() as cur, cur.copy(copy_sql) as copy, path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            copy.write(chunk)
    return time.perf_counter() - started


# The new customers' writes in plain SQL from the copied rows (an empty CSV cell is NULL there).
_SQL_CUSTOMERS = f"""
    INSERT INTO customers_customer
        (external_id, email, phone, first_name, last_name, birth_date, timezone, tags, attributes, created_at,
         updated_at, orders_count, total_spent, points_balance, tier)
    SELECT 'sql-' || external_id, email, COALESCE(phone, ''), first_name, last_name, birth_date::date,
           COALESCE(timezone, 'UTC'), COALESCE(to_jsonb(string_to_array(tags, '|')), '[]'::jsonb),
           CASE WHEN "attr.plan" IS NULL THEN '{{}}'::jsonb ELSE jsonb_build_object('plan', "attr.plan") END,
           created_at::timestamptz, now(), 0, 0, 0, 'bronze'
    FROM {COPY_TABLE}
"""
_SQL_CONSENTS = f"""
    WITH consents AS (
        INSERT INTO customers_consent (customer_id, channel, granted, source, updated_at)
        SELECT customer.id, given.channel, given.granted, 'import', given.at
        FROM {COPY_TABLE} AS copied
        JOIN customers_customer AS customer ON customer.external_id = 'sql-' || copied.external_id
        CROSS JOIN LATERAL (VALUES
            ('email', copied."consent.email" = 'yes', copied."consent.email.at"::timestamptz),
            ('sms', copied."consent.sms" = 'yes', now())
        ) AS given(channel, granted, at)
        RETURNING customer_id, channel, granted, source, updated_at
    )
    INSERT INTO customers_consentevent (customer_id, channel, granted, source, recorded_at)
    SELECT customer_id, channel, granted, source, updated_at FROM consents
"""


def sql_seconds(conn: psycopg.Connection) -> float:
    """The same writes as the new customers' import done by PostgreSQL alone, from the copied rows:
    no validation, no batches, no welcome bonus; one transaction, rolled back."""
    started = time.perf_counter()
    with conn.transaction(force_rollback=True):
        conn.execute(_SQL_CUSTOMERS)
        conn.execute(_SQL_CONSENTS)
        conn.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the foreign-key checks a commit would run
    return time.perf_counter() - started


@dataclass(frozen=True)
class Run:
    name: str
    rows: int
    seconds: float
    peak_mb: float
    summary: str

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds


def import_run(name: str, path: Path, rows: int, env: dict[str, str]) -> Run:
    """One ``manage.py import_customers`` process: its wall time, peak memory and summary line."""
    command = [sys.executable, "manage.py", "import_customers", str(path), "--no-progress"]
    with tempfile.TemporaryFile("w+") as out:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        output = out.read()
    summary = next((line for line in output.splitlines() if re.match(r"created \d+", line)), "")
    if process.returncode != 0 or not summary:
        raise SystemExit(f"{name}: import_customers failed ({process.returncode}):\n{output[-3000:]}")
    run = Run(name, rows, seconds, usage.ru_maxrss / 1024, summary)  # ru_maxrss is in KiB on Linux
    print(
        f"{name}: {rows:,} rows in {seconds:.1f} s, {run.rows_per_second:,.0f} rows/s, peak {run.peak_mb:.0f} MB; "
        f"{summary}",
        flush=True,
    )
    return run


def database_prepare(dsn: str, *, drop: bool) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        if drop:
            conn.execute(f"TRUNCATE {', '.join(CUSTOMER_TABLES)} RESTART IDENTITY CASCADE")
        elif conn.execute("SELECT EXISTS (SELECT 1 FROM customers_customer)").fetchone()[0]:
            raise SystemExit(
                "customers_customer is not empty; pass --drop to truncate it (and what hangs off it) first"
            )


def _paragraph(text: str) -> str:
    return textwrap.fill(" ".join(text.split()), width=100, break_on_hyphens=False)


def report(copy: float, sql: float, runs: list[Run], *, rows: int, shared_buffers: str) -> str:
    full = next(run for run in runs if run.name == "new customers")
    intro = f"""
        `bench/import_customers.py`: `manage.py import_customers` of {rows:,} customers (email, a phone
        for three in five, names, birth date, time zone, tags, one `attr.` column, email and SMS
        consents with their time, sign-up time) into an empty database, each run its own process with DEBUG off,
        next to PostgreSQL's `COPY` of the same file into a plain table of text columns, in the same
        run (PostgreSQL's shared_buffers: {shared_buffers})."""
    lines = [
        "## Importing customers",
        "",
        _paragraph(intro),
        "",
        "| run | rows | time | rows/s | peak memory | vs COPY |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        f"| `COPY` into a plain table | {rows:,} | {copy:.1f} s | {rows / copy:,.0f} | | 1x |",
        f"| the new customers' writes in plain SQL from the copied rows | {rows:,} | {sql:.1f} s | "
        f"{rows / sql:,.0f} | | {sql / copy:.0f}x |",
    ]
    for run in runs:
        lines.append(
            f"| {run.name} | {run.rows:,} | {run.seconds:.1f} s | {run.rows_per_second:,.0f} | {run.peak_mb:.0f} MB | "
            f"{run.seconds / (copy * run.rows / rows):.0f}x |"
        )
    outro = f"""
        The new customers' run writes {full.rows:,} customers, their {2 * full.rows:,} consents and as
        many consent history events, and the welcome bonus of those who signed up in the last 30 days.
        Peak memory (the process's maximum resident set) is the same for a tenth of the file and for
        all of it. The re-run finds every row unchanged and writes nothing, not even a row lock. Times
        include the process's start, the whole-file encoding check and the summary."""
    where = f"""
        The plain-SQL line is what PostgreSQL itself needs for those writes (one `INSERT ... SELECT`
        for the customers, one for their consents and history, the foreign-key checks; no
        validation, no batches, no welcome bonus; rolled back): the import takes
        {full.seconds / sql:.1f}x that. It is PostgreSQL maintaining what a customer is made of (9
        indexes on customers, 4 on consents, 3 on consent events, four foreign-key checks per row);
        a COPY into a table without index or
        constraint has none of that. Validation runs in Python in a reading thread while the
        previous batch is written; a batch of 5,000 rows is staged with COPY and every lookup is an
        index probe per row. The machine's other services share the two cores, so single runs vary
        (COPY's the most)."""
    lines += ["", _paragraph(outro), "", _paragraph(where)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--drop", action="store_true", help="truncate the customers (and what hangs off them) first")
    parser.add_argument("--write-doc", action="store_true", help="write the table into docs/PERFORMANCE.md")
    args = parser.parse_args()

    # As in production: DEBUG off (a placeholder key unless one is given).
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "retention_crm.settings", "LOG_LEVEL": "WARNING", "DEBUG": "false"}
    env.setdefault("SECRET_KEY", "bench-import-customers-not-a-secret")
    url = env.get("DATABASE_URL")
    if not url:
        raise SystemExit("set DATABASE_URL to the benchmark database (postgres://.../retention_crm_bench_customers)")
    dsn = re.sub(r"^postgres(ql)?://", "postgresql://", url)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=REPO_ROOT, env=env, check=True)
    database_prepare(dsn, drop=args.drop)

    small_rows = max(args.rows // 10, 1)
    with tempfile.TemporaryDirectory() as directory:
        small, full = Path(directory) / "customers-small.csv", Path(directory) / "customers.csv"
        csv_write(small, rows=small_rows, prefix="bench-s-", seed=args.seed + 1)
        csv_write(full, rows=args.rows, prefix="bench-c-", seed=args.seed)
        print(f"file: {args.rows:,} rows, {full.stat().st_size / 1e6:.0f} MB", flush=True)
        with psycopg.connect(dsn, autocommit=True) as conn:
            try:
                copy = copy_load(conn, full)
                print(f"COPY: {copy:.1f} s, {args.rows / copy:,.0f} rows/s", flush=True)
                runs = [
                    import_run("new customers, a tenth of the file", small, small_rows, env),
                    import_run("new customers", full, args.rows, env),
                    import_run("re-run, every row unchanged", full, args.rows, env),
                ]
                sql = sql_seconds(conn)
                print(f"plain SQL: {sql:.1f} s, {args.rows / sql:,.0f} rows/s", flush=True)
                buffers = conn.execute("SHOW shared_buffers").fetchone()[0]
            finally:
                conn.execute(f"DROP TABLE IF EXISTS {COPY_TABLE}")
    text = report(copy, sql, runs, rows=args.rows, shared_buffers=buffers)
    print("\n" + text)
    if args.write_doc:
        performance_section_write(SECTION, text)


if __name__ == "__main__":
    main()
