"""Campaign benchmark: evaluation over 1M customers / 10M purchases next to the plain INSERT ... SELECT
bound, its memory at several audience sizes, and sending with one worker and the locmem backend.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/retention_crm_bench \\
        python bench/campaigns.py [--send 100000] [--rounds 2] [--no-write]

Needs the data set of bench/generate.py. Applies the campaigns migrations, then:

1. Evaluate: a reactivation campaign (inactive 90 days, 10 % control group, email) with
   ``campaign_evaluate`` — one INSERT ... SELECT with the consent and address checks, the control
   group hash, quiet hours per customer time zone and the frequency cap. The bound: the plain
   INSERT ... SELECT of the same rows into the same table (same indexes), with constants instead of
   the control group, quiet hours and cap. Rounds alternate; the best of each is kept. The
   evaluation is then run again on top of its own messages: the cost of the every-5-minutes re-run.
2. Memory: the same evaluation restricted by ``max_inactive_days`` to audiences of different sizes;
   the Python process's peak allocation (tracemalloc) and resident-set growth for each.
3. Send: ``--send`` due messages, one Celery worker (prefork, concurrency 1) on the ``sends`` queue,
   Django's locmem email backend; messages per second from the first claim to the last record.

Everything it creates (campaigns, messages) is deleted at the end; the contact policy is restored.
"""

import argparse
import datetime as dt
import gc
import os
import resource
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "retention_crm.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from bench.report import performance_section_write  # noqa: E402
from campaigns.models import Campaign, ContactPolicy, Message  # noqa: E402
from campaigns.services import campaign_create, campaign_evaluate  # noqa: E402
from campaigns.sql import epoch_us  # noqa: E402
from retention_crm.celery import app  # noqa: E402

BENCH_PREFIX = "bench campaign"
MEMORY_AUDIENCES = (95, 120, 200, None)  # max_inactive_days: small to all lapsed customers
SEND_BROKER_DEFAULT = "redis://127.0.0.1:6379/14"


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_campaign(name: str, **params: int) -> Campaign:
    return campaign_create(
        data={
            "name": f"{BENCH_PREFIX}: {name}",
            "trigger": "reactivation",
            "channel": "email",
            "status": "active",
            "subject": "We miss you, {{ customer.first_name }}",
            "body": "Hello {{ customer.first_name }}, come back: {{ unsubscribe_url }}",
            "params": {"inactive_days": 90, **params},
            "holdout_percent": 10,
        }
    )


def clear_messages(campaign: Campaign) -> None:
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM campaigns_message WHERE campaign_id = %s", [campaign.pk])
    vacuum()


def vacuum() -> None:
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) campaigns_message")


def bound(campaign: Campaign, now: dt.datetime) -> tuple[float, int]:
    """The plain INSERT ... SELECT of the same eligible rows: no control group, quiet hours or cap."""
    sql = f"""
        INSERT INTO campaigns_message (uuid, campaign_id, customer_id, channel, dedupe_key, step_key, variant_key,
            status, reason, data, created_at, scheduled_at, send_at, attempts, error, provider_message_id)
        SELECT gen_random_uuid(), %s, c.id, 'email', 'c:' || c.id || ':last:' || {epoch_us("c.last_purchase_at")},
               'message', '', 'queued', '', '{{}}'::jsonb, %s, %s, %s, 0, '', ''
        FROM customers_customer c
        WHERE c.last_purchase_at <= %s AND c.erased_at IS NULL AND c.email <> ''
          AND EXISTS (SELECT 1 FROM customers_consent k WHERE k.customer_id = c.id AND k.channel = 'email'
                      AND k.granted)
        ON CONFLICT (campaign_id, dedupe_key) DO NOTHING
    """
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(sql, [campaign.pk, now, now, now, now - dt.timedelta(days=90)])
        rows = cursor.rowcount
    return time.perf_counter() - started, rows


def evaluate(campaign: Campaign, now: dt.datetime) -> tuple[float, int, float, float]:
    """Seconds, messages created, tracemalloc peak (MB) and RSS growth (MB) of one evaluation."""
    gc.collect()
    rss_before = rss_mb()
    tracemalloc.start()
    started = time.perf_counter()
    result = campaign_evaluate(campaign_id=campaign.pk, now=now)
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    created = result.queued + result.held_out + result.suppressed + result.deferred
    return seconds, created, peak / 2**20, rss_mb() - rss_before


def bench_evaluation(rounds: int) -> dict:
    now = timezone.now()
    bound_campaign, eval_campaign = make_campaign("bound"), make_campaign("evaluate")
    bound_runs, eval_runs = [], []
    for _ in range(rounds):
        bound_runs.append(bound(bound_campaign, now))
        clear_messages(bound_campaign)
        eval_runs.append(evaluate(eval_campaign, now))
        clear_messages(eval_campaign)
    # The steady state: evaluated again every 5 minutes on top of its own messages.
    evaluate(eval_campaign, now)
    vacuum()
    rerun = evaluate(eval_campaign, now + dt.timedelta(minutes=5))
    clear_messages(eval_campaign)
    best_bound, best_eval = min(bound_runs), min(eval_runs)
    assert best_bound[1] == best_eval[1], (best_bound, best_eval)  # the same rows either way
    return {"bound": best_bound, "evaluate": best_eval, "rerun": rerun, "rows": best_eval[1]}


def bench_memory() -> list[tuple[int | None, int, float, float, float]]:
    now = timezone.now()
    rows = []
    for max_days in MEMORY_AUDIENCES:
        campaign = make_campaign(f"memory {max_days}", **({"max_inactive_days": max_days} if max_days else {}))
        seconds, created, peak, rss = evaluate(campaign, now)
        rows.append((max_days, created, seconds, peak, rss))
        clear_messages(campaign)
    return rows


def start_worker(broker: str, log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "CELERY_BROKER_URL": broker,
        "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
        "LOG_LEVEL": "WARNING",
    }
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "retention_crm",
            "worker",
            "-Q",
            "sends",
            "-c",
            "1",
            "--pool",
            "prefork",
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "INFO",
            "-n",
            "bench@%h",
        ],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "ready." not in log.read_text():
        if worker.poll() is not None:
            raise SystemExit(log.read_text())
        time.sleep(0.2)
    return worker


def bench_send(count: int, broker: str) -> dict:
    from campaigns.tasks import send_batch

    campaign = make_campaign("send")
    # About ``count`` lapsed customers: those whose last purchase is 90 days ago or a little more.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.last_purchase_at FROM customers_customer c WHERE c.last_purchase_at <= %s"
            " ORDER BY c.last_purchase_at DESC LIMIT 1 OFFSET %s",
            [timezone.now() - dt.timedelta(days=90), count * 10 // 8],  # about 80 % hold email consent
        )
        oldest = cursor.fetchone()[0]
    days = max(91, int((timezone.now() - oldest).total_seconds() // 86400))
    Campaign.objects.filter(pk=campaign.pk).update(
        params={"inactive_days": 90, "max_inactive_days": days}, holdout_percent=0
    )
    campaign_evaluate(campaign_id=campaign.pk)
    queued = Message.objects.filter(campaign=campaign, status="queued").count()
    vacuum()
    with app.connection_for_write(broker) as conn:
        for queue in app.conf.task_queues:
            queue(conn.channel()).purge()
    log = Path(os.environ.get("TMPDIR", "/tmp")) / "bench-campaigns-worker.log"
    worker = start_worker(broker, log)
    try:
        started = time.perf_counter()
        with app.connection_for_write(broker) as conn:
            for _ in range(8):  # the evaluation's fan-out; each task re-enqueues itself while batches are full
                send_batch.apply_async((campaign.pk,), connection=conn)
        while Message.objects.filter(campaign=campaign, status__in=["queued", "sending"]).exists():
            time.sleep(0.5)
        wall = time.perf_counter() - started
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), min(claimed_at), max(sent_at) FROM campaigns_message"
            " WHERE campaign_id = %s AND status = 'sent'",
            [campaign.pk],
        )
        sent, first_claim, last_sent = cursor.fetchone()
    clear_messages(campaign)
    return {
        "queued": queued,
        "sent": sent,
        "wall": wall,
        "busy": (last_sent - first_claim).total_seconds(),
    }


def cleanup() -> None:
    campaigns = Campaign.objects.filter(name__startswith=BENCH_PREFIX)
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM campaigns_attribution WHERE campaign_id = ANY(%s)",
            [list(campaigns.values_list("pk", flat=True))],
        )
        cursor.execute(
            "DELETE FROM campaigns_message WHERE campaign_id = ANY(%s)", [list(campaigns.values_list("pk", flat=True))]
        )
    campaigns.delete()
    vacuum()


def report(evaluation: dict, memory: list, send: dict | None, customers: int, purchases: int) -> str:
    bound_s, eval_s = evaluation["bound"][0], evaluation["evaluate"][0]
    lines = [
        "## Campaigns",
        "",
        f"Measured by `bench/campaigns.py` on the {customers:,} customers / {purchases:,} purchases data set,",
        "PostgreSQL, Redis and the worker on the same 2-core machine.",
        "",
        "| measurement | result | bound / goal | ratio |",
        "| --- | --- | --- | --- |",
        f"| evaluate a reactivation campaign (90 days, 10 % control, email; {evaluation['rows']:,} messages) "
        f"| {eval_s:.1f} s | plain INSERT ... SELECT of the same rows: {bound_s:.1f} s; goal within 2x "
        f"| {eval_s / bound_s:.2f}x |",
        f"| the same campaign evaluated again 5 minutes later ({evaluation['rerun'][1]:,} new messages) "
        f"| {evaluation['rerun'][0]:.1f} s | | |",
        f"| peak Python memory of that evaluation | {evaluation['evaluate'][2]:.2f} MB | flat in customers | |",
    ]
    if send:
        rate = send["sent"] / send["busy"] if send["busy"] else 0
        lines.append(
            f"| send {send['sent']:,} emails, one worker (prefork, concurrency 1), locmem backend "
            f"| {rate:,.0f} messages/s ({send['sent'] / send['wall']:,.0f}/s wall clock incl. start) "
            f"| goal >= 1,000 messages/s | {rate / 1000:.1f}x the goal |"
        )
    lines += [
        "",
        "Memory of the evaluating process by audience size (`max_inactive_days`):",
        "",
        "| audience | messages | seconds | Python peak (tracemalloc) | RSS growth |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for max_days, created, seconds, peak, rss in memory:
        label = f"lapsed 90-{max_days} days" if max_days else "all lapsed 90+ days"
        lines.append(f"| {label} | {created:,} | {seconds:.1f} | {peak:.2f} MB | {rss:.1f} MB |")
    lines += [
        "",
        "The evaluation is one statement: the process holds four counts whatever the audience, and",
        "PostgreSQL's own memory per sort or hash is bounded by `work_mem` (larger ones spill to disk).",
        "A re-run skips existing dedupe keys with an anti-join on the unique index before computing",
        "anything, so the every-5-minutes evaluation of a large campaign costs a scan, not a rewrite.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--send", type=int, default=100_000, help="messages for the send benchmark; 0 skips it")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--broker", default=os.environ.get("CELERY_BROKER_URL", SEND_BROKER_DEFAULT))
    parser.add_argument("--no-write", action="store_true", help="print the table, leave docs/PERFORMANCE.md alone")
    args = parser.parse_args()
    if settings.EMBEDDED_DATABASE:
        raise SystemExit("Set DATABASE_URL to the benchmark's PostgreSQL database (not the embedded demo's).")
    call_command("migrate", "campaigns", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("SELECT (SELECT count(*) FROM customers_customer), (SELECT count(*) FROM customers_purchase)")
        customers, purchases = cursor.fetchone()
    if customers == 0:
        raise SystemExit("No customers: load the data set with bench/generate.py first.")
    policy, _ = ContactPolicy.objects.get_or_create(pk=1)
    saved = (policy.quiet_hours_start, policy.quiet_hours_end, policy.max_messages)
    # The sender runs on the real clock: quiet hours off so the bench measures sending at any hour.
    policy.quiet_hours_start = policy.quiet_hours_end = dt.time(0)
    policy.save()
    try:
        cleanup()
        print("evaluation vs bound ...", flush=True)
        evaluation = bench_evaluation(args.rounds)
        print(evaluation, flush=True)
        print("memory by audience size ...", flush=True)
        memory = bench_memory()
        print(memory, flush=True)
        send = None
        if args.send:
            print(f"sending {args.send:,} ...", flush=True)
            send = bench_send(args.send, args.broker)
            print(send, flush=True)
    finally:
        cleanup()
        policy.quiet_hours_start, policy.quiet_hours_end, policy.max_messages = saved
        policy.save()
    text = report(evaluation, memory, send, customers, purchases)
    print(text)
    if not args.no_write:
        performance_section_write("campaigns", text)


if __name__ == "__main__":
    main()
