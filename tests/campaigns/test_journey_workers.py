"""Journeys under real Celery workers on Redis (SPEC §4.1 "Exactly once"), and the ways an entry
ends or waits that tests/campaigns/test_journeys.py does not cover.

- two worker processes running ``campaigns.advance_journeys`` and ``campaigns.evaluate`` at once on
  a journey with thousands of entries coming due: one message per (entry, step), every entry
  advanced once, the step counters exact;
- a worker killed (SIGKILL) in the middle of the statement that advances a large due set, then a
  new worker: nothing lost, nothing twice;
- goal exits through the bulk purchase path and the CSV import, consent revoked, erasure, archive,
  and a purchase written around the hook (raw SQL) caught by advancing's own re-check;
- ``until`` waits in the customer's time zone; quiet hours and the frequency cap at a later step.

The services take a clock (``now``); only the worker tests run on the real one, as beat would.
"""

import ast
import datetime as dt
import io
import re
import time
from collections import Counter
from collections.abc import Iterator

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from campaigns.models import ContactPolicy, Entry, Message, MessageStatus, StepCount
from campaigns.services import campaign_evaluate, campaign_status_set, messages_send_batch
from campaigns.tasks import advance_journeys, evaluate
from customers.models import Consent, Customer
from customers.services.bulk import purchases_record_bulk
from customers.services.customers import consent_set, customer_erase
from tests.campaigns.conftest import NOON
from tests.campaigns.test_workers import RUN_TIMEOUT, Processes, database_url, purge, wait_until

HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
workers = pytest.mark.django_db(transaction=True)
in_process = pytest.mark.django_db

SERIES = [
    {"key": "hello", "type": "message", "subject": "Hello", "body": "Hi {{ customer.first_name }}"},
    {"key": "pause", "type": "wait", "minutes": 1440},
    {"key": "nudge", "type": "message", "subject": "Still there?", "body": "Come back, {{ customer.first_name }}"},
]
NO_SENDS = "http://127.0.0.1:9/unused"  # these workers consume the triggers queue only: nothing is sent


# --- Helpers -------------------------------------------------------------------------------------


def lapsed_customers(count: int, now: dt.datetime, prefix: str = "jw") -> list[Customer]:
    """Many customers quickly (two INSERTs), lapsed for the reactivation trigger, consenting to email."""
    customers = Customer.objects.bulk_create(
        [
            Customer(
                external_id=f"{prefix}-{i:05d}",
                email=f"{prefix}{i}@example.com",
                first_name="Ann",
                last_purchase_at=now - dt.timedelta(days=120),
            )
            for i in range(count)
        ]
    )
    Consent.objects.bulk_create([Consent(customer=c, channel="email", granted=True, source="api") for c in customers])
    return customers


def no_quiet_hours_no_cap() -> None:
    """Workers run on the real clock: no quiet hours and no cap in the way of a test run at any hour."""
    ContactPolicy.objects.update_or_create(
        pk=1, defaults={"quiet_hours_start": dt.time(0), "quiet_hours_end": dt.time(0), "max_messages": 100}
    )


def triggers_worker(
    processes: Processes, name: str, env: dict[str, str], *, pool: str = "threads", concurrency: int = 2
):
    """A worker on the triggers queue only: the advancing is under test, not the sending."""
    args = ["worker", "-n", f"{name}@%h", "-Q", "triggers", "--pool", pool, "--concurrency", str(concurrency)]
    args += ["--without-gossip", "--without-mingle", "--loglevel", "INFO"]
    return processes.start(name, args, env, ready="ready.")


SUCCEEDED = re.compile(r"Task campaigns\.(advance_journeys|evaluate)\[[^\]]+\] succeeded in [\d.]+s: (\{.*\})")


def messages_created_by(log: str) -> int:
    """The messages a worker's advance and evaluate tasks answered they created."""
    total = 0
    for _, answer in SUCCEEDED.findall(log):
        total += sum(ast.literal_eval(answer).values())
    return total


def per_step(campaign) -> Counter:
    return Counter(Message.objects.filter(campaign=campaign).values_list("step_key", flat=True))


def step_counts(campaign) -> dict[str, int]:
    return dict(StepCount.objects.filter(campaign=campaign).values_list("step_key", "entered"))


def assert_one_message_per_entry_and_step(campaign, entries: int) -> None:
    pairs = Counter(Message.objects.filter(campaign=campaign).values_list("entry_id", "step_key"))
    assert len(pairs) == 2 * entries
    assert max(pairs.values()) == 1
    assert per_step(campaign) == {"hello": entries, "nudge": entries}


# --- Real workers ----------------------------------------------------------------------------------


@pytest.fixture
def processes(tmp_path) -> Iterator[Processes]:
    started = Processes(tmp_path)
    yield started
    started.stop_all()
    connection.close()  # the flush after the test must not wait on anything we held


@workers
def test_two_workers_advancing_one_journey_at_once_send_each_step_once(processes, make_campaign, celery_broker_url):
    purge(celery_broker_url)
    no_quiet_hours_no_cap()
    real_now = timezone.now()
    lapsed_customers(3000, real_now)
    campaign = make_campaign("reactivation", steps=SERIES)
    # Entered two days ago: the first message planned then, every entry waiting at "pause".
    assert campaign_evaluate(campaign_id=campaign.pk, now=real_now - 2 * DAY).queued == 3000
    # The waits end in 30 waves over the next three seconds, so the workers keep racing for fresh
    # due entries instead of one task taking them all (test setup: only the due times are moved).
    start = timezone.now() + dt.timedelta(seconds=1)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE campaigns_entry SET next_at = %s + mod(id, 30) * interval '100 milliseconds'"
            " WHERE campaign_id = %s",
            [start, campaign.pk],
        )

    env = processes.env(celery_broker_url, NO_SENDS)
    one, two = triggers_worker(processes, "one", env), triggers_worker(processes, "two", env)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # beat's minute task and run-now, far more often than in life
        advance_journeys.delay()
        evaluate.delay(campaign.pk)
        time.sleep(0.05)

    def all_advanced() -> bool:
        if Entry.objects.filter(campaign=campaign, state="active").exists():
            advance_journeys.delay()
            return False
        return True

    wait_until(all_advanced, RUN_TIMEOUT, "every entry to be advanced", interval=0.5)
    wait_until(
        lambda: messages_created_by(processes.log(one)) + messages_created_by(processes.log(two)) >= 3000,
        RUN_TIMEOUT,
        "the tasks to report",
    )
    assert_one_message_per_entry_and_step(campaign, 3000)
    assert set(Entry.objects.filter(campaign=campaign).values_list("state", flat=True)) == {"completed"}
    assert step_counts(campaign) == {"hello": 3000, "pause": 3000, "nudge": 3000}
    # What the tasks answered adds up to the messages there are: no task counted one twice. (Which
    # worker wins each wave is the scheduler's business: on a loaded machine one may win them all.)
    created = [messages_created_by(processes.log(worker)) for worker in (one, two)]
    assert sum(created) == 3000
    for worker in (one, two):
        assert "campaigns.advance_journeys" in processes.log(worker)  # both raced for the entries
    purge(celery_broker_url)


def backend_waiting_on_a_lock(query_start: str) -> int | None:
    """The session of another client whose current statement (starting so) waits on a lock."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND wait_event_type = 'Lock' AND query LIKE %s",
            [f"{query_start}%"],
        )
        row = cursor.fetchone()
        return row[0] if row else None


def backend_alive(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid])
        return cursor.fetchone() is not None


def kill_while_waiting(processes: Processes, worker, *, hold: str, params: list, query_start: str) -> None:
    """Let another session run ``hold`` and keep its locks, so the worker's advance waits at a known
    point (``query_start``: the statement it waits in); SIGKILL the worker there, then let go."""
    blocker = psycopg.connect(database_url())
    blocker.execute(hold, params)
    try:
        advance_journeys.delay()
        wait_until(lambda: backend_waiting_on_a_lock(query_start), RUN_TIMEOUT, "the advance to wait")
        waiting = backend_waiting_on_a_lock(query_start)
        processes.kill(worker)
    finally:
        blocker.rollback()
        blocker.close()
    # The worker's session carries on until it finds its client gone, then ends.
    wait_until(lambda: not backend_alive(waiting), 30, "the dead worker's session to end")


# A message of the step the worker is about to insert, written by another session and not committed:
# the worker's INSERT ... ON CONFLICT must wait for that session, in the middle of its statement.
CONFLICTING_MESSAGE = """
    INSERT INTO campaigns_message (uuid, campaign_id, customer_id, channel, dedupe_key, entry_id, step_key,
        variant_key, status, reason, data, created_at, scheduled_at, send_at, attempts, error, provider_message_id)
    SELECT gen_random_uuid(), e.campaign_id, e.customer_id, 'email', e.dedupe_key || '/nudge', e.id, 'nudge',
        '', 'queued', '', '{}', now(), now(), now(), 0, '', ''
    FROM campaigns_entry e WHERE e.id = %s
"""
# Django's foreign keys are checked at COMMIT: holding a customer's row makes the worker's COMMIT wait.
LOCKED_CUSTOMER = "SELECT id FROM customers_customer WHERE id = %s FOR UPDATE"


@workers
def test_a_worker_killed_mid_advance_loses_nothing_and_a_new_one_sends_each_step_once(
    processes, make_campaign, celery_broker_url
):
    purge(celery_broker_url)
    no_quiet_hours_no_cap()
    real_now = timezone.now()
    lapsed_customers(3000, real_now)
    campaign = make_campaign("reactivation", steps=SERIES)
    campaign_evaluate(campaign_id=campaign.pk, now=real_now - 2 * DAY)  # all 3000 due at "pause" now
    env = processes.env(celery_broker_url, NO_SENDS)
    last = Entry.objects.filter(campaign=campaign).order_by("pk").last()

    # Killed in the middle of the statement (its messages partly inserted, nothing committed): the
    # transaction rolls back, the entries wait as they were.
    first = triggers_worker(processes, "first", env, pool="prefork", concurrency=1)
    kill_while_waiting(processes, first, hold=CONFLICTING_MESSAGE, params=[last.pk], query_start="WITH due AS")
    assert per_step(campaign) == {"hello": 3000}
    assert set(Entry.objects.filter(campaign=campaign).values_list("state", "step_key")) == {("active", "pause")}
    assert step_counts(campaign) == {"hello": 3000, "pause": 3000}

    # Killed after it asked to COMMIT: the server finishes the commit without it. Everything advanced
    # once; the task, never acknowledged, comes back after the broker's visibility timeout.
    second = triggers_worker(processes, "second", env, pool="prefork", concurrency=1)
    kill_while_waiting(processes, second, hold=LOCKED_CUSTOMER, params=[last.customer_id], query_start="COMMIT")
    assert_one_message_per_entry_and_step(campaign, 3000)
    assert set(Entry.objects.filter(campaign=campaign).values_list("state", flat=True)) == {"completed"}

    # A new worker advancing again (beat's next minute, and that task's rerun) finds nothing to do.
    third = triggers_worker(processes, "third", env, pool="prefork", concurrency=1)
    advance_journeys.delay()
    evaluate.delay(campaign.pk)
    wait_until(lambda: len(SUCCEEDED.findall(processes.log(third))) >= 2, RUN_TIMEOUT, "both tasks")
    assert messages_created_by(processes.log(third)) == 0
    assert_one_message_per_entry_and_step(campaign, 3000)
    assert step_counts(campaign) == {"hello": 3000, "pause": 3000, "nudge": 3000}
    purge(celery_broker_url)


# --- Entries ending from outside the journey ------------------------------------------------------


@pytest.fixture
def waiting(make_customer, make_campaign):
    """Customers whose entries wait at "pause" after the first message (entered at NOON)."""

    def make(count: int, **campaign_fields):
        customers = [
            make_customer(
                external_id=f"wait-{i}", channels=("email", "sms"), last_purchase_at=NOON - dt.timedelta(days=100)
            )
            for i in range(count)
        ]
        campaign = make_campaign("reactivation", steps=SERIES, **campaign_fields)
        assert campaign_evaluate(campaign_id=campaign.pk, now=NOON).queued == count
        return campaign, customers

    return make


def entry_of(campaign, customer) -> Entry:
    return Entry.objects.get(campaign=campaign, customer=customer)


def ended(campaign, customers) -> list[tuple[str, str]]:
    return [(entry_of(campaign, c).state, entry_of(campaign, c).exit_reason) for c in customers]


def nudged(campaign) -> set[int]:
    return set(Message.objects.filter(campaign=campaign, step_key="nudge").values_list("customer_id", flat=True))


@in_process
def test_purchases_through_the_bulk_path_and_the_csv_import_end_entries_in_the_middle_of_a_wait(
    waiting, tmp_path, settings
):
    settings.STORE_CURRENCY = "USD"
    campaign, (bulk_one, bulk_two, imported, earlier, untouched) = waiting(5)
    order = {"placed_at": (NOON + HOUR).isoformat(), "total": "20.00"}
    results = purchases_record_bulk(
        raw_purchases=[
            {"external_id": "bulk-1", "customer": bulk_one.external_id, **order},
            {"external_id": "bulk-2", "customer": bulk_two.external_id, **order},
            # Placed before the entry, recorded late: not the goal.
            {
                "external_id": "bulk-3",
                "customer": earlier.external_id,
                "placed_at": "2026-03-01T10:00:00+00:00",
                "total": "5.00",
            },
        ]
    )
    assert [r.status for r in results] == ["created"] * 3
    csv = tmp_path / "orders.csv"
    csv.write_text(
        f"external_id,customer,placed_at,total\nimp-1,{imported.external_id},{(NOON + 2 * HOUR).isoformat()},9.99\n"
    )
    call_command("import_purchases", str(csv), "--no-progress", stdout=io.StringIO(), stderr=io.StringIO())

    goal = ("exited", "goal")
    assert (
        ended(campaign, [bulk_one, bulk_two, imported, earlier, untouched]) == [goal, goal, goal] + [("active", "")] * 2
    )
    # Their first message, not sent yet, is not sent any more either.
    first = Message.objects.filter(campaign=campaign, step_key="hello")
    assert {(m.customer_id, m.status, m.reason) for m in first.filter(status="suppressed")} == {
        (c.pk, "suppressed", "goal") for c in (bulk_one, bulk_two, imported)
    }
    # After the wait, only those still in the journey get the next step.
    assert campaign_evaluate(campaign_id=campaign.pk, now=NOON + DAY).queued == 2
    assert nudged(campaign) == {earlier.pk, untouched.pk}


@in_process
def test_consent_revoked_and_erasure_end_entries_with_their_reason(waiting):
    campaign, (revoked, other_channel, erased, untouched) = waiting(4)
    consent_set(customer=revoked, channel="email", granted=False, source="api")
    consent_set(customer=other_channel, channel="sms", granted=False, source="api")  # not the journey's channel
    customer_erase(external_id=erased.external_id, actor="test")
    assert ended(campaign, [revoked, other_channel, erased, untouched]) == [
        ("exited", "no_consent"),
        ("active", ""),
        ("exited", "erased"),
        ("active", ""),
    ]
    assert campaign_evaluate(campaign_id=campaign.pk, now=NOON + DAY).queued == 2
    assert nudged(campaign) == {other_channel.pk, untouched.pk}


@in_process
def test_archiving_the_campaign_ends_its_waiting_entries(waiting):
    campaign, customers = waiting(2)
    campaign_status_set(campaign_id=campaign.pk, status="archived")
    assert ended(campaign, customers) == [("exited", "archived")] * 2
    assert nudged(campaign) == set()


RAW_PURCHASE = """
    INSERT INTO customers_purchase (external_id, customer_id, placed_at, total, currency, status,
        cart_external_id, points_redeemed, content_digest, created_at)
    VALUES (%s, %s, %s, 10.00, 'USD', 'completed', '', 0, '', now())
"""


@in_process
def test_changes_written_around_the_hooks_are_caught_when_the_entry_comes_due(waiting):
    campaign, (bought, revoked, erased, untouched) = waiting(4)
    # Written by another way than the services (a script, a replica's late write): no hook ran.
    with connection.cursor() as cursor:
        cursor.execute(RAW_PURCHASE, ["raw-1", bought.pk, NOON + HOUR])
        cursor.execute("UPDATE customers_consent SET granted = FALSE WHERE customer_id = %s", [revoked.pk])
        cursor.execute("UPDATE customers_customer SET erased_at = %s WHERE id = %s", [NOON + HOUR, erased.pk])
    assert {e.state for e in Entry.objects.filter(campaign=campaign)} == {"active"}

    result = campaign_evaluate(campaign_id=campaign.pk, now=NOON + DAY)
    assert (result.queued, result.exited) == (1, 3)
    assert ended(campaign, [bought, revoked, erased, untouched]) == [
        ("exited", "goal"),
        ("exited", "no_consent"),
        ("exited", "erased"),
        ("completed", ""),
    ]
    assert nudged(campaign) == {untouched.pk}


# --- Time: until waits, quiet hours and the cap at a later step --------------------------------------

UNTIL_MORNING = [
    {"key": "hello", "type": "message", "subject": "Hello", "body": "Hi"},
    {"key": "morning", "type": "wait", "until": "10:00"},
    {"key": "nudge", "type": "message", "subject": "Good morning", "body": "A new day"},
]


@in_process
def test_an_until_wait_ends_at_the_next_local_ten_in_each_customers_time_zone(make_customer, make_campaign):
    lapsed = NOON - dt.timedelta(days=100)
    # At NOON (12:00 UTC, 10 March 2026): 21:00 in Tokyo, 08:00 in New York (daylight time since 8 March).
    tokyo = make_customer(external_id="tokyo", timezone="Asia/Tokyo", last_purchase_at=lapsed)
    new_york = make_customer(external_id="ny", timezone="America/New_York", last_purchase_at=lapsed)
    london = make_customer(external_id="utc", timezone="UTC", last_purchase_at=lapsed)
    campaign = make_campaign("reactivation", steps=UNTIL_MORNING)
    campaign_evaluate(campaign_id=campaign.pk, now=NOON)

    # The first message waits out quiet hours (until 09:00 local), and the wait counts from then.
    first = {m.customer_id: m.send_at for m in Message.objects.filter(campaign=campaign)}
    at = dt.datetime
    assert first == {
        tokyo.pk: at(2026, 3, 11, 0, 0, tzinfo=dt.UTC),  # 09:00 in Tokyo
        new_york.pk: at(2026, 3, 10, 13, 0, tzinfo=dt.UTC),  # 09:00 in New York
        london.pk: NOON,
    }
    due = {c.pk: entry_of(campaign, c).next_at for c in (tokyo, new_york, london)}
    assert due == {
        tokyo.pk: at(2026, 3, 11, 1, 0, tzinfo=dt.UTC),  # 10:00 in Tokyo, the same local morning
        new_york.pk: at(2026, 3, 10, 14, 0, tzinfo=dt.UTC),  # 10:00 in New York
        london.pk: at(2026, 3, 11, 10, 0, tzinfo=dt.UTC),  # past 10:00 already: the next day's
    }
    # Each gets the next step when its own morning comes, not before.
    campaign_evaluate(campaign_id=campaign.pk, now=at(2026, 3, 10, 13, 59, tzinfo=dt.UTC))
    assert nudged(campaign) == set()
    campaign_evaluate(campaign_id=campaign.pk, now=at(2026, 3, 10, 14, 0, tzinfo=dt.UTC))
    assert nudged(campaign) == {new_york.pk}
    campaign_evaluate(campaign_id=campaign.pk, now=at(2026, 3, 11, 1, 0, tzinfo=dt.UTC))
    assert nudged(campaign) == {new_york.pk, tokyo.pk}
    campaign_evaluate(campaign_id=campaign.pk, now=at(2026, 3, 11, 10, 0, tzinfo=dt.UTC))
    assert nudged(campaign) == {new_york.pk, tokyo.pk, london.pk}


@in_process
def test_quiet_hours_hold_a_later_step_until_they_end(make_customer, make_campaign, policy):
    customer = make_customer(external_id="late", timezone="UTC", last_purchase_at=NOON - dt.timedelta(days=100))
    steps = [SERIES[0], {"key": "pause", "type": "wait", "minutes": 600}, SERIES[2]]  # due at 22:00
    campaign = make_campaign("reactivation", steps=steps)
    campaign_evaluate(campaign_id=campaign.pk, now=NOON)
    night = NOON + 10 * HOUR
    assert entry_of(campaign, customer).next_at == night

    result = campaign_evaluate(campaign_id=campaign.pk, now=night)
    assert (result.queued, result.due_now) == (1, 0)
    nudge = Message.objects.get(campaign=campaign, step_key="nudge")
    morning = dt.datetime(2026, 3, 11, 9, 0, tzinfo=dt.UTC)
    assert (nudge.status, nudge.scheduled_at, nudge.send_at) == ("queued", morning, morning)
    messages_send_batch(campaign_id=campaign.pk, now=night + HOUR)
    nudge.refresh_from_db()
    assert nudge.status == "queued"  # not sent in the night
    messages_send_batch(campaign_id=campaign.pk, now=morning)
    nudge.refresh_from_db()
    assert nudge.status == "sent"


@in_process
def test_the_frequency_cap_defers_a_later_step_then_suppresses_one_deferred_too_long(
    make_customer, make_campaign, policy
):
    policy.max_messages, policy.cap_days, policy.max_defer_hours = 1, 7, 200
    policy.save()
    customer = make_customer(external_id="capped", timezone="UTC", last_purchase_at=NOON - dt.timedelta(days=100))
    steps = [
        *SERIES,
        {"key": "again", "type": "wait", "minutes": 1440},
        {"key": "last", "type": "message", "subject": "Last", "body": "Last call"},
    ]
    campaign = make_campaign("reactivation", steps=steps)
    campaign_evaluate(campaign_id=campaign.pk, now=NOON)
    messages_send_batch(campaign_id=campaign.pk, now=NOON)  # "hello" sent: the one message of the week

    # A day later "nudge" is over the cap: deferred to when "hello" leaves the 7-day window, and the
    # wait after it counts from that planned send.
    result = campaign_evaluate(campaign_id=campaign.pk, now=NOON + DAY)
    assert (result.queued, result.deferred) == (0, 1)
    nudge = Message.objects.get(campaign=campaign, step_key="nudge")
    assert (nudge.status, nudge.reason, nudge.send_at) == ("queued", "frequency_cap", NOON + 7 * DAY)
    assert entry_of(campaign, customer).next_at == NOON + 8 * DAY
    messages_send_batch(campaign_id=campaign.pk, now=NOON + 7 * DAY)
    nudge.refresh_from_db()
    assert nudge.status == MessageStatus.SENT

    # "last" would have to wait six days for "nudge" to leave the window: past max_defer_hours.
    policy.max_defer_hours = 48
    policy.save()
    result = campaign_evaluate(campaign_id=campaign.pk, now=NOON + 8 * DAY)
    assert result.suppressed == 1
    last = Message.objects.get(campaign=campaign, step_key="last")
    assert (last.status, last.reason) == ("suppressed", "frequency_cap")
    assert entry_of(campaign, customer).state == "completed"
