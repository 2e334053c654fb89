"""Benchmark the RFM segment flow between two dates a quarter apart (bench/README.md's data set).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/retention_crm_bench .venv/bin/python bench/flow.py

Two pairs of dates: the last quarter (as of 90 days ago -> now, the dashboard's default: the later
side reads the customer stats) and the quarter before it (both sides from the purchase history).
Each runs through ``metrics.rfm_flow.segment_flow`` and through the plain SQL that scores both
dates and groups the pairs, alternately, ``--repeat`` times; medians and the ratio. Both answers
are compared cell by cell, so a fast wrong answer cannot pass. Read-only: writes nothing.
"""

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "retention_crm.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from bench.report import performance_section_write  # noqa: E402
from metrics import rfm  # noqa: E402
from metrics.periods import shift_days  # noqa: E402
from metrics.rfm_flow import NONE, segment_flow  # noqa: E402

QUARTER_DAYS = 90

# Each side scored as the plain SQL would write it: from the customer stats when nothing was bought
# since (as RFM itself does), else the purchases aggregated per customer; NTILE; the segment grid.
STATS_SIDE = f"""
SELECT id, {rfm.segment_sql()} AS segment FROM (
  SELECT id, NTILE(5) OVER (ORDER BY last_purchase_at, external_id) AS r,
         NTILE(5) OVER (ORDER BY orders_count, total_spent, external_id) AS f,
         NTILE(5) OVER (ORDER BY total_spent, orders_count, external_id) AS m
  FROM customers_customer WHERE first_purchase_at < %({{at}})s) s
"""
HISTORY_SIDE = f"""
SELECT id, {rfm.segment_sql()} AS segment FROM (
  SELECT c.id, NTILE(5) OVER (ORDER BY p.last_at, c.external_id) AS r,
         NTILE(5) OVER (ORDER BY p.frequency, p.monetary, c.external_id) AS f,
         NTILE(5) OVER (ORDER BY p.monetary, p.frequency, c.external_id) AS m
  FROM (SELECT customer_id, max(placed_at) AS last_at, count(*) AS frequency, sum(total) AS monetary
        FROM customers_purchase WHERE status = 'completed' AND placed_at < %({{at}})s GROUP BY customer_id) p
  JOIN customers_customer c ON c.id = p.customer_id) s
"""
RAW_FLOW = """
SELECT COALESCE(a.segment, '{none}'), b.segment, count(*)
FROM ({end_side}) b LEFT JOIN ({start_side}) a ON a.id = b.id
GROUP BY 1, 2
"""


def raw_flow(start: dt.datetime, end: dt.datetime, *, end_from_stats: bool) -> dict[tuple[str, str], int]:
    end_side = (STATS_SIDE if end_from_stats else HISTORY_SIDE).replace("{at}", "end")
    sql = RAW_FLOW.format(none=NONE, end_side=end_side, start_side=HISTORY_SIDE.replace("{at}", "start"))
    with connection.cursor() as cursor:
        cursor.execute(sql, {"start": start, "end": end})
        return {(source, target): n for source, target, n in cursor.fetchall()}


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    began = time.perf_counter()
    result = call()
    return time.perf_counter() - began, result


def compare(start: dt.datetime, end: dt.datetime, *, end_from_stats: bool, repeat: int) -> tuple[float, float, int]:
    ours, bound = [], []
    for _ in range(repeat):
        seconds, flow = timed(lambda: segment_flow(start=start, end=end))
        ours.append(seconds)
        seconds, raw = timed(lambda: raw_flow(start, end, end_from_stats=end_from_stats))
        bound.append(seconds)
    cells = {(source, target): n for source, row in flow.flow.items() for target, n in row.items() if n}
    assert cells == raw, "the selector and the raw SQL disagree"
    print(f"  {start:%Y-%m-%d} -> {end:%Y-%m-%d %H:%M}: ours {ours}, bound {bound}", flush=True)
    return statistics.median(ours), statistics.median(bound), flow.customers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/PERFORMANCE.md alone")
    args = parser.parse_args()
    with connection.cursor() as cursor:
        cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        cursor.execute("SELECT count(*) FROM customers_customer")
        customers = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM customers_purchase")
        purchases = cursor.fetchone()[0]

    now = timezone.now().replace(microsecond=0)
    pairs = [
        ("last quarter: 90 days ago -> now (later side from the customer stats)", shift_days(now, -QUARTER_DAYS), now),
        (
            "the quarter before: 180 -> 90 days ago (both sides from the purchases)",
            shift_days(now, -2 * QUARTER_DAYS),
            shift_days(now, -QUARTER_DAYS),
        ),
    ]
    lines = []
    for name, start, end in pairs:
        from_stats = rfm.stats_serve(end)
        ours, bound, scored = compare(start, end, end_from_stats=from_stats, repeat=args.repeat)
        lines.append(f"| {name} | {scored:,} | {ours:.2f} | {bound:.2f} | {ours / bound:.2f}x |")

    text = "\n".join(
        [
            "## RFM segment flow",
            "",
            f"Measured by `bench/flow.py` on {customers:,} customers / {purchases:,} purchases, read-only:",
            "`metrics.rfm_flow.segment_flow` (what `GET /api/v1/metrics/rfm/flow` and the dashboard's flow",
            "chart run) against the plain SQL that scores both dates (NTILE over the customer stats or the",
            "per-customer purchase aggregates, the segment grid) and groups the pairs, alternately,",
            f"{args.repeat} times each, medians, in the same run. Both answers are compared cell by cell.",
            "The time is the two NTILE scorings (about one RFM count each, see the metrics section); the join",
            "and the grouping of the pairs add little. The machine is shared with other test runs, so single",
            "timings vary by up to 2x; the ratios are steadier.",
            "",
            "| dates | scored at `to` | selector (median s) | raw SQL bound (median s) | ratio (goal <= 1.5x) |",
            "| --- | ---: | ---: | ---: | ---: |",
            *lines,
        ]
    )
    print(text)
    if not args.no_write:
        performance_section_write("rfm-flow", text)


if __name__ == "__main__":
    main()
