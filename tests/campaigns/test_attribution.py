"""Attribution (SPEC §4): each completed purchase goes to at most one message — the latest sent or
held-out message to the customer whose campaign's window contains it; single and bulk purchase paths."""

import datetime as dt
from decimal import Decimal

import pytest

from campaigns.models import Attribution, Message, MessageStatus
from customers.services import PurchaseInput, purchase_record, purchases_record_bulk

pytestmark = pytest.mark.django_db
T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def touch(campaign, customer, at: dt.datetime, status: str = MessageStatus.SENT, key: str = "") -> Message:
    return Message.objects.create(
        campaign=campaign,
        customer=customer,
        channel="email",
        dedupe_key=key or f"k-{campaign.pk}-{customer.pk}-{at.timestamp()}",
        status=status,
        scheduled_at=at,
        send_at=at,
        sent_at=at if status != MessageStatus.HELD_OUT else None,
        touched_at=at,
    )


def buy(customer, placed_at: dt.datetime, external_id: str, status: str = "completed", total: str = "30.00"):
    purchase, _ = purchase_record(
        data=PurchaseInput.clean(
            {
                "external_id": external_id,
                "customer": customer.external_id,
                "placed_at": placed_at.isoformat(),
                "total": total,
                "status": status,
            }
        )
    )
    return purchase


def attributed(purchase) -> Message | None:
    found = Attribution.objects.filter(purchase=purchase).select_related("message").first()
    return found.message if found else None


def test_the_latest_message_whose_window_holds_the_purchase_gets_it(make_customer, make_campaign):
    customer = make_customer()
    long_window = make_campaign("reactivation", attribution_days=30)
    short_window = make_campaign("welcome", attribution_days=2)
    older = touch(long_window, customer, T0)
    newer = touch(short_window, customer, T0 + dt.timedelta(days=5))
    inside_both = buy(customer, T0 + dt.timedelta(days=6), "o-1")
    assert attributed(inside_both) == newer
    only_older = buy(customer, T0 + dt.timedelta(days=8), "o-2")  # the 2-day window has closed
    assert attributed(only_older) == older
    assert Attribution.objects.get(purchase=only_older).campaign == long_window


def test_window_boundaries_to_the_second(make_customer, make_campaign):
    customer = make_customer()
    campaign = make_campaign("reactivation", attribution_days=7)
    message = touch(campaign, customer, T0)
    assert attributed(buy(customer, T0 - dt.timedelta(seconds=1), "before")) is None
    assert attributed(buy(customer, T0, "at-send")) == message
    assert attributed(buy(customer, T0 + dt.timedelta(days=7) - dt.timedelta(seconds=1), "last-second")) == message
    assert attributed(buy(customer, T0 + dt.timedelta(days=7), "window-closed")) is None


def test_held_out_messages_count_from_when_they_would_have_been_sent(make_customer, make_campaign):
    customer = make_customer()
    campaign = make_campaign("reactivation", attribution_days=7)
    held = touch(campaign, customer, T0, status=MessageStatus.HELD_OUT)
    assert attributed(buy(customer, T0 + dt.timedelta(hours=1), "control-buy")) == held


def test_only_completed_purchases_and_only_sent_or_held_out_messages(make_customer, make_campaign):
    customer = make_customer()
    campaign = make_campaign("reactivation")
    touch(campaign, customer, T0, status=MessageStatus.SUPPRESSED, key="suppressed")
    touch(campaign, customer, T0, status=MessageStatus.FAILED, key="failed")
    assert attributed(buy(customer, T0 + dt.timedelta(hours=1), "p-1")) is None
    clicked = touch(campaign, customer, T0, status=MessageStatus.CLICKED, key="clicked")
    assert attributed(buy(customer, T0 + dt.timedelta(hours=2), "p-2", status="refunded")) is None
    assert attributed(buy(customer, T0 + dt.timedelta(hours=3), "p-3")) == clicked


def test_another_customers_message_never_gets_the_purchase(make_customer, make_campaign):
    buyer, other = make_customer(), make_customer()
    touch(make_campaign("reactivation"), other, T0)
    assert attributed(buy(buyer, T0 + dt.timedelta(hours=1), "p-1")) is None


def test_bulk_ingestion_attributes_the_whole_batch_in_one_statement(make_customer, make_campaign):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    campaign = make_campaign("reactivation", attribution_days=7)
    customers = [make_customer() for _ in range(5)]
    messages = [touch(campaign, customer, T0) for customer in customers]
    batch = [
        {
            "external_id": f"bulk-{i}",
            "customer": customer.external_id,
            "placed_at": (T0 + dt.timedelta(days=1)).isoformat(),
            "total": "10.00",
        }
        for i, customer in enumerate(customers)
    ] + [
        {
            "external_id": "bulk-late",
            "customer": customers[0].external_id,
            "placed_at": (T0 + dt.timedelta(days=8)).isoformat(),
            "total": "10.00",
        },
        {
            "external_id": "bulk-cancelled",
            "customer": customers[1].external_id,
            "placed_at": (T0 + dt.timedelta(days=1)).isoformat(),
            "total": "10.00",
            "status": "cancelled",
        },
    ]
    with CaptureQueriesContext(connection) as queries:
        results = purchases_record_bulk(raw_purchases=batch)
    assert len([q for q in queries.captured_queries if "INSERT INTO campaigns_attribution" in q["sql"]]) == 1
    assert {r.status for r in results} == {"created"}
    pairs = set(Attribution.objects.values_list("purchase__external_id", "message_id"))
    assert pairs == {(f"bulk-{i}", message.pk) for i, message in enumerate(messages)}
    assert Attribution.objects.filter(campaign=campaign).count() == 5
    assert sum(a.purchase.total for a in Attribution.objects.select_related("purchase")) == Decimal("50.00")
