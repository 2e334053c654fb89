"""REST API benchmark: bulk ingest next to the raw COPY bound, and request latency at a fixed rate.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/retention_crm_api_bench \\
        python bench/api.py [--customers 200000] [--purchases 2000000] [--ingest 100000] [--rate 200]

1. Loads a base data set with bench/generate.py (so indexes have a realistic size).
2. Starts gunicorn with production settings on 127.0.0.1 and creates an API key.
3. Bulk ingest: ``--ingest`` new purchases (1-3 items each, new and known customers) in requests
   of 1,000 from two client threads; stats are kept current by the service, as in production.
4. The bound: the same purchases and items written with COPY into the same tables, in the same
   run, inside a transaction that is rolled back.
5. Latency: wrk, paced to ``--rate`` requests/s, on POST /api/v1/purchases (one new order each)
   and GET /api/v1/customers/{id} (a random loaded customer), p50 and p99.
"""

import argparse
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "retention_crm.settings")

from bench.report import performance_section_write  # noqa: E402

BULK_SIZE = 1_000
GUNICORN_WORKERS = int(os.environ.get("BENCH_GUNICORN_WORKERS", 4))
GUNICORN_THREADS = int(os.environ.get("BENCH_GUNICORN_THREADS", 1))
GUNICORN_CLASS = os.environ.get("BENCH_GUNICORN_CLASS", "sync")
CLIENT_THREADS = 2
WRK_CONNECTIONS = 16
# wrk paces each connection by a fixed pause after each answer. A short calibration run measures
# how long the rest of the cycle takes (the answer itself), and the pause is set so the
# connections together send the asked rate.
CALIBRATION_SECONDS = 5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_orders(count: int, known_customers: int, seed: int, run: str) -> list[dict]:
    """New orders: 60 % by customers already loaded, 40 % by new ones; 1-3 items each."""
    rng = random.Random(seed)
    orders = []
    for n in range(count):
        if rng.random() < 0.6:
            customer = f"bench-c-{rng.randrange(1, known_customers + 1):08d}"
        else:
            customer = f"api-{run}-c-{rng.randrange(count // 3 + 1):08d}"
        items = [
            {
                "sku": f"SKU-{rng.randrange(500):04d}",
                "quantity": rng.randint(1, 3),
                "unit_price": f"{rng.uniform(2, 80):.2f}",
            }
            for _ in range(rng.randint(1, 3))
        ]
        total = sum(Decimal(i["unit_price"]) * i["quantity"] for i in items)
        orders.append(
            {
                "external_id": f"api-{run}-o-{n:09d}",
                "customer": customer,
                "placed_at": f"2026-10-{1 + n % 28:02d}T{n % 24:02d}:{n % 60:02d}:00Z",
                "total": str(total),
                "items": items,
            }
        )
    return orders


def start_server(port: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "DEBUG": "false",
        "SECRET_KEY": "bench-" + "k" * 50,
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "API_RATE_LIMIT": "100000000/min",
        "LOG_LEVEL": "WARNING",
    }
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "retention_crm.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(GUNICORN_WORKERS),
            "--threads",
            str(GUNICORN_THREADS),
            "--worker-class",
            GUNICORN_CLASS,
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return server
        except urllib.error.HTTPError:
            return server  # it answers (/healthz may report no Celery worker: none runs here)
        except OSError:
            time.sleep(0.3)
    server.kill()
    raise SystemExit("gunicorn did not come up")


def ingest(port: int, key: str, orders: list[dict]) -> float:
    """Send the orders in bulk requests from CLIENT_THREADS threads; returns seconds."""
    bodies = [json.dumps({"purchases": orders[i : i + BULK_SIZE]}) for i in range(0, len(orders), BULK_SIZE)]
    queue = list(reversed(bodies))
    lock = threading.Lock()
    failures: list[str] = []

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        headers = {"Authorization": f"Api-Key {key}", "Content-Type": "application/json"}
        while True:
            with lock:
                if not queue:
                    return
                body = queue.pop()
            conn.request("POST", "/api/v1/purchases/bulk", body=body, headers=headers)
            response = conn.getresponse()
            payload = json.loads(response.read())
            bad = [r for r in payload.get("results", []) if r["status"] != "created"]
            if response.status != 200 or bad:
                failures.append(f"{response.status} {bad[:1] or payload}")

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(CLIENT_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise SystemExit(f"bulk ingest failed: {failures[:3]}")
    return elapsed


def copy_bound(orders: list[dict], seed_customer_id: int) -> float:
    """COPY the same purchases and items into the same tables; rolled back. Returns seconds."""
    from django.db import connection

    connection.ensure_connection()
    raw = connection.connection
    with raw.transaction(force_rollback=True), raw.cursor() as cur:
        started = time.perf_counter()
        with cur.copy(
            "COPY customers_purchase (external_id, customer_id, placed_at, total, currency, status,"
            " cart_external_id, points_redeemed, content_digest, created_at) FROM STDIN"
        ) as copy:
            for order in orders:
                copy.write_row(
                    (
                        "copy-" + order["external_id"],
                        seed_customer_id,
                        order["placed_at"],
                        order["total"],
                        "USD",
                        "completed",
                        "",
                        0,
                        "x",
                        "2026-11-01T00:00:00Z",
                    )
                )
        cur.execute("SELECT id, external_id FROM customers_purchase WHERE external_id LIKE 'copy-%%'")
        ids = dict((external_id, pk) for pk, external_id in cur.fetchall())
        with cur.copy(
            "COPY customers_purchaseitem (purchase_id, sku, name, category, quantity, unit_price) FROM STDIN"
        ) as copy:
            for order in orders:
                purchase_id = ids["copy-" + order["external_id"]]
                for item in order["items"]:
                    copy.write_row((purchase_id, item["sku"], "", "", item["quantity"], item["unit_price"]))
        return time.perf_counter() - started


WRK_POST = """
local counter = 0
local thread_id = 0
local delay_ms = %(delay)d
function setup(thread) thread_id = thread_id + 1; thread:set("tid", thread_id) end
function delay() return delay_ms end
request = function()
  counter = counter + 1
  local body = string.format('{"external_id":"wrk-%(run)s-%%d-%%d","customer":"bench-c-%%08d",' ..
    '"placed_at":"2026-11-01T10:00:00Z","total":"19.90","items":[{"sku":"SKU-1","quantity":1,"unit_price":"19.90"}]}',
    tid, counter, math.random(1, %(customers)d))
  return wrk.format("POST", "/api/v1/purchases", {["Authorization"]="Api-Key %(key)s",
    ["Content-Type"]="application/json"}, body)
end
"""

WRK_GET = """
local delay_ms = %(delay)d
function delay() return delay_ms end
request = function()
  local path = string.format("/api/v1/customers/bench-c-%%08d", math.random(1, %(customers)d))
  return wrk.format("GET", path, {["Authorization"]="Api-Key %(key)s"})
end
"""


def run_wrk(port: int, script: str, duration: int) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{WRK_CONNECTIONS}",
            f"-d{duration}s",
            "--latency",
            "-s",
            handle.name,
            f"http://127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(handle.name)

    def ms(label: str) -> float:
        value, unit = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rate": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": ms("50"),
        "p99": ms("99"),
        "errors": int(non_2xx.group(1)) if non_2xx else 0,
    }


def run_paced(port: int, script: str, params: dict, *, rate: int, duration: int) -> dict[str, float]:
    """Run ``script`` at about ``rate`` requests/s: calibrate the pause, then measure."""
    period_ms = WRK_CONNECTIONS * 1000 / rate  # each connection's cycle at the asked rate
    trial = run_wrk(port, script % {**params, "delay": int(period_ms), "run": f"{params['run']}c"}, CALIBRATION_SECONDS)
    answer_ms = max(0.0, WRK_CONNECTIONS * 1000 / trial["rate"] - int(period_ms))
    delay = max(0, round(period_ms - answer_ms))
    return run_wrk(port, script % {**params, "delay": delay}, duration)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--purchases", type=int, default=2_000_000)
    parser.add_argument("--ingest", type=int, default=100_000)
    parser.add_argument("--rate", type=int, default=200, help="requests/s for the latency runs")
    parser.add_argument("--duration", type=int, default=30, help="seconds per latency run")
    parser.add_argument("--skip-load", action="store_true", help="reuse the base data already loaded")
    parser.add_argument("--write-doc", action="store_true", help="put the table into docs/PERFORMANCE.md")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed for the latency runs: apt-get install wrk")

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from bench.generate import bench_load
    from retention_crm.api.keys import api_key_create

    if not args.skip_load:
        call_command("migrate", verbosity=0)
        connection.ensure_connection()
        bench_load(connection.connection, customers=args.customers, purchases=args.purchases, drop=True)
    # Each run writes under its own prefix: purchases are never deleted (the points ledger that
    # refers to them is append-only), so runs must not collide.
    run = f"{time.time():.0f}"
    with connection.cursor() as cur:
        cur.execute("SELECT min(id) FROM customers_customer")
        seed_customer_id = cur.fetchone()[0]
    _, key = api_key_create(name=f"bench {time.time():.0f}", scopes=["read", "write"])
    orders = build_orders(args.ingest, args.customers, seed=7, run=run)
    connection.close()

    port = free_port()
    server = start_server(port)
    try:
        ingest_seconds = ingest(port, key, orders)
        params = {"customers": args.customers, "key": key, "run": run}
        post = run_paced(port, WRK_POST, params, rate=args.rate, duration=args.duration)
        get = run_paced(port, WRK_GET, params, rate=args.rate, duration=args.duration)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    copy_seconds = copy_bound(orders, seed_customer_id)

    items = sum(len(o["items"]) for o in orders)
    api_rate = args.ingest / ingest_seconds
    copy_rate = args.ingest / copy_seconds
    post_rate, get_rate = f"{post['rate']:.0f}", f"{get['rate']:.0f}"
    rows = [
        (
            f"bulk ingest via `POST /api/v1/purchases/bulk` (1,000 per request, {items:,} items;"
            " stats, points and attribution included)",
            f"{api_rate:,.0f} purchases/s",
            f"raw COPY of the same rows: {copy_rate:,.0f} purchases/s; goal >= 5,000/s",
            f"COPY is {copy_rate / api_rate:.1f}x faster",
        ),
        (
            f"`POST /api/v1/purchases` paced at {args.rate} req/s (achieved {post_rate})",
            f"p50 {post['p50']:.1f} ms, p99 {post['p99']:.1f} ms",
            "p99 <= 50 ms",
            f"{post['errors']} non-2xx",
        ),
        (
            f"`GET /api/v1/customers/{{id}}` paced at {args.rate} req/s (achieved {get_rate})",
            f"p50 {get['p50']:.1f} ms, p99 {get['p99']:.1f} ms",
            "p99 <= 50 ms",
            f"{get['errors']} non-2xx",
        ),
    ]
    table = (
        "## REST API\n\n"
        f"Measured by `bench/api.py` on {args.customers:,} customers / {args.purchases:,} purchases already loaded,\n"
        f"gunicorn ({GUNICORN_WORKERS} {GUNICORN_CLASS} workers, as the Procfile runs it) and PostgreSQL"
        " on the same 2-core machine.\n\n"
        "| measurement | result | bound / goal | ratio |\n| --- | --- | --- | --- |\n"
        + "".join(f"| {' | '.join(row)} |\n" for row in rows)
    )
    print(table)
    if args.write_doc:
        performance_section_write("api", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
