"""Email over several SMTP connections at once (``CAMPAIGN_SMTP_CONNECTIONS``), against a real SMTP
server (aiosmtpd) in the test process: every message arrives once, a connection's failure retries
only its own message, and a worker killed mid-batch leaves at most one sent-but-unrecorded message
per connection. The sender's lanes run in threads with their own database connections, so these
tests commit (``transaction=True``)."""

import asyncio
import datetime as dt
import email
import email.policy
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from django.db import connection

from campaigns.models import ContactPolicy, Message, MessageStatus
from campaigns.services import campaign_evaluate, messages_requeue_stale, messages_send_batch
from customers.models import Consent, Customer

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db(transaction=True)
CONNECTIONS = 3


@dataclass
class Arrival:
    message_id: str
    connection: tuple[str, int]  # the client's address and port: one per SMTP connection


@dataclass
class RecordingServer:
    """Records each message's Message-ID and connection; can slow down, or drop one connection."""

    delay: float = 0.0
    drop_message_number: int | None = None  # answer this (1-based) message with 421 and close
    arrivals: list[Arrival] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    seen: int = 0
    port: int = 0

    async def handle_DATA(self, server, session, envelope) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        with self.lock:
            self.seen += 1
            if self.seen == self.drop_message_number:
                server.transport.close()  # the connection goes away with this message unaccepted
                return "421 closing the connection"
            parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
            self.arrivals.append(Arrival(parsed["Message-ID"].strip("<>").split("@")[0], tuple(session.peer[:2])))
        return "250 accepted"

    def message_ids(self) -> Counter:
        with self.lock:
            return Counter(arrival.message_id for arrival in self.arrivals)

    def connections(self) -> set[tuple[str, int]]:
        with self.lock:
            return {arrival.connection for arrival in self.arrivals}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp(settings):
    handler = RecordingServer(port=_free_port())
    controller = Controller(handler, hostname="127.0.0.1", port=handler.port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", handler.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.CAMPAIGN_SMTP_CONNECTIONS = CONNECTIONS
    try:
        yield handler
    finally:
        controller.stop()


@pytest.fixture
def no_quiet_hours(db):
    # The sender runs on the real clock here (the killed worker is a process of its own).
    policy, _ = ContactPolicy.objects.get_or_create(pk=1)
    policy.quiet_hours_start = policy.quiet_hours_end = dt.time(0)
    policy.save()


def email_campaign(make_campaign, count: int):
    lapsed = dt.datetime.now(dt.UTC) - dt.timedelta(days=120)
    for number in range(count):
        customer = Customer.objects.create(
            external_id=f"smtp-{number}", email=f"smtp-{number}@example.com", first_name="Ada", last_purchase_at=lapsed
        )
        Consent.objects.create(customer=customer, channel="email", granted=True, source="api")
    campaign = make_campaign("reactivation")
    assert campaign_evaluate(campaign_id=campaign.pk).queued == count
    return campaign


def uuids(campaign, **filters) -> set[str]:
    return {str(value) for value in Message.objects.filter(campaign=campaign, **filters).values_list("uuid", flat=True)}


def test_every_message_arrives_once_over_several_connections(smtp, no_quiet_hours, make_campaign):
    campaign = email_campaign(make_campaign, 30)
    result = messages_send_batch(campaign_id=campaign.pk)
    assert result.sent == 30
    assert smtp.message_ids() == Counter(dict.fromkeys(uuids(campaign), 1))
    assert uuids(campaign, status=MessageStatus.SENT) == uuids(campaign)
    assert len(smtp.connections()) == CONNECTIONS  # the batch went over every connection at once


def test_one_connection_only_sends_one_message_at_a_time(smtp, no_quiet_hours, make_campaign, settings):
    settings.CAMPAIGN_SMTP_CONNECTIONS = 1
    campaign = email_campaign(make_campaign, 5)
    assert messages_send_batch(campaign_id=campaign.pk).sent == 5
    assert len(smtp.connections()) == 1


def test_a_dropped_connection_retries_only_its_own_message(smtp, no_quiet_hours, make_campaign):
    campaign = email_campaign(make_campaign, 20)
    smtp.drop_message_number = 7
    result = messages_send_batch(campaign_id=campaign.pk)
    assert (result.sent, result.retried) == (19, 1)
    [retried] = Message.objects.filter(campaign=campaign, status=MessageStatus.QUEUED)
    assert retried.error.startswith("SMTP") and retried.attempts == 1
    assert str(retried.uuid) not in smtp.message_ids()
    # Every other message arrived once: the lanes went on (whether the one whose connection went
    # away opened a new one depends on whether messages were left for it, a matter of timing).
    assert smtp.message_ids() == Counter(dict.fromkeys(uuids(campaign, status=MessageStatus.SENT), 1))


# --- A worker killed mid-batch ---------------------------------------------------------------------

SENDER = """
import django, os, sys
sys.path.insert(0, os.getcwd())
django.setup()
from campaigns.services import messages_send_batch
messages_send_batch(campaign_id=int(sys.argv[1]))
"""


def database_url() -> str:
    db = connection.settings_dict
    credentials = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def test_a_worker_killed_mid_batch_duplicates_at_most_one_message_per_connection(smtp, no_quiet_hours, make_campaign):
    campaign = email_campaign(make_campaign, 60)
    smtp.delay = 0.05  # slow enough to kill the sender with messages in flight on every connection
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "retention_crm.settings",
        "DATABASE_URL": database_url(),
        "EMAIL_URL": f"smtp://127.0.0.1:{smtp.port}",
        "CAMPAIGN_SMTP_CONNECTIONS": str(CONNECTIONS),
        "LOG_LEVEL": "WARNING",
    }
    sender = subprocess.Popen([sys.executable, "-c", SENDER, str(campaign.pk)], cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 60
        while sum(smtp.message_ids().values()) < 15 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sender.poll() is None, "the sender finished before it could be killed"
    finally:
        sender.send_signal(signal.SIGKILL)
        sender.wait(timeout=30)
    # Sends the dead sender had under way reach the server or never will: wait until the arrivals
    # stop changing (a loaded machine can take longer than a few of the server's delays).
    settled, last = time.monotonic() + 10, -1
    while (arrivals := sum(smtp.message_ids().values())) != last and time.monotonic() < settled:
        last = arrivals
        time.sleep(0.3)
    arrived = set(smtp.message_ids())
    # Sent and not known to be: no receipt (sent_at) on a message the server accepted.
    unrecorded = arrived & uuids(campaign, status=MessageStatus.SENDING, sent_at__isnull=True)
    assert len(unrecorded) <= CONNECTIONS
    assert not uuids(campaign, sent_at__isnull=False) - arrived  # a receipt only for what arrived

    # The sweeper takes the dead sender's messages back; the next sender sends each of them.
    smtp.delay = 0.0
    messages_requeue_stale(older_than=dt.timedelta(0))
    while messages_send_batch(campaign_id=campaign.pk).locked:
        pass
    assert uuids(campaign, status=MessageStatus.SENT) == uuids(campaign)
    counts = smtp.message_ids()
    assert set(counts) == uuids(campaign)  # nothing lost
    duplicates = {message_id for message_id, count in counts.items() if count > 1}
    assert duplicates == unrecorded and len(duplicates) <= CONNECTIONS


# --- Receipts and the sweeper ------------------------------------------------------------------------


@pytest.mark.parametrize("asynchronous", [True, False])
def test_the_sweeper_completes_a_receipted_message_instead_of_sending_it_again(
    smtp, no_quiet_hours, make_campaign, settings, asynchronous
):
    from campaigns.offers import bonus_key
    from campaigns.services.send_receipts import send_receipt_write
    from customers.models import PointsEntry

    settings.CAMPAIGN_SEND_RECORD_ASYNC_COMMIT = asynchronous
    lapsed = dt.datetime.now(dt.UTC) - dt.timedelta(days=120)
    customer = Customer.objects.create(external_id="ada", email="ada@example.com", last_purchase_at=lapsed)
    Consent.objects.create(customer=customer, channel="email", granted=True, source="api")
    campaign = make_campaign("reactivation", offer={"bonus_points": 150})
    campaign_evaluate(campaign_id=campaign.pk)
    # What a sender leaves when it dies right after a send's receipt: the message still "sending".
    message = Message.objects.get(campaign=campaign)
    sent_at = dt.datetime.now(dt.UTC)
    Message.objects.filter(pk=message.pk).update(status=MessageStatus.SENDING, claimed_at=sent_at, attempts=1)
    send_receipt_write(message_id=message.pk, sent_at=sent_at, provider_id=f"<{message.uuid}@example.com>")

    assert messages_requeue_stale(older_than=dt.timedelta(0)) == 1
    message.refresh_from_db()
    assert (message.status, message.sent_at, message.touched_at) == (MessageStatus.SENT, sent_at, sent_at)
    assert messages_requeue_stale(older_than=dt.timedelta(0)) == 0
    assert messages_send_batch(campaign_id=campaign.pk).locked == 0 and smtp.message_ids() == Counter()
    entries = PointsEntry.objects.filter(idempotency_key=bonus_key(message.uuid))
    assert [(entry.kind, entry.points) for entry in entries] == [("bonus", 150)]


def test_a_receipt_never_completes_a_message_no_longer_sending(smtp, no_quiet_hours, make_campaign):
    from campaigns.services.send_receipts import send_receipt_write

    campaign = email_campaign(make_campaign, 1)
    message = Message.objects.get(campaign=campaign)  # queued: e.g. the sweeper took it back already
    send_receipt_write(message_id=message.pk, sent_at=dt.datetime.now(dt.UTC), provider_id="x")
    message.refresh_from_db()
    assert message.status == MessageStatus.QUEUED and message.sent_at is None
