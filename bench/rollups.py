"""What the metrics rollups cost the write path and save the reads, on the 1M / 10M data set.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/retention_crm_bench \\
        python bench/rollups.py [--purchases 20000] [--rounds 3] [--runs 7] [--no-write]

1. Write path: ``purchases_record_bulk`` (the set-based path behind ``POST /purchases/bulk`` and
   the import) records ``--purchases`` purchases of existing customers, placed within the last
   day, in batches of 1,000, once with the rollup triggers on and once with them off, rounds
   alternating; each round runs in a transaction that is rolled back, so the data set stays as
   generated. Purchases/s of the best round of each, and the cost of keeping the rollups. With the
   triggers on, each batch's pending changes are then folded (what the worker does after commit),
   timed apart: the write path's cost, and the cost of write path and fold together.
2. Reads: retention of the default period (the 30 days up to today's midnight, W = 90), from the
   day chain and from the purchases (the live selector), ``--runs`` each alternately; medians,
   and the two results compared.
3. Rebuild: ``metrics_rollups_rebuild`` from every purchase (rolled back too).
"""

import argparse
import datetime as dt
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "retention_crm.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")

import django  # noqa: E402

django.setup()

from django.db import connection, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from bench.report import performance_section_write  # noqa: E402
from customers.services.bulk import MAX_BULK_PURCHASES, purchases_record_bulk  # noqa: E402
from metrics.periods import DEFAULT_PERIOD_DAYS, shift_days, today_start  # noqa: E402
from metrics.retention import retention_from_rollups, retention_live  # noqa: E402
from metrics.rollup_fold import rollups_fold  # noqa: E402
from metrics.rollups import rollups_rebuild, rollups_triggers_disable, rollups_triggers_enable  # noqa: E402

WINDOW = 90
BATCH = MAX_BULK_PURCHASES


def customer_ids(count: int, rng: random.Random) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT external_id FROM customers_customer WHERE erased_at IS NULL ORDER BY random() LIMIT %s", [count]
        )
        names = [name for (name,) in cursor.fetchall()]
    rng.shuffle(names)
    return names


def purchases(count: int, names: list[str], round_no: int, rng: random.Random) -> list[list[dict]]:
    now = timezone.now()
    items = [
        {
            "external_id": f"bench-rollup-{round_no}-{n}",
            "customer": rng.choice(names),
            "placed_at": (now - dt.timedelta(minutes=rng.randrange(24 * 60))).isoformat(),
            "total": f"{rng.randrange(500, 20000) / 100:.2f}",
        }
        for n in range(count)
    ]
    return [items[i : i + BATCH] for i in range(0, len(items), BATCH)]


def ingest(batches: list[list[dict]], *, triggers: bool) -> tuple[float, float]:
    """Seconds to record the batches, and (triggers on) seconds the worker's fold of each batch's
    pending changes takes after it, timed apart; rolled back afterwards."""
    writing = folding = 0.0
    with transaction.atomic():
        with connection.cursor() as cursor:
            if not triggers:
                rollups_triggers_disable(cursor)
        for batch in batches:
            started = time.perf_counter()
            results = purchases_record_bulk(raw_purchases=batch)
            writing += time.perf_counter() - started
            assert all(result.status == "created" for result in results), results[:3]
            if triggers:
                started = time.perf_counter()
                assert rollups_fold() == len(batch)
                folding += time.perf_counter() - started
        transaction.set_rollback(True)
    return writing, folding


def bench_writes(count: int, rounds: int) -> dict[str, float]:
    rng = random.Random(7)
    names = customer_ids(50_000, rng)
    best = {"on": float("inf"), "off": float("inf"), "fold": float("inf")}
    for round_no in range(rounds):
        for mode in ("off", "on") if round_no % 2 else ("on", "off"):
            batches = purchases(count, names, round_no * 2 + (mode == "on"), rng)
            seconds, fold = ingest(batches, triggers=mode == "on")
            print(f"  ingest, triggers {mode}: {count / seconds:,.0f} purchases/s; fold {fold:.2f} s", flush=True)
            best[mode] = min(best[mode], seconds)
            if mode == "on":
                best["fold"] = min(best["fold"], fold)
    return best


def bench_reads(runs: int) -> dict:
    end = today_start()
    start = shift_days(end, -DEFAULT_PERIOD_DAYS)
    times: dict[str, list[float]] = {"fast": [], "live": []}
    results = {}
    for _ in range(runs):
        for name, read in (
            ("fast", lambda: retention_from_rollups(start=start, end=end, window_days=WINDOW)),
            ("live", lambda: retention_live(start=start, end=end, window_days=WINDOW)),
        ):
            started = time.perf_counter()
            results[name] = read()
            times[name].append(time.perf_counter() - started)
    assert results["fast"] == results["live"], results
    return {name: statistics.median(values) for name, values in times.items()} | {"table": results["fast"]}


def bench_rebuild() -> tuple[float, int]:
    with transaction.atomic():
        started = time.perf_counter()
        result = rollups_rebuild()
        seconds = time.perf_counter() - started
        transaction.set_rollback(True)
    return seconds, result.pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--purchases", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--no-write", action="store_true", help="print the table, leave docs/PERFORMANCE.md alone")
    parser.add_argument("--no-rebuild", action="store_true", help="skip the rebuild (about 20 minutes at 100M)")
    args = parser.parse_args()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM customers_customer")
        customers = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM customers_purchase")
        stored = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM metrics_daychain")
        pairs = cursor.fetchone()[0]

    print("reads ...", flush=True)
    reads = bench_reads(args.runs)
    print(reads, flush=True)
    print("writes ...", flush=True)
    writes = bench_writes(args.purchases, args.rounds)
    rebuild_seconds, rebuilt_pairs = None, None
    if not args.no_rebuild:
        print("rebuild ...", flush=True)
        rebuild_seconds, rebuilt_pairs = bench_rebuild()
    with connection.cursor() as cursor:  # the rolled-back rounds left their triggers as they were
        rollups_triggers_enable(cursor)

    on, off = args.purchases / writes["on"], args.purchases / writes["off"]
    fold_ms = writes["fold"] / args.purchases * 1000 * 1000
    table = reads["table"]
    lines = [
        "## Metrics rollups",
        "",
        f"Measured by `bench/rollups.py` on {customers:,} customers / {stored:,} purchases"
        f" ({pairs:,} day pairs in the chain), PostgreSQL and the benchmark on the same 2-core machine.",
        "",
        "| measurement | result | compared with | ratio |",
        "| --- | --- | --- | --- |",
        f"| retention of the default period (30 days to today's midnight, W = {WINDOW}; {table.customers_start:,}"
        f" active at start) from the day chain, median of {args.runs} | {reads['fast'] * 1000:,.1f} ms |"
        f" the live selector over the purchases: {reads['live'] * 1000:,.0f} ms |"
        f" {reads['live'] / reads['fast']:,.0f}x faster |",
        f"| bulk ingest with the rollup triggers ({args.purchases:,} purchases of existing customers, batches of"
        f" {BATCH:,}, best of {args.rounds}) | {on:,.0f} purchases/s | triggers off: {off:,.0f} purchases/s; goal:"
        f" at most 15 % slower | {(off / on - 1) * 100:+.1f} % time |",
        f"| the fold of each batch's pending changes (the worker's, after commit; best of {args.rounds}) |"
        f" {fold_ms:,.1f} ms per 1,000 purchases | off the write path; with the write path:"
        f" {args.purchases / (writes['on'] + writes['fold']):,.0f} purchases/s |"
        f" {((writes['on'] + writes['fold']) / writes['off'] - 1) * 100:+.1f} % time |",
    ]
    if rebuild_seconds is not None:
        lines.append(
            f"| `metrics_rollups_rebuild` from every purchase | {rebuild_seconds:,.1f} s | | {rebuilt_pairs:,} pairs |"
        )
    lines += [
        "",
        "The figures are equal: the bench compares the two retention tables field by field.",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        performance_section_write("rollups", text)


if __name__ == "__main__":
    main()
