"""Benchmark the metrics selectors on the 1M-customer / 10M-purchase data set (bench/README.md).

    pip install -r bench/requirements.txt            # lifetimes, for the comparison
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/retention_crm_bench .venv/bin/python bench/metrics.py

Each figure is timed through the project's selector and through a hand-written raw-SQL query
computing the same numbers, alternately, ``--repeat`` times; the table reports medians and the
ratio (selector / raw). The results of both are compared, so a fast wrong answer cannot pass.
The BG/NBD input (per-customer frequency, recency, T in days) is timed against the ``lifetimes``
package's ``summary_data_from_transaction_data`` on the same completed purchases, and the two
outputs are compared customer by customer.

The session is read-only (``SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY``): the bench
never writes to the benchmark database.
"""

import argparse
import datetime as dt
import io
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "retention_crm.settings")

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from metrics import rfm  # noqa: E402
from metrics.churn_risk import purchase_summary  # noqa: E402
from metrics.cohorts import cohort_matrix  # noqa: E402
from metrics.periods import DEFAULT_COHORT_MONTHS, add_months, shift_days, today_start  # noqa: E402
from metrics.retention import retention  # noqa: E402
from metrics.summary import summary  # noqa: E402

W = 90


@dataclass
class Row:
    figure: str
    ours: list[float]
    bound: list[float]
    bound_name: str = "raw SQL"

    @property
    def ratio(self) -> float:
        return statistics.median(self.ours) / statistics.median(self.bound)


def fetch(sql: str, params: dict[str, Any]) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


# --- The hand-written bounds: the fastest plain SQL we know for the same numbers -------------------

RAW_RETENTION = """
SELECT count(*) FILTER (WHERE s), count(*) FILTER (WHERE e), count(*) FILTER (WHERE s AND e),
       count(*) FILTER (WHERE s AND NOT e), count(*) FILTER (WHERE e AND NOT s)
FROM (SELECT customer_id, bool_or(placed_at < %(start)s) AS s, bool_or(placed_at >= %(end_from)s) AS e
      FROM customers_purchase
      WHERE status = 'completed' AND placed_at >= %(start_from)s AND placed_at < %(end)s
      GROUP BY customer_id) a
"""
RAW_NEW = "SELECT count(*) FROM customers_customer WHERE first_purchase_at >= %(start)s AND first_purchase_at < %(end)s"


def raw_retention(start: dt.datetime, end: dt.datetime) -> dict[str, int]:
    params = {"start": start, "end": end, "start_from": shift_days(start, -W), "end_from": shift_days(end, -W)}
    s, e, retained, lost, end_only = fetch(RAW_RETENTION, params)[0]
    (new,) = fetch(RAW_NEW, params)[0]  # W >= the period: every new customer is active at the end
    return {
        "customers_start": s,
        "customers_end": e,
        "new_customers": new,
        "retained": retained,
        "reactivated": end_only - new,
        "lost": lost,
    }


RAW_SUMMARY = [
    """SELECT count(*), count(*) FILTER (WHERE n >= 2), sum(n), sum(spent) FROM (
         SELECT customer_id, count(*) AS n, sum(total) AS spent FROM customers_purchase
         WHERE status = 'completed' AND placed_at >= %(start)s AND placed_at < %(end)s GROUP BY customer_id) p""",
    """SELECT count(DISTINCT customer_id) FROM customers_purchase
       WHERE status = 'completed' AND placed_at >= %(end_from)s AND placed_at < %(end)s""",
    """SELECT count(*), sum(total_spent) FROM customers_customer WHERE first_purchase_at < %(end)s""",
    """SELECT coalesce(sum(p.total), 0) FROM customers_purchase p JOIN customers_customer c ON c.id = p.customer_id
       WHERE p.status = 'completed' AND p.placed_at >= %(end)s AND c.first_purchase_at < %(end)s""",
    """SELECT count(*), count(*) FILTER (WHERE score >= 9), count(*) FILTER (WHERE score <= 6)
       FROM customers_npsresponse WHERE answered_at >= %(start)s AND answered_at < %(end)s""",
]


def raw_summary(start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    params = {"start": start, "end": end, "end_from": shift_days(end, -W)}
    period, active, clv, later, nps = (fetch(sql, params)[0] for sql in RAW_SUMMARY)
    return {
        "purchasing_customers": period[0],
        "repeat_customers": period[1],
        "orders": period[2],
        "revenue": period[3],
        "customers_end": active[0],
        "clv_customers": clv[0],
        "clv_spend": clv[1] - later[0],
        "nps_answers": nps[0],
    }


RAW_COHORT_SIZES = """
SELECT date_trunc('month', first_purchase_at AT TIME ZONE %(tz)s), count(*) FROM customers_customer
WHERE first_purchase_at >= %(start)s AND first_purchase_at < %(end)s GROUP BY 1
"""
RAW_COHORT_CELLS = """
SELECT date_trunc('month', c.first_purchase_at AT TIME ZONE %(tz)s) AS cohort,
       date_trunc('month', p.placed_at AT TIME ZONE %(tz)s) AS month, count(DISTINCT p.customer_id)
FROM customers_purchase p JOIN customers_customer c ON c.id = p.customer_id
WHERE p.status = 'completed' AND p.placed_at >= %(start)s AND p.placed_at < %(end)s
  AND c.first_purchase_at >= %(start)s AND c.first_purchase_at < %(end)s
GROUP BY 1, 2
"""


def raw_cohorts(start: dt.datetime, end: dt.datetime) -> tuple[dict, dict]:
    params = {"start": start, "end": end, "tz": settings.TIME_ZONE}
    sizes = {(m.year, m.month): n for m, n in fetch(RAW_COHORT_SIZES, params)}
    cells = {((c.year, c.month), (m.year, m.month)): n for c, m, n in fetch(RAW_COHORT_CELLS, params)}
    return sizes, cells


RAW_RFM = f"""
SELECT {rfm.segment_sql()} AS segment, count(*) FROM (
  SELECT NTILE(5) OVER (ORDER BY last_purchase_at, external_id) AS r,
         NTILE(5) OVER (ORDER BY orders_count, total_spent, external_id) AS f,
         NTILE(5) OVER (ORDER BY total_spent, orders_count, external_id) AS m
  FROM customers_customer WHERE first_purchase_at < %(as_of)s) s
GROUP BY 1
"""
RAW_RFM_HISTORY = f"""
SELECT {rfm.segment_sql()} AS segment, count(*) FROM (
  SELECT NTILE(5) OVER (ORDER BY p.last_at, c.external_id) AS r,
         NTILE(5) OVER (ORDER BY p.frequency, p.monetary, c.external_id) AS f,
         NTILE(5) OVER (ORDER BY p.monetary, p.frequency, c.external_id) AS m
  FROM (SELECT customer_id, max(placed_at) AS last_at, count(*) AS frequency, sum(total) AS monetary
        FROM customers_purchase WHERE status = 'completed' AND placed_at < %(as_of)s GROUP BY customer_id) p
  JOIN customers_customer c ON c.id = p.customer_id) s
GROUP BY 1
"""


def raw_rfm(as_of: dt.datetime, history: bool) -> dict[str, int]:
    return dict(fetch(RAW_RFM_HISTORY if history else RAW_RFM, {"as_of": as_of}))


RAW_BGNBD_SUMMARY = """
SELECT customer_id, count(*) - 1, max(day) - min(day), %(today)s::date - min(day) FROM (
  SELECT DISTINCT customer_id, (placed_at AT TIME ZONE %(tz)s)::date AS day FROM customers_purchase
  WHERE status = 'completed' AND placed_at < %(as_of)s) d
GROUP BY customer_id ORDER BY customer_id
"""


def raw_bgnbd_summary(as_of: dt.datetime) -> int:
    today = as_of.astimezone(timezone.get_default_timezone()).date()
    return len(fetch(RAW_BGNBD_SUMMARY, {"as_of": as_of, "tz": settings.TIME_ZONE, "today": today}))


# --- lifetimes ---------------------------------------------------------------------------------------


def load_transactions(as_of: dt.datetime):
    """Completed purchases as a DataFrame (customer_id, store-local naive placed_at), via COPY."""
    import pandas as pd

    buffer = io.BytesIO()
    query = (
        "COPY (SELECT customer_id, (placed_at AT TIME ZONE %s) FROM customers_purchase "
        "WHERE status = 'completed' AND placed_at < %s) TO STDOUT"
    )
    with connection.cursor() as cursor:
        raw = cursor.cursor  # psycopg 3: COPY needs the driver cursor
        with raw.copy(query, (settings.TIME_ZONE, as_of)) as copy:
            for block in copy:
                buffer.write(block)
    buffer.seek(0)
    frame = pd.read_csv(buffer, sep="\t", header=None, names=["customer_id", "placed_at"])
    frame["placed_at"] = pd.to_datetime(frame["placed_at"], format="ISO8601")
    return frame


def lifetimes_summary(frame, as_of: dt.datetime):
    from lifetimes.utils import summary_data_from_transaction_data

    today = as_of.astimezone(timezone.get_default_timezone()).date()
    return summary_data_from_transaction_data(
        frame, "customer_id", "placed_at", observation_period_end=today.isoformat(), freq="D"
    )


# --- The run -----------------------------------------------------------------------------------------


def timed(function: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = function()
    return time.perf_counter() - started, result


def compare(name: str, ours: Callable[[], Any], bound: Callable[[], Any], repeat: int, check: Callable) -> Row:
    row = Row(name, [], [])
    for _ in range(repeat):  # alternate, so drift in the machine's load hits both alike
        seconds, mine = timed(ours)
        row.ours.append(seconds)
        seconds, theirs = timed(bound)
        row.bound.append(seconds)
        check(mine, theirs)
    print(f"  {name}: ours {statistics.median(row.ours):.2f}s, raw {statistics.median(row.bound):.2f}s", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement (median reported)")
    parser.add_argument("--lifetimes-repeat", type=int, default=3)
    parser.add_argument("--skip-lifetimes", action="store_true")
    args = parser.parse_args()

    with connection.cursor() as cursor:
        cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        cursor.execute("SELECT count(*) FROM customers_customer")
        customers = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM customers_purchase")
        purchases = cursor.fetchone()[0]
    print(f"{customers:,} customers, {purchases:,} purchases; {args.repeat} runs each", flush=True)

    end = today_start()
    start = shift_days(end, -30)
    cohort_start = add_months(end - dt.timedelta(microseconds=1), -(DEFAULT_COHORT_MONTHS - 1))
    as_of = timezone.now()
    past = shift_days(end, -60)
    rows: list[Row] = []

    def same_retention(mine, theirs):
        assert {k: v for k, v in mine.as_dict().items() if k in theirs} == theirs, (mine, theirs)

    rows.append(
        compare(
            "retention, one 30-day period, W = 90",
            lambda: retention(start=start, end=end, window_days=W),
            lambda: raw_retention(start, end),
            args.repeat,
            same_retention,
        )
    )

    def same_summary(mine, theirs):
        assert (mine.purchasing_customers, mine.repeat_customers, mine.orders, mine.customers_end) == (
            theirs["purchasing_customers"],
            theirs["repeat_customers"],
            theirs["orders"],
            theirs["customers_end"],
        )
        assert (mine.clv_customers, mine.clv_spend, mine.nps.answers) == (
            theirs["clv_customers"],
            theirs["clv_spend"],
            theirs["nps_answers"],
        )

    rows.append(
        compare(
            "summary, one 30-day period",
            lambda: summary(start=start, end=end, window_days=W),
            lambda: raw_summary(start, end),
            args.repeat,
            same_summary,
        )
    )

    def same_cohorts(mine, theirs):
        sizes, cells = theirs
        assert {(c.month.year, c.month.month): c.size for c in mine} == sizes
        for cohort in mine:
            key = (cohort.month.year, cohort.month.month)
            later = [add_months(cohort_start, n) for n in range(DEFAULT_COHORT_MONTHS)]
            keys = [(m.year, m.month) for m in later if (m.year, m.month) >= key]
            assert cohort.active == [cells.get((key, k), 0) for k in keys][: len(cohort.active)]

    rows.append(
        compare(
            f"cohort matrix, {DEFAULT_COHORT_MONTHS} months",
            lambda: cohort_matrix(start=cohort_start, end=end),
            lambda: raw_cohorts(cohort_start, end),
            args.repeat,
            same_cohorts,
        )
    )

    def same_segments(mine, theirs):
        assert {k: v for k, v in mine.items() if v} == theirs, (mine, theirs)

    rows.append(
        compare(
            "RFM segment counts, as of now (customer stats)",
            lambda: rfm.segment_counts(as_of=as_of),
            lambda: raw_rfm(as_of, history=False),
            args.repeat,
            same_segments,
        )
    )
    rows.append(
        compare(
            "RFM segment counts, as of 60 days ago (history)",
            lambda: rfm.segment_counts(as_of=past),
            lambda: raw_rfm(past, history=True),
            args.repeat,
            same_segments,
        )
    )
    rows.append(
        compare(
            "RFM one page of 50 scores",
            lambda: rfm.scored_page(as_of=as_of, offset=1000, limit=50),
            lambda: raw_rfm(as_of, history=False),
            args.repeat,
            lambda mine, theirs: None,
        )
    )
    rows[-1].bound_name = "raw SQL (segment counts)"

    def same_count(mine, theirs):
        assert len(mine.customer_id) == theirs

    rows.append(
        compare(
            "BG/NBD summary rows (frequency, recency, T)",
            lambda: purchase_summary(as_of=as_of),
            lambda: raw_bgnbd_summary(as_of),
            args.repeat,
            same_count,
        )
    )

    lifetimes_rows: list[tuple[str, float, float]] = []
    if not args.skip_lifetimes:
        ours, load, function = [], [], []
        for _ in range(args.lifetimes_repeat):
            seconds, mine = timed(lambda: purchase_summary(as_of=as_of))
            ours.append(seconds)
            seconds, frame = timed(lambda: load_transactions(as_of))
            load.append(seconds)
            seconds, theirs = timed(lambda frame=frame: lifetimes_summary(frame, as_of))
            function.append(seconds)
            del frame
        theirs = theirs.loc[mine.customer_id]
        assert np.array_equal(theirs["frequency"].to_numpy(), mine.frequency), "frequency differs"
        assert np.array_equal(theirs["recency"].to_numpy(), mine.recency), "recency differs"
        assert np.array_equal(theirs["T"].to_numpy(), mine.T), "T differs"
        med = statistics.median
        print(
            f"  lifetimes: load {med(load):.2f}s, summary_data_from_transaction_data {med(function):.2f}s; "
            f"ours {med(ours):.2f}s; outputs identical for {len(mine.customer_id):,} customers",
            flush=True,
        )
        lifetimes_rows = [
            ("lifetimes summary_data_from_transaction_data only", med(ours), med(function)),
            ("lifetimes load from PostgreSQL + summary", med(ours), med(load) + med(function)),
        ]

    print()
    print("| figure | selector (median s) | bound (median s) | bound | ratio |")
    print("| --- | ---: | ---: | --- | ---: |")
    for row in rows:
        print(
            f"| {row.figure} | {statistics.median(row.ours):.2f} | {statistics.median(row.bound):.2f} | "
            f"{row.bound_name} | {row.ratio:.2f}x |"
        )
    for name, mine_s, theirs_s in lifetimes_rows:
        print(
            f"| BG/NBD summary rows vs {name} | {mine_s:.2f} | {theirs_s:.2f} | lifetimes 0.11.3 | "
            f"{mine_s / theirs_s:.2f}x |"
        )


if __name__ == "__main__":
    main()
