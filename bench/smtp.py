"""SMTP sending: the worker's send path against plain smtplib over one connection, to the same local
SMTP server (aiosmtpd, in a process of its own) in the same run.

    DEBUG=true DATABASE_URL=postgres://postgres@127.0.0.1:5432/retention_crm_smtp \\
        python bench/smtp.py [--messages 5000] [--rounds 2] [--connections N] [--no-write] [--profile]

Needs an empty or scratch PostgreSQL database (it runs ``migrate``); it creates ``--messages``
customers ``bench-smtp-*`` with email consent and deletes them, their messages and its campaigns at
the end. Each round:

1. Bound: plain ``smtplib.SMTP.sendmail`` over one connection of ``--messages`` messages of the
   same size, built before the clock starts: what the server and the loopback allow one client.
2. Worker: a reactivation email campaign evaluated into ``--messages`` queued messages, then
   ``messages_send_batch`` (the code a ``send_batch`` task runs) called until none is left, with
   Django's SMTP backend: claim, re-check, render, build, send over ``CAMPAIGN_SMTP_CONNECTIONS``
   connections, and record every outcome right after its send.

Both run twice: with the server in a thread of this process (as the tests run it: the sender and
the server share one interpreter), then in a process of its own. The best round of each is kept;
the server counts the messages it accepted, which must be exactly ``--messages`` per run (none
lost, none twice). ``--profile`` prints the worker path's cProfile (first round).
"""

import argparse
import cProfile
import datetime as dt
import io
import multiprocessing
import os
import pstats
import smtplib
import socket
import sys
import threading
import time
from email.message import EmailMessage
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
from campaigns.models import Campaign, ContactPolicy  # noqa: E402
from campaigns.services import campaign_create, campaign_evaluate, messages_send_batch  # noqa: E402
from customers.models import Consent, Customer  # noqa: E402

PREFIX = "bench-smtp-"
CAMPAIGN_PREFIX = "bench smtp"
SUBJECT = "We miss you, {{ customer.first_name }}"
BODY = (
    "Hello {{ customer.first_name }},\n\nit has been a while. Your points are waiting for you, and so is"
    " a little something for your next order.\n\nSee you soon!\n\nUnsubscribe: {{ unsubscribe_url }}\n"
)


# --- The SMTP server ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve(port: int, received, ready) -> None:  # the server process
    from aiosmtpd.controller import Controller

    class Counting:
        async def handle_DATA(self, server, session, envelope):
            with received.get_lock():
                received.value += 1
            return "250 OK"

    controller = Controller(Counting(), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


class Server:
    """The aiosmtpd server: in a process of its own, or a thread of this one (as in the tests)."""

    def __init__(self, *, own_process: bool) -> None:
        context = multiprocessing.get_context("spawn")
        self.received, ready = context.Value("q", 0), context.Event()
        self.port = free_port()
        self.own_process = own_process
        if own_process:
            self.process = context.Process(target=serve, args=(self.port, self.received, ready), daemon=True)
            self.process.start()
        else:
            threading.Thread(target=serve, args=(self.port, self.received, ready), daemon=True).start()
        if not ready.wait(30):
            raise SystemExit("the SMTP server did not start")

    def stop(self) -> None:
        if self.own_process:
            self.process.terminate()


# --- The bound: plain smtplib ---------------------------------------------------------------------------


def raw_message(number: int) -> tuple[str, bytes]:
    """A message like the campaign's, built with the standard library's email package."""
    message = EmailMessage()
    message["Subject"] = "We miss you, Ada"
    message["From"] = settings.DEFAULT_FROM_EMAIL
    message["To"] = to = f"{PREFIX}{number}@example.com"
    message["Message-ID"] = f"<raw-{number}@example.com>"
    message["List-Unsubscribe"] = f"<{settings.SITE_URL}/unsubscribe/{'x' * 60}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(BODY.replace("{{ customer.first_name }}", "Ada").replace("{{ unsubscribe_url }}", "x" * 90))
    return to, message.as_bytes()


def bench_raw(port: int, count: int, *, prebuilt: bool) -> float:
    """Plain smtplib over one connection: messages built beforehand (the wire's speed), or each
    built just before its send (what a plain smtplib script does)."""
    messages = [raw_message(number) for number in range(count)] if prebuilt else None
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        for number in range(count):
            to, data = messages[number] if messages else raw_message(number)
            smtp.sendmail(settings.DEFAULT_FROM_EMAIL, [to], data)
    return time.perf_counter() - started


# --- The worker's send path ------------------------------------------------------------------------------


def make_customers(count: int) -> None:
    lapsed = timezone.now() - dt.timedelta(days=120)
    customers = Customer.objects.bulk_create(
        Customer(
            external_id=f"{PREFIX}{number}",
            email=f"{PREFIX}{number}@example.com",
            first_name="Ada",
            last_purchase_at=lapsed,
            timezone="UTC",
        )
        for number in range(count)
    )
    Consent.objects.bulk_create(
        Consent(customer=customer, channel="email", granted=True, source="api") for customer in customers
    )


def bench_worker(port: int, count: int, profile: bool) -> tuple[float, int]:
    campaign = campaign_create(
        data={
            "name": f"{CAMPAIGN_PREFIX} {time.time_ns()}",
            "trigger": "reactivation",
            "channel": "email",
            "status": "active",
            "subject": SUBJECT,
            "body": BODY,
            "params": {"inactive_days": 90},
            "holdout_percent": 0,
        }
    )
    result = campaign_evaluate(campaign_id=campaign.pk)
    assert result.queued == count, result
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.CAMPAIGN_CHANNELS = {**settings.CAMPAIGN_CHANNELS, "email": {"BACKEND": "email"}}
    profiler = cProfile.Profile() if profile else None
    sent = 0
    cpu = time.process_time()
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    while True:
        batch = messages_send_batch(campaign_id=campaign.pk)
        sent += batch.sent
        if not batch.locked:
            break
    if profiler:
        profiler.disable()
    seconds = time.perf_counter() - started
    print(f"worker path: {(time.process_time() - cpu) / count * 1000:.2f} ms of this process's CPU per message")
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(40)
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(30)
        print(out.getvalue(), file=sys.stderr)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM campaigns_message WHERE campaign_id = %s", [campaign.pk])
    return seconds, sent


def cleanup() -> None:
    campaigns = list(Campaign.objects.filter(name__startswith=CAMPAIGN_PREFIX).values_list("pk", flat=True))
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM campaigns_message WHERE campaign_id = ANY(%s)", [campaigns])
        cursor.execute("DELETE FROM campaigns_entry WHERE campaign_id = ANY(%s)", [campaigns])
    Campaign.objects.filter(pk__in=campaigns).delete()
    customers = Customer.objects.filter(external_id__startswith=PREFIX)
    with connection.cursor() as cursor:
        ids = list(customers.values_list("pk", flat=True))
        cursor.execute("DELETE FROM customers_consentevent WHERE customer_id = ANY(%s)", [ids])
        cursor.execute("DELETE FROM customers_consent WHERE customer_id = ANY(%s)", [ids])
    customers.delete()


SERVER_PLACES = {False: "a thread of the sending process (as in the tests)", True: "a process of its own"}


def report(count: int, runs: dict[bool, tuple[float, float, float]], connections: int) -> str:
    lines = [
        "## SMTP sending",
        "",
        f"Measured by `bench/smtp.py`: {count:,} emails to a local SMTP server (aiosmtpd) on the same 2-core",
        "machine as PostgreSQL and the sender, in the same run: plain smtplib over one connection to the",
        "same server, with the messages built beforehand (the wire's speed) and built one by one with the",
        "standard library's email package in the send loop (a plain smtplib script), against the worker's",
        f"send path, `messages_send_batch` (claim, re-check, render, build, send over {connections} SMTP",
        "connections, receipts and records), the code a send task runs. Best of the rounds, messages/s.",
        "",
        "| SMTP server in | smtplib, prebuilt | smtplib, built in the loop | worker "
        "| worker / prebuilt | worker / built in the loop |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for own_process, (raw, script, worker) in runs.items():
        raw_rate, script_rate, worker_rate = count / raw, count / script, count / worker
        lines.append(
            f"| {SERVER_PLACES[own_process]} | {raw_rate:,.0f} | {script_rate:,.0f} | {worker_rate:,.0f} "
            f"| {worker_rate / raw_rate:.2f}x | {worker_rate / script_rate:.2f}x |"
        )
    return "\n".join(
        [
            *lines,
            "",
            f"Each of the {connections} connections (setting `CAMPAIGN_SMTP_CONNECTIONS`) has its own thread and",
            "database connection and writes each sent message's receipt right after the server accepted it,",
            "before it sends the next; a batch's statuses are written in one statement when it ends. So a",
            f"worker killed mid-batch leaves at most one sent-but-unreceipted message per connection ({connections}",
            "per worker), and the sweeper completes the receipted ones instead of sending them again.",
            "Building a message with Python's email package costs more than sending it: the prebuilt",
            "bound sends messages nobody had to render or build, while the worker renders and builds every",
            "one, so the like-for-like bound is smtplib building its messages in the loop. Here the local",
            "server itself (aiosmtpd, pure Python) is the limit of the prebuilt column.",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=None, help="CAMPAIGN_SMTP_CONNECTIONS for this run")
    parser.add_argument("--profile", action="store_true", help="print the worker path's cProfile (first round)")
    parser.add_argument("--no-write", action="store_true", help="print the table, leave docs/PERFORMANCE.md alone")
    args = parser.parse_args()
    if settings.EMBEDDED_DATABASE:
        raise SystemExit("Set DATABASE_URL to a scratch PostgreSQL database (not the embedded demo's).")
    if args.connections:
        settings.CAMPAIGN_SMTP_CONNECTIONS = args.connections
    connections = getattr(settings, "CAMPAIGN_SMTP_CONNECTIONS", 1)
    call_command("migrate", verbosity=0)
    policy, _ = ContactPolicy.objects.get_or_create(pk=1)
    saved = (policy.quiet_hours_start, policy.quiet_hours_end)
    policy.quiet_hours_start = policy.quiet_hours_end = dt.time(0)  # the sender runs on the real clock
    policy.save()
    runs: dict[bool, tuple[float, float, float]] = {}
    try:
        cleanup()
        make_customers(args.messages)
        for own_process in (False, True):
            server = Server(own_process=own_process)
            raw_runs, script_runs, worker_runs = [], [], []
            for number in range(args.rounds):
                received = server.received
                before = received.value
                raw_runs.append(bench_raw(server.port, args.messages, prebuilt=True))
                script_runs.append(bench_raw(server.port, args.messages, prebuilt=False))
                assert received.value - before == 2 * args.messages, ("raw", received.value - before)
                before = received.value
                profile = args.profile and number == 0 and own_process
                seconds, sent = bench_worker(server.port, args.messages, profile=profile)
                arrived = received.value - before
                assert sent == args.messages and arrived == args.messages, (sent, arrived)
                worker_runs.append(seconds)
                print(
                    f"server in {SERVER_PLACES[own_process]}, round {number + 1}: prebuilt"
                    f" {args.messages / raw_runs[-1]:,.0f}/s,"
                    f" built in the loop {args.messages / script_runs[-1]:,.0f}/s,"
                    f" worker {args.messages / seconds:,.0f}/s",
                    flush=True,
                )
            server.stop()
            runs[own_process] = (min(raw_runs), min(script_runs), min(worker_runs))
    finally:
        cleanup()
        policy.quiet_hours_start, policy.quiet_hours_end = saved
        policy.save()
    text = report(args.messages, runs, connections)
    print(text)
    if not args.no_write:
        performance_section_write("smtp", text)


if __name__ == "__main__":
    main()
