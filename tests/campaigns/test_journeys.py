"""Journeys (SPEC §4.1): entries, waits in the database, splits, tags, goal exits, re-entry,
held-out entries, and one message per (entry, step). The services take a clock: time moves
without sleeping."""

import datetime as dt
import re

import pytest
from django.db import connection

from campaigns.journey import journey_of
from campaigns.models import Entry, Message, MessageStatus, StepCount
from campaigns.services import campaign_evaluate, campaign_status_set, campaign_update, messages_send_batch
from campaigns.services.advancing import step_sql
from campaigns.services.evaluation import entering_sql
from campaigns.services.policy import contact_policy_get
from customers.services import PurchaseInput, purchase_record
from tests.campaigns.conftest import NOON

pytestmark = pytest.mark.django_db
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)

SERIES = [
    {"key": "reminder", "type": "message", "subject": "Your cart", "body": "Hi {{ customer.first_name }}"},
    {"key": "pause", "type": "wait", "minutes": 1440},
    {
        "key": "nudge",
        "type": "message",
        "subject": "Still thinking?",
        "body": "Here is a code: {{ offer.discount_code }}",
        "offer": {"discount_percent": 10, "code_prefix": "CART"},
    },
]


@pytest.fixture
def lapsed(make_customer):
    def make(count: int = 1, **fields):
        return [
            make_customer(external_id=f"j-{i}", last_purchase_at=NOON - dt.timedelta(days=100), **fields)
            for i in range(count)
        ]

    return make


def entries(campaign):
    return list(Entry.objects.filter(campaign=campaign).order_by("pk"))


def messages_of(campaign, **filters):
    return list(Message.objects.filter(campaign=campaign, **filters).order_by("pk"))


def test_a_series_sends_its_steps_in_order_with_the_wait_in_the_database(make_campaign, lapsed):
    lapsed(3)
    campaign = make_campaign("reactivation", steps=SERIES)
    first = campaign_evaluate(campaign_id=campaign.pk, now=NOON)
    assert first.queued == 3
    assert {m.step_key for m in messages_of(campaign)} == {"reminder"}
    assert {(e.state, e.step_key, e.next_at) for e in entries(campaign)} == {("active", "pause", NOON + DAY)}

    # Before the wait ends, nothing moves; after it, the second message, once.
    assert campaign_evaluate(campaign_id=campaign.pk, now=NOON + DAY - HOUR).queued == 0
    later = campaign_evaluate(campaign_id=campaign.pk, now=NOON + DAY)
    assert later.queued == 3
    assert campaign_evaluate(campaign_id=campaign.pk, now=NOON + DAY + HOUR).queued == 0
    assert sorted(m.step_key for m in messages_of(campaign)) == ["nudge"] * 3 + ["reminder"] * 3
    assert {e.state for e in entries(campaign)} == {"completed"}
    counts = dict(StepCount.objects.filter(campaign=campaign).values_list("step_key", "entered"))
    assert counts == {"reminder": 3, "pause": 3, "nudge": 3}


def test_a_purchase_in_the_middle_of_a_wait_ends_the_entry_at_once(make_campaign, lapsed):
    (customer,) = lapsed(1)
    campaign = make_campaign("reactivation", steps=SERIES)
    campaign_evaluate(campaign_id=campaign.pk, now=NOON)
    purchase_record(
        data=PurchaseInput.clean(
            {"external_id": "o-1", "customer": customer.external_id, "placed_at": NOON + HOUR, "total": "10.00"}
        )
    )
    (entry,) = entries(campaign)
    assert (entry.state, entry.exit_reason) == ("exited", "goal")
    # Advancing late sends nothing more.
    assert campaign_evaluate(campaign_id=campaign.pk, now=NOON + 3 * DAY).queued == 0
    assert [m.step_key for m in messages_of(campaign)] == ["reminder"]


def test_held_out_entries_walk_the_same_steps_and_are_sent_nothing(make_campaign, lapsed):
    lapsed(40)
    campaign = make_campaign("reactivation", steps=SERIES, holdout_percent=50)
    campaign_evaluate(campaign_id=campaign.pk, now=NOON)
    campaign_evaluate(campaign_id=campaign.pk, now=NOON + DAY)
    held = [e for e in entries(campaign) if e.held_out]
    assert 0 < len(held) < 40
    held_messages = messages_of(campaign, entry__held_out=True)
    assert len(held_messages) == 2 * len(held)
    assert {m.status for m in held_messages} == {MessageStatus.HELD_OUT}
    messages_send_batch(campaign_id=campaign.pk, now=NOON + DAY)
    assert not Message.objects.filter(entry__held_out=True, sent_at__isnull=False).exists()


def test_a_split_on_click_and_a_tag_step(make_campaign, lapsed):
    clicker, other = lapsed(2)
    steps = [
        {"key": "hello", "type": "message", "subject": "Hi", "body": "Come back"},
        {"key": "think", "type": "wait", "minutes": 60},
        {"key": "clicked", "type": "split", "condition": {"clicked_previous": True}, "yes": "mark", "no": "again"},
        {"key": "again", "type": "message", "subject": "Hi again", "body": "Really, come back"},
        {"key": "done", "type": "wait", "minutes": 1},
        {"key": "mark", "type": "tag", "add": ["engaged"]},
    ]
    campaign = make_campaign("reactivation", steps=steps)
    campaign_evaluate(campaign_id=campaign.pk, now=NOON)
    Message.objects.filter(customer=clicker).update(status="clicked", clicked_at=NOON, sent_at=NOON)
    campaign_evaluate(campaign_id=campaign.pk, now=NOON + HOUR)
    clicker.refresh_from_db()
    other.refresh_from_db()
    assert [m.step_key for m in Message.objects.filter(customer=clicker)] == ["hello"]
    assert sorted(m.step_key for m in Message.objects.filter(customer=other)) == ["again", "hello"]
    assert "engaged" in clicker.tags
    assert "engaged" not in other.tags
    # The other one waits a minute, then goes on to the tag step too.
    campaign_evaluate(campaign_id=campaign.pk, now=NOON + HOUR + dt.timedelta(minutes=1))
    other.refresh_from_db()
    assert "engaged" in other.tags
    assert {e.state for e in entries(campaign)} == {"completed"}


def test_reentry_never_and_after_days(make_campaign, lapsed):
    (customer,) = lapsed(1)
    once = make_campaign("reactivation", steps=SERIES[:1])
    campaign_evaluate(campaign_id=once.pk, now=NOON)
    customer.last_purchase_at = NOON - dt.timedelta(days=95)  # a new dedupe key
    customer.save()
    campaign_evaluate(campaign_id=once.pk, now=NOON + 10 * DAY)
    assert len(entries(once)) == 1

    again = make_campaign("reactivation", steps=SERIES[:1], reentry={"after_days": 5}, name="again")
    campaign_evaluate(campaign_id=again.pk, now=NOON)
    customer.last_purchase_at = NOON - dt.timedelta(days=94)
    customer.save()
    campaign_evaluate(campaign_id=again.pk, now=NOON + 2 * DAY)
    assert len(entries(again)) == 1
    campaign_evaluate(campaign_id=again.pk, now=NOON + 6 * DAY)
    assert len(entries(again)) == 2


def test_removing_a_step_needs_a_pause_and_ends_entries_waiting_there(make_campaign, lapsed):
    lapsed(2)
    campaign = make_campaign("reactivation", steps=SERIES)
    campaign_evaluate(campaign_id=campaign.pk, now=NOON)
    with pytest.raises(Exception, match="paused"):
        campaign_update(campaign_id=campaign.pk, data={"steps": SERIES[:1]})
    # Texts may change while active.
    campaign_update(campaign_id=campaign.pk, data={"steps": [dict(SERIES[0], subject="New subject"), *SERIES[1:]]})
    campaign_status_set(campaign_id=campaign.pk, status="paused")
    campaign_update(campaign_id=campaign.pk, data={"steps": [SERIES[0], SERIES[2]]})
    assert {(e.state, e.exit_reason) for e in entries(campaign)} == {("exited", "step_removed")}


def test_a_purchase_before_a_deferred_message_goes_out_suppresses_it(make_campaign, lapsed, policy):
    (customer,) = lapsed(1)
    campaign = make_campaign("reactivation", steps=SERIES)
    late = NOON.replace(hour=22)  # quiet hours: the reminder waits for 09:00
    campaign_evaluate(campaign_id=campaign.pk, now=late)
    (message,) = messages_of(campaign)
    assert message.status == MessageStatus.QUEUED and message.send_at > late
    purchase_record(
        data=PurchaseInput.clean(
            {"external_id": "o-2", "customer": customer.external_id, "placed_at": late + HOUR, "total": "5.00"}
        )
    )
    message.refresh_from_db()
    assert (message.status, message.reason) == ("suppressed", "goal")
    assert messages_send_batch(campaign_id=campaign.pk, now=late + 12 * HOUR).sent == 0


def test_a_later_step_on_another_channel_checks_that_channels_consent_and_address(make_campaign, make_customer):
    lapsed_at = NOON - dt.timedelta(days=100)
    reachable = make_customer(
        external_id="sms-ok", channels=("email", "sms"), phone="+4915100000001", last_purchase_at=lapsed_at
    )
    no_consent = make_customer(
        external_id="sms-no", channels=("email",), phone="+4915100000002", last_purchase_at=lapsed_at
    )
    no_phone = make_customer(external_id="sms-nophone", channels=("email", "sms"), phone="", last_purchase_at=lapsed_at)
    steps = [
        SERIES[0],
        SERIES[1],
        {"key": "text", "type": "message", "channel": "sms", "body": "Your cart is still here"},
    ]
    campaign = make_campaign("reactivation", steps=steps)
    campaign_evaluate(campaign_id=campaign.pk, now=NOON)
    campaign_evaluate(campaign_id=campaign.pk, now=NOON + DAY)
    texts = {m.customer_id: (m.channel, m.status, m.reason) for m in messages_of(campaign, step_key="text")}
    assert texts == {
        reachable.pk: ("sms", "queued", ""),
        no_consent.pk: ("sms", "suppressed", "no_consent"),
        no_phone.pk: ("sms", "suppressed", "no_address"),
    }
    # The campaign's own channel still decides who stays in: all three walked to the end.
    assert {e.state for e in entries(campaign)} == {"completed"}


def _plan(statement) -> str:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + statement.text, statement.params)
        return "\n".join(line for (line,) in cursor.fetchall())


def test_every_cap_lookup_is_done_before_the_first_message_is_inserted(make_campaign, lapsed):
    """Interleaved with the inserts, a cap lookup planned as a sequential scan (the planner does so
    when the message table looks empty) would read every message inserted so far, once per row.
    A sort of the planned messages takes in all rows first, in entering and advancing alike."""
    lapsed(2)
    campaign = make_campaign("reactivation", steps=SERIES)
    entering = entering_sql(campaign=campaign, policy=contact_policy_get(), now=NOON, winners={})
    # The first step's plan, before the entries go in (aliases get numbered: p, p_1, ...).
    assert re.search(r"Sort Key: p(_\d+)?\.customer_id", _plan(entering))
    journey = journey_of(campaign)
    nudge = journey.step("nudge")
    advancing = step_sql(
        campaign=campaign, journey=journey, step=nudge, policy=contact_policy_get(), now=NOON, winner=None
    )
    assert re.search(r"Sort Key: p(_\d+)?\.id\b", _plan(advancing))
