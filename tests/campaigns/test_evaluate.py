"""campaign_evaluate: one statement per campaign; idempotent per dedupe key; control group; quiet hours;
the frequency cap defers, then suppresses; the counts it answers."""

import datetime as dt
import threading

import pytest
from django.db import connection

from campaigns.models import Message, MessageStatus
from campaigns.services import campaign_evaluate
from campaigns.services.steps_sql import HOLDOUT_BUCKETS, holdout_bucket
from customers.models import Consent, Customer
from tests.campaigns.conftest import tz

pytestmark = pytest.mark.django_db
LAPSED = dt.timedelta(days=100)


def lapsed_customers(count: int, now: dt.datetime, **fields) -> list[Customer]:
    """Many customers quickly (two INSERTs), all lapsed and consenting to email."""
    customers = Customer.objects.bulk_create(
        [
            Customer(external_id=f"bulk-{i:06d}", email=f"b{i}@example.com", last_purchase_at=now - LAPSED, **fields)
            for i in range(count)
        ]
    )
    Consent.objects.bulk_create([Consent(customer=c, channel="email", granted=True, source="api") for c in customers])
    return customers


def statuses(campaign) -> dict[str, int]:
    counts: dict[str, int] = {}
    for status in Message.objects.filter(campaign=campaign).values_list("status", flat=True):
        counts[status] = counts.get(status, 0) + 1
    return counts


def test_evaluation_is_one_statement_whatever_the_number_of_customers(
    make_campaign, now, django_assert_max_num_queries
):
    lapsed_customers(300, now)
    campaign = make_campaign("reactivation")
    # Campaign and policy reads, the database's time zone names (once per process), the savepoint
    # pair, the INSERT ... SELECT and the timestamp: never a query per customer.
    with django_assert_max_num_queries(7):
        result = campaign_evaluate(campaign_id=campaign.pk, now=now)
    assert result.queued == 300


def test_running_twice_creates_no_second_message_for_any_key(make_campaign, now):
    lapsed_customers(50, now)
    campaign = make_campaign("reactivation", holdout_percent=20)
    first = campaign_evaluate(campaign_id=campaign.pk, now=now)
    second = campaign_evaluate(campaign_id=campaign.pk, now=now + dt.timedelta(minutes=5))
    assert first.queued + first.held_out == 50
    assert second.counts() == {"queued": 0, "held_out": 0, "suppressed": 0, "deferred": 0}
    assert Message.objects.filter(campaign=campaign).count() == 50


@pytest.mark.django_db(transaction=True)
def test_concurrent_evaluations_of_one_campaign_create_each_message_once(make_campaign, now):
    lapsed_customers(400, now)
    campaign = make_campaign("reactivation", holdout_percent=10)
    results, errors = [], []
    start = threading.Barrier(4)

    def evaluate() -> None:
        try:
            start.wait()
            results.append(campaign_evaluate(campaign_id=campaign.pk, now=now))
        except Exception as error:  # surfaced below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=evaluate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sum(r.queued + r.held_out for r in results) == 400
    assert Message.objects.filter(campaign=campaign).count() == 400


def test_holdout_share_is_within_statistical_bounds_and_stable_per_customer(make_campaign, now):
    customers = lapsed_customers(4000, now)
    campaign = make_campaign("reactivation", holdout_percent=10)
    result = campaign_evaluate(campaign_id=campaign.pk, now=now)
    # Binomial(4000, 0.1): mean 400, sd 19; four sd either side fails a fair hash once in ~16,000 runs.
    assert 324 <= result.held_out <= 476
    assert result.queued + result.held_out == 4000
    held = set(
        Message.objects.filter(campaign=campaign, status=MessageStatus.HELD_OUT).values_list("customer_id", flat=True)
    )
    expected = {c.pk for c in customers if holdout_bucket(campaign.pk, c.pk) < 10 * HOLDOUT_BUCKETS // 100}
    assert held == expected  # the SQL hash is the documented, stable md5(campaign:customer)
    held_out = Message.objects.filter(campaign=campaign, status=MessageStatus.HELD_OUT).first()
    assert held_out.touched_at == held_out.scheduled_at  # the control group's "would have been sent"


def test_holdout_zero_and_fifty_percent(make_campaign, now):
    lapsed_customers(1000, now)
    none_held = campaign_evaluate(campaign_id=make_campaign("reactivation", holdout_percent=0).pk, now=now)
    assert none_held.held_out == 0
    half = campaign_evaluate(campaign_id=make_campaign("reactivation", holdout_percent=50).pk, now=now)
    assert 420 <= half.held_out <= 580


# --- Quiet hours --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("local_time", "timezone_name", "expected_local_send"),
    [
        (dt.time(8, 59, 59), "America/New_York", dt.time(9, 0)),
        (dt.time(9, 0, 0), "America/New_York", dt.time(9, 0)),
        (dt.time(20, 59, 59), "Asia/Tokyo", dt.time(20, 59, 59)),
        (dt.time(21, 0, 0), "Asia/Tokyo", dt.time(9, 0)),  # the next morning
        (dt.time(23, 30), "Europe/Berlin", dt.time(9, 0)),
        (dt.time(3, 0), "UTC", dt.time(9, 0)),
    ],
)
def test_quiet_hours_move_the_send_to_their_end_in_the_customers_time_zone(
    make_customer, make_campaign, local_time, timezone_name, expected_local_send
):
    zone = tz(timezone_name)
    local_now = dt.datetime.combine(dt.date(2026, 3, 10), local_time, tzinfo=zone)
    make_customer(timezone=timezone_name, last_purchase_at=local_now - LAPSED)
    campaign = make_campaign("reactivation")
    campaign_evaluate(campaign_id=campaign.pk, now=local_now)
    send_at = Message.objects.get(campaign=campaign).send_at.astimezone(zone)
    assert send_at.time() == expected_local_send
    assert send_at >= local_now
    assert send_at - local_now < dt.timedelta(hours=12, seconds=1)


def test_quiet_hours_are_editable_and_can_be_turned_off(make_customer, make_campaign, policy):
    policy.quiet_hours_start = policy.quiet_hours_end = dt.time(0, 0)
    policy.save()
    late = dt.datetime(2026, 3, 10, 23, 0, tzinfo=dt.UTC)
    make_customer(last_purchase_at=late - LAPSED)
    campaign = make_campaign("reactivation")
    campaign_evaluate(campaign_id=campaign.pk, now=late)
    assert Message.objects.get(campaign=campaign).send_at == late


# --- Frequency cap --------------------------------------------------------------------------------------


def sent_before(customer, other_campaign, *times: dt.datetime) -> None:
    for index, at in enumerate(times):
        Message.objects.create(
            campaign=other_campaign,
            customer=customer,
            channel="email",
            dedupe_key=f"earlier-{customer.pk}-{index}",
            status=MessageStatus.SENT,
            scheduled_at=at,
            send_at=at,
            sent_at=at,
            cap_at=at,
            touched_at=at,
        )


def test_over_the_cap_a_message_is_deferred_until_the_oldest_send_leaves_the_window(make_customer, make_campaign, now):
    customer = make_customer(last_purchase_at=now - LAPSED)
    earlier = make_campaign("welcome")
    sent_before(customer, earlier, now - dt.timedelta(days=6), now - dt.timedelta(days=2), now - dt.timedelta(hours=1))
    campaign = make_campaign("reactivation")
    result = campaign_evaluate(campaign_id=campaign.pk, now=now)
    assert result.counts() == {"queued": 0, "held_out": 0, "suppressed": 0, "deferred": 1}
    message = Message.objects.get(campaign=campaign)
    assert message.status == MessageStatus.QUEUED and message.reason == "frequency_cap"
    assert message.send_at == now + dt.timedelta(days=1)  # 6 days ago + the 7-day window, at noon (not quiet)


def test_over_the_cap_beyond_max_defer_hours_the_message_is_suppressed(make_customer, make_campaign, now):
    earlier = make_campaign("welcome")
    within = make_customer(external_id="frees-in-48h", last_purchase_at=now - LAPSED)
    sent_before(within, earlier, now - dt.timedelta(days=5), now - dt.timedelta(days=2), now - dt.timedelta(days=1))
    beyond = make_customer(external_id="frees-in-48h-1s", last_purchase_at=now - LAPSED)
    sent_before(
        beyond,
        earlier,
        now - dt.timedelta(days=5) + dt.timedelta(seconds=1),
        now - dt.timedelta(days=2),
        now - dt.timedelta(days=1),
    )
    campaign = make_campaign("reactivation")
    result = campaign_evaluate(campaign_id=campaign.pk, now=now)
    assert result.deferred == 1 and result.suppressed == 1
    suppressed = Message.objects.get(campaign=campaign, status=MessageStatus.SUPPRESSED)
    assert suppressed.customer == beyond and suppressed.reason == "frequency_cap"


def test_sends_older_than_the_window_do_not_count(make_customer, make_campaign, now):
    customer = make_customer(last_purchase_at=now - LAPSED)
    week = dt.timedelta(days=7)
    sent_before(customer, make_campaign("welcome"), now - week, now - week - dt.timedelta(hours=1), now - 2 * week)
    result = campaign_evaluate(campaign_id=make_campaign("reactivation").pk, now=now)
    assert result.queued == 1 and result.deferred == 0
