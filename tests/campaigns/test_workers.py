"""Exactly-once with real Celery workers (subprocesses: `celery -A retention_crm worker`) on Redis,
against the test database, sending over HTTP to a local provider that records Idempotency-Keys.

- two workers evaluating and sending one campaign at once: one message per key, one delivery each;
- a worker killed (SIGKILL, the whole process group) mid-batch, then the sweeper and a new worker:
  every message delivered once. A message may reach the provider twice (sent, then the worker died
  before recording it); the Idempotency-Key lets the provider absorb that — the test counts it;
- the broker restarted mid-run (a private redis-server, so nobody else's queues are touched): tasks
  in Redis are lost, beat's dispatcher finds the due messages in the database, the run completes.
"""

import datetime as dt
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.db import connection

from campaigns.models import ContactPolicy, Message, MessageStatus
from campaigns.services import campaign_evaluate, campaign_run, messages_requeue_stale
from campaigns.tasks import evaluate
from customers.models import Consent, Customer
from retention_crm.celery import app

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db(transaction=True)
STARTUP_TIMEOUT = 60
RUN_TIMEOUT = 90


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def database_url() -> str:
    """The test database (pytest-django's test_<name>) as a DATABASE_URL for the subprocesses."""
    db = connection.settings_dict
    credentials = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Processes:
    """Celery processes started by a test; all stopped (the group killed if need be) at the end."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[tuple[subprocess.Popen, Path]] = []

    def env(self, broker_url: str, sink_url: str, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "DATABASE_URL": database_url(),
            "CELERY_BROKER_URL": broker_url,
            "WEBHOOK_BACKEND": "http",
            "WEBHOOK_URL": sink_url,
            "WEBHOOK_TIMEOUT": "5",
            "CONN_MAX_AGE": "0",
            "LOG_LEVEL": "INFO",
            **extra,
        }

    def start(self, name: str, args: list[str], env: dict[str, str], ready: str) -> subprocess.Popen:
        log = self.tmp_path / f"{name}.log"
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "retention_crm", *args],
            cwd=ROOT,
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: a SIGKILL takes the pool's children too
        )
        self.started.append((process, log))
        wait_until(lambda: ready in log.read_text() or process.poll() is not None, STARTUP_TIMEOUT, f"{name} to start")
        assert process.poll() is None, log.read_text()
        return process

    def worker(
        self, name: str, env: dict[str, str], *, pool: str = "threads", concurrency: int = 2
    ) -> subprocess.Popen:
        return self.start(
            name,
            [
                "worker",
                "-n",
                f"{name}@%h",
                "-Q",
                "triggers,sends",
                "--pool",
                pool,
                "--concurrency",
                str(concurrency),
                "--without-gossip",
                "--without-mingle",
                "--loglevel",
                "INFO",
            ],
            env,
            ready="ready.",
        )

    def log(self, process: subprocess.Popen) -> str:
        return next(log for started, log in self.started if started is process).read_text()

    @staticmethod
    def kill(process: subprocess.Popen) -> None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    def stop_all(self) -> None:
        for process, _ in self.started:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process, _ in self.started:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=20)


@pytest.fixture
def processes(tmp_path) -> Iterator[Processes]:
    started = Processes(tmp_path)
    yield started
    started.stop_all()
    connection.close()  # the flush after the test must not wait on anything we held


def purge(broker_url: str) -> None:
    with app.connection_for_write(broker_url) as conn:
        for queue in app.conf.task_queues:
            queue(conn.channel()).purge()


def webhook_customers(count: int) -> list[Customer]:
    lapsed = dt.datetime.now(dt.UTC) - dt.timedelta(days=120)
    customers = Customer.objects.bulk_create(
        [Customer(external_id=f"w-{i:05d}", last_purchase_at=lapsed) for i in range(count)]
    )
    Consent.objects.bulk_create([Consent(customer=c, channel="webhook", granted=True, source="api") for c in customers])
    # The workers run on the real clock: no quiet hours, no cap in the way of a test run at any hour.
    ContactPolicy.objects.update_or_create(
        pk=1, defaults={"quiet_hours_start": dt.time(0), "quiet_hours_end": dt.time(0), "max_messages": 100}
    )
    return customers


def unfinished(campaign) -> int:
    return Message.objects.filter(campaign=campaign, status__in=[MessageStatus.QUEUED, MessageStatus.SENDING]).count()


def sent_uuids(campaign) -> set[str]:
    return {str(u) for u in Message.objects.filter(campaign=campaign, status="sent").values_list("uuid", flat=True)}


def test_two_workers_evaluating_and_sending_at_once_create_and_send_each_key_once(
    processes, sink, make_campaign, celery_broker_url
):
    purge(celery_broker_url)
    webhook_customers(300)
    campaign = make_campaign("reactivation", channel="webhook", subject="", holdout_percent=10)
    # Small batches: many send tasks, so both workers claim from the same campaign at the same time.
    env = processes.env(celery_broker_url, sink.url, CAMPAIGN_SEND_BATCH_SIZE="20")
    one, two = processes.worker("one", env), processes.worker("two", env)
    for _ in range(4):  # the campaign run several times, on both workers at once
        evaluate.delay(campaign.pk)
    wait_until(
        lambda: Message.objects.filter(campaign=campaign).count() == 300 and unfinished(campaign) == 0,
        RUN_TIMEOUT,
        "every message to be sent",
    )
    statuses = set(Message.objects.filter(campaign=campaign).values_list("status", flat=True))
    assert statuses == {"sent", "held_out"}
    assert sink.delivered() == sent_uuids(campaign)
    assert sink.duplicates() == 0  # with no crash, no message reached the provider twice
    for worker in (one, two):
        assert "campaigns.send_batch" in processes.log(worker)  # both took part in the sending


def no_other_sessions() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0] == 0


def test_a_worker_killed_mid_batch_then_restarted_delivers_every_message_once(
    processes, sink, make_campaign, celery_broker_url
):
    purge(celery_broker_url)
    webhook_customers(200)
    campaign = make_campaign("reactivation", channel="webhook", subject="", holdout_percent=0)
    sink.delay = 0.02  # a provider at 20 ms per request: the batch takes seconds
    env = processes.env(celery_broker_url, sink.url)
    worker = processes.worker("doomed", env, pool="prefork", concurrency=1)
    campaign_run(campaign_id=campaign.pk)  # evaluates here; the send task goes to the worker
    wait_until(lambda: sink.count() >= 50, RUN_TIMEOUT, "the worker to be mid-batch")
    processes.kill(worker)
    # A commit the worker sent just before it died may still be finishing on the server.
    wait_until(no_other_sessions, 30, "the dead worker's database sessions to end")

    in_flight = Message.objects.filter(campaign=campaign, status="sending").count()
    assert in_flight > 0  # claimed by the dead worker and never recorded
    assert len(sent_uuids(campaign)) < 200
    # The sweeper (beat, every 5 minutes, for messages older than CAMPAIGN_SENDING_STALE_SECONDS)
    # finds them; here it runs at once with no minimum age, as no worker is alive.
    assert messages_requeue_stale(older_than=dt.timedelta(0)) == in_flight
    processes.worker("replacement", env, pool="prefork", concurrency=1)
    wait_until(lambda: unfinished(campaign) == 0, RUN_TIMEOUT, "the replacement to finish")

    assert len(sent_uuids(campaign)) == 200
    assert sink.delivered() == sent_uuids(campaign)  # every message delivered, once per key
    # What reached the provider twice: at most the one message in flight when the worker died,
    # which the provider recognised by its Idempotency-Key.
    assert sink.duplicates() <= 1, sink.keys().most_common(3)
    assert max(Message.objects.filter(campaign=campaign).values_list("attempts", flat=True)) <= 2


@pytest.fixture
def private_redis(tmp_path) -> Iterator[Callable[[], None]]:
    """A redis-server of our own on a free port, so restarting it touches nobody else's queues.

    Yields a function that restarts it (shutdown without saving, start again on the same port).
    """
    import redis

    binary = shutil.which("redis-server")
    if binary is None:
        raise pytest.UsageError("The broker restart test needs redis-server on PATH (as CI has).")
    port = free_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    command += ["--dir", str(tmp_path)]
    servers: list[subprocess.Popen] = []

    def start() -> None:
        servers.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
        client = redis.Redis(port=port)
        wait_until(lambda: _pings(client), 10, "redis-server to start")

    def restart() -> None:
        redis.Redis(port=port).shutdown(nosave=True)
        servers[-1].wait(timeout=10)
        start()

    start()
    restart.url = f"redis://127.0.0.1:{port}/0"  # type: ignore[attr-defined]
    yield restart
    for server in servers:
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=10)


def _pings(client) -> bool:
    try:
        return bool(client.ping())
    except Exception:
        return False


def test_a_broker_restart_mid_run_loses_tasks_but_not_the_run(private_redis, processes, sink, make_campaign):
    # private_redis first: torn down last, after the worker and beat have stopped.
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    from campaigns.schedules import campaign_schedules_ensure

    webhook_customers(300)
    campaign = make_campaign("reactivation", channel="webhook", subject="", holdout_percent=0)
    # Beat's dispatcher is the safety net; staff may tighten its schedule in the admin. Here: every second.
    campaign_schedules_ensure()
    every_second, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.exclude(task="campaigns.dispatch_due").update(enabled=False)
    PeriodicTask.objects.filter(task="campaigns.dispatch_due").update(interval=every_second, enabled=True)
    sink.delay = 0.01
    env = processes.env(private_redis.url, sink.url, CAMPAIGN_SEND_BATCH_SIZE="25")
    worker = processes.worker("survivor", env)
    beat_args = ["beat", "--max-interval", "1", "--loglevel", "INFO", "--pidfile", str(processes.tmp_path / "b.pid")]
    processes.start("beat", beat_args, env, ready="beat: Starting")
    campaign_evaluate(campaign_id=campaign.pk)  # 300 due messages; beat hands them to the worker

    wait_until(lambda: sink.count() >= 50, RUN_TIMEOUT, "sending to be under way")
    private_redis()  # every queued task is gone with it

    # Workers run under a supervisor (docker's restart policy, systemd): kombu sometimes ends a
    # worker with "Unrecoverable error" when the broker vanishes while it restores unacknowledged
    # tasks, and the supervisor starts it again. Do what the supervisor does.
    restarts = 0

    def finished() -> bool:
        nonlocal worker, restarts
        if worker.poll() is not None:
            restarts += 1
            worker = processes.worker(f"restarted{restarts}", env)
        return unfinished(campaign) == 0

    wait_until(finished, RUN_TIMEOUT, "the run to complete after the restart")

    assert len(sent_uuids(campaign)) == 300
    assert sink.delivered() == sent_uuids(campaign)
    assert sink.duplicates() == 0
