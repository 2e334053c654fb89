"""Sending: claim, re-check, render, send, record — consent rechecked, the cap at send time, channels
and their headers, transient and permanent errors, offers, the sweeper."""

import datetime as dt
import email
import uuid

import pytest
from django.core import mail

from campaigns.channels import development
from campaigns.content.links import LinkMaker
from campaigns.models import Message
from campaigns.offers import bonus_key
from campaigns.services import (
    campaign_evaluate,
    campaign_status_set,
    messages_expire_stale,
    messages_requeue_stale,
    messages_send_batch,
)
from campaigns.services.sending import MAX_SEND_ATTEMPTS, retry_delay
from campaigns.tokens import unsubscribe_token_read
from customers.models import Consent, ConsentSource, PointsEntry
from customers.services import consent_set, customer_erase

pytestmark = pytest.mark.django_db
LAPSED = dt.timedelta(days=100)


@pytest.fixture
def lapsed(make_customer, now):
    def make(**fields):
        return make_customer(last_purchase_at=now - LAPSED, **fields)

    return make


def evaluated(make_campaign, now, **fields):
    campaign = make_campaign("reactivation", **fields)
    campaign_evaluate(campaign_id=campaign.pk, now=now)
    return campaign


def test_a_batch_is_sent_in_a_bounded_number_of_queries(lapsed, make_campaign, now, django_assert_max_num_queries):
    for _ in range(60):
        lapsed()
    campaign = evaluated(make_campaign, now)
    with django_assert_max_num_queries(20):
        result = messages_send_batch(campaign_id=campaign.pk, now=now)
    assert result.sent == 60
    assert len(mail.outbox) == 60
    assert set(Message.objects.filter(campaign=campaign).values_list("status", flat=True)) == {"sent"}


def test_consent_revoked_between_evaluation_and_send_is_suppressed(lapsed, make_campaign, now):
    keeps, revokes, erased = lapsed(external_id="keeps"), lapsed(external_id="revokes"), lapsed(external_id="erased")
    campaign = evaluated(make_campaign, now)
    consent_set(customer=revokes, channel="email", granted=False, source=ConsentSource.API)
    customer_erase(external_id=erased.external_id, actor="test")
    result = messages_send_batch(campaign_id=campaign.pk, now=now)
    assert (result.sent, result.suppressed) == (1, 2)
    assert [m.to for m in mail.outbox] == [[keeps.email]]
    for customer in (revokes, erased):
        message = Message.objects.get(campaign=campaign, customer=customer)
        assert (message.status, message.reason) == ("suppressed", "no_consent")
        assert message.sent_at is None


def test_an_address_removed_since_selection_is_suppressed(lapsed, make_campaign, now):
    customer = lapsed()
    campaign = evaluated(make_campaign, now)
    customer.email = ""
    customer.save()
    messages_send_batch(campaign_id=campaign.pk, now=now)
    message = Message.objects.get(campaign=campaign)
    assert (message.status, message.reason) == ("suppressed", "no_address")


def test_nothing_goes_out_before_its_send_time_or_while_the_campaign_is_paused(lapsed, make_campaign, now):
    lapsed(timezone="Asia/Tokyo")  # noon UTC is 21:00 in Tokyo: quiet until 09:00 JST = 00:00 UTC
    campaign = evaluated(make_campaign, now)
    assert messages_send_batch(campaign_id=campaign.pk, now=now).sent == 0
    next_morning = dt.datetime(2026, 3, 11, 0, 0, tzinfo=dt.UTC)
    campaign_status_set(campaign_id=campaign.pk, status="paused")
    assert messages_send_batch(campaign_id=campaign.pk, now=next_morning).sent == 0
    campaign_status_set(campaign_id=campaign.pk, status="active")
    assert messages_send_batch(campaign_id=campaign.pk, now=next_morning - dt.timedelta(seconds=1)).sent == 0
    assert messages_send_batch(campaign_id=campaign.pk, now=next_morning).sent == 1


def test_a_late_sender_does_not_send_into_quiet_hours(lapsed, make_campaign, now):
    lapsed()  # UTC: due at noon
    campaign = evaluated(make_campaign, now)
    late = dt.datetime(2026, 3, 10, 22, 0, tzinfo=dt.UTC)
    result = messages_send_batch(campaign_id=campaign.pk, now=late)
    assert (result.sent, result.deferred) == (0, 1)
    assert Message.objects.get(campaign=campaign).send_at == dt.datetime(2026, 3, 11, 9, 0, tzinfo=dt.UTC)


def test_the_cap_holds_at_send_time_across_campaigns(lapsed, make_campaign, now, policy):
    policy.max_messages, policy.cap_days = 1, 1
    policy.save()
    customer = lapsed()
    first = evaluated(make_campaign, now)
    second = evaluated(make_campaign, now)  # both queued: at evaluation nothing had been sent yet
    assert messages_send_batch(campaign_id=first.pk, now=now).sent == 1
    result = messages_send_batch(campaign_id=second.pk, now=now)
    assert (result.sent, result.deferred) == (0, 1)
    deferred = Message.objects.get(campaign=second, customer=customer)
    assert (deferred.status, deferred.reason) == ("queued", "frequency_cap")
    assert deferred.send_at == now + dt.timedelta(days=1)
    assert messages_send_batch(campaign_id=second.pk, now=now + dt.timedelta(days=1)).sent == 1


def test_the_cap_counts_messages_of_one_batch_for_the_same_customer(make_customer, make_campaign, now, policy):
    from tests.factories import CartFactory, CartItemFactory

    policy.max_messages, policy.max_defer_hours = 1, 0
    policy.save()
    customer = make_customer()
    for hours in (2, 3):
        CartItemFactory(cart=CartFactory(customer=customer, updated_at=now - dt.timedelta(hours=hours)))
    campaign = make_campaign("abandoned_cart", body="{{ cart.items|length }} items")
    campaign_evaluate(campaign_id=campaign.pk, now=now)
    result = messages_send_batch(campaign_id=campaign.pk, now=now)
    assert (result.sent, result.suppressed) == (1, 1)
    assert Message.objects.get(campaign=campaign, status="suppressed").reason == "frequency_cap"


# --- Email ----------------------------------------------------------------------------------------------


def test_email_carries_message_id_and_one_click_unsubscribe_headers(lapsed, make_campaign, now):
    lapsed(first_name="Ada")
    campaign = evaluated(make_campaign, now, subject="Hi {{ customer.first_name }}", body="Come back soon.")
    messages_send_batch(campaign_id=campaign.pk, now=now)
    message = Message.objects.get(campaign=campaign)
    [sent] = mail.outbox
    parsed = email.message_from_bytes(sent.message().as_bytes())
    assert parsed["Message-ID"] == f"<{message.uuid}@example.com>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = parsed["List-Unsubscribe"].strip().strip("<>").replace("\n", "").replace(" ", "")
    assert link.startswith("http://127.0.0.1:8000/unsubscribe/")
    assert unsubscribe_token_read(link.rsplit("/", 1)[1]) == message.uuid
    assert sent.subject == "Hi Ada"
    assert f"Unsubscribe: {link}" in sent.body  # a visible link too, when the template has none
    assert message.provider_message_id == f"<{message.uuid}@example.com>"


# --- HTTP channels ------------------------------------------------------------------------------------


def webhook_campaign(make_campaign, now, **fields):
    return evaluated(make_campaign, now, channel="webhook", subject="", body="Hi {{ customer.first_name }}", **fields)


def test_http_channel_sends_the_uuid_as_idempotency_key_with_the_configured_auth(
    make_customer, make_campaign, now, webhook_to_sink
):
    customer = make_customer(channels=("webhook",), last_purchase_at=now - LAPSED, first_name="Grace")
    campaign = webhook_campaign(make_campaign, now)
    assert messages_send_batch(campaign_id=campaign.pk, now=now).sent == 1
    [request] = webhook_to_sink.received
    message = Message.objects.get(campaign=campaign)
    assert request.key == str(message.uuid)
    assert request.headers["authorization"] == "Bearer provider-token"
    assert request.body["to"] == customer.external_id and request.body["body"] == "Hi Grace"
    assert request.body["id"] == str(message.uuid)
    assert message.provider_message_id == "provider-1"


@pytest.mark.parametrize("status", [503, 429, 500])
def test_transient_errors_retry_with_exponential_backoff(make_customer, make_campaign, now, webhook_to_sink, status):
    make_customer(channels=("webhook",), last_purchase_at=now - LAPSED)
    campaign = webhook_campaign(make_campaign, now)
    webhook_to_sink.statuses[:] = [status, status]
    first = messages_send_batch(campaign_id=campaign.pk, now=now)
    assert first.retried == 1
    message = Message.objects.get(campaign=campaign)
    assert (message.status, message.attempts) == ("queued", 1)
    assert message.send_at == now + retry_delay(1) == now + dt.timedelta(seconds=60)
    assert f"HTTP {status}" in message.error
    assert messages_send_batch(campaign_id=campaign.pk, now=now + dt.timedelta(seconds=59)).claimed == 0
    messages_send_batch(campaign_id=campaign.pk, now=now + dt.timedelta(seconds=60))
    message.refresh_from_db()
    assert message.send_at == now + dt.timedelta(seconds=60) + dt.timedelta(seconds=120)  # doubled
    third = messages_send_batch(campaign_id=campaign.pk, now=message.send_at)
    assert third.sent == 1
    message.refresh_from_db()
    assert (message.status, message.attempts, message.error) == ("sent", 3, "")
    assert len(webhook_to_sink.received) == 1


def test_a_permanent_error_fails_the_message_with_the_error(make_customer, make_campaign, now, webhook_to_sink):
    make_customer(channels=("webhook",), last_purchase_at=now - LAPSED)
    campaign = webhook_campaign(make_campaign, now)
    webhook_to_sink.statuses[:] = [400]
    assert messages_send_batch(campaign_id=campaign.pk, now=now).failed == 1
    message = Message.objects.get(campaign=campaign)
    assert message.status == "failed" and message.error.startswith("HTTP 400")
    assert message.cap_at is None and message.touched_at is None  # counts neither against the cap nor for attribution


def test_network_errors_are_transient_and_attempts_are_bounded(make_customer, make_campaign, now, settings):
    settings.CAMPAIGN_CHANNELS = {
        **settings.CAMPAIGN_CHANNELS,
        "webhook": {"BACKEND": "http", "URL": "http://127.0.0.1:9/nothing-listens", "TIMEOUT": 2},
    }
    make_customer(channels=("webhook",), last_purchase_at=now - LAPSED)
    campaign = webhook_campaign(make_campaign, now)
    at = now
    for attempt in range(1, MAX_SEND_ATTEMPTS + 1):
        result = messages_send_batch(campaign_id=campaign.pk, now=at)
        message = Message.objects.get(campaign=campaign)
        assert message.attempts == attempt
        at = message.send_at
    assert result.failed == 1
    assert message.status == "failed" and "127.0.0.1" in message.error


def test_an_unconfigured_channel_keeps_its_messages_for_later(make_customer, make_campaign, now, settings):
    settings.CAMPAIGN_CHANNELS = {**settings.CAMPAIGN_CHANNELS, "sms": {"BACKEND": "http", "URL": ""}}
    make_customer(channels=("sms",), phone="+4915112345678", last_purchase_at=now - LAPSED)
    campaign = evaluated(make_campaign, now, channel="sms", subject="")
    assert messages_send_batch(campaign_id=campaign.pk, now=now).retried == 1
    message = Message.objects.get(campaign=campaign)
    assert message.status == "queued" and "no endpoint URL" in message.error


def test_sms_and_push_use_their_own_backends(make_customer, make_campaign, now):
    make_customer(channels=("sms", "push"), phone="+4915112345678", last_purchase_at=now - LAPSED)
    for channel in ("sms", "push"):
        messages_send_batch(campaign_id=evaluated(make_campaign, now, channel=channel, subject="").pk, now=now)
    assert [(item["channel"], item["to"]) for item in development.outbox] == [
        ("sms", "+4915112345678"),
        ("push", Message.objects.first().customer.external_id),
    ]


# --- Offers -------------------------------------------------------------------------------------------


def test_bonus_points_are_credited_once_per_message_even_if_it_is_sent_again(lapsed, make_campaign, now):
    customer = lapsed()
    campaign = evaluated(
        make_campaign, now, offer={"bonus_points": 150}, body="{{ offer.bonus_points }} points for you"
    )
    messages_send_batch(campaign_id=campaign.pk, now=now)
    message = Message.objects.get(campaign=campaign)
    assert mail.outbox[0].body.startswith("150 points for you")
    # A re-send of the same message (its record was lost): the ledger's idempotency key holds.
    Message.objects.filter(pk=message.pk).update(status="queued")
    messages_send_batch(campaign_id=campaign.pk, now=now)
    assert len(mail.outbox) == 2
    entries = PointsEntry.objects.filter(idempotency_key=bonus_key(message.uuid))
    assert [(e.kind, e.points) for e in entries] == [("bonus", 150)]
    customer.refresh_from_db()
    assert customer.points_balance == 150


def test_discount_codes_are_unique_per_message_and_stable_across_resends(lapsed, make_campaign, now):
    for _ in range(20):
        lapsed()
    campaign = evaluated(
        make_campaign,
        now,
        offer={"discount_percent": 15, "code_prefix": "BACK"},
        body="{{ offer.discount_percent }}% off with {{ offer.discount_code }}",
    )
    messages_send_batch(campaign_id=campaign.pk, now=now)
    codes = dict(Message.objects.filter(campaign=campaign).values_list("pk", "discount_code"))
    assert len(set(codes.values())) == 20 and all(code.startswith("BACK-") for code in codes.values())
    assert {m.body.split(" with ")[1].split()[0] for m in mail.outbox} == set(codes.values())
    Message.objects.filter(campaign=campaign).update(status="queued")
    messages_send_batch(campaign_id=campaign.pk, now=now)
    assert dict(Message.objects.filter(campaign=campaign).values_list("pk", "discount_code")) == codes


# --- Templates in the sandbox ---------------------------------------------------------------------------


def test_templates_render_cart_items_points_and_the_customers_local_time(make_customer, make_campaign, now):
    from tests.factories import CartFactory, CartItemFactory

    customer = make_customer(first_name="Lin", timezone="Asia/Tokyo")
    cart = CartFactory(customer=customer, updated_at=now - dt.timedelta(hours=3))
    CartItemFactory(cart=cart, name="Teapot", quantity=2, unit_price="20.00")
    campaign = make_campaign(
        "abandoned_cart",
        body="{% for item in cart.items %}{{ item.quantity }} x {{ item.name }}{% endfor %}; total {{ cart.total }}; "
        "left at {{ cart.updated_at|date:'H:i' }}; points {{ points.balance }}",
    )
    campaign_evaluate(campaign_id=campaign.pk, now=now - dt.timedelta(hours=12))  # before the cart was left
    campaign_evaluate(campaign_id=campaign.pk, now=now + dt.timedelta(hours=12))  # 09:00 in Tokyo next day
    messages_send_batch(campaign_id=campaign.pk, now=now + dt.timedelta(hours=12))
    assert mail.outbox[0].body.startswith("2 x Teapot; total 40.00; left at 18:00; points 0")


# --- Sweeper and housekeeping -----------------------------------------------------------------------------


def test_the_sweeper_requeues_messages_a_dead_worker_left_in_sending(lapsed, make_campaign, now, settings):
    lapsed()
    campaign = evaluated(make_campaign, now)
    message = Message.objects.get(campaign=campaign)
    claimed_at = now - dt.timedelta(seconds=settings.CAMPAIGN_SENDING_STALE_SECONDS)
    Message.objects.filter(pk=message.pk).update(status="sending", claimed_at=claimed_at, cap_at=claimed_at)
    assert messages_requeue_stale(now=now - dt.timedelta(seconds=1)) == 0  # not stale yet
    assert messages_requeue_stale(now=now) == 1
    message.refresh_from_db()
    assert (message.status, message.cap_at) == ("queued", None)
    assert messages_send_batch(campaign_id=campaign.pk, now=now).sent == 1
    message.refresh_from_db()
    assert message.uuid == Message.objects.get(pk=message.pk).uuid  # same idempotency key on the re-send


def test_queued_messages_a_week_overdue_expire(lapsed, make_campaign, now):
    lapsed()
    campaign = evaluated(make_campaign, now)
    assert messages_expire_stale(now=now + dt.timedelta(days=7)) == 0
    assert messages_expire_stale(now=now + dt.timedelta(days=7, seconds=1)) == 1
    message = Message.objects.get(campaign=campaign)
    assert (message.status, message.reason) == ("suppressed", "expired")


def test_consents_are_untouched_by_sending(lapsed, make_campaign, now):
    customer = lapsed()
    messages_send_batch(campaign_id=evaluated(make_campaign, now).pk, now=now)
    assert Consent.objects.get(customer=customer).granted is True
    assert uuid.UUID(str(Message.objects.get().uuid))


def test_file_and_console_backends_for_development(make_customer, make_campaign, now, settings, tmp_path, capsys):
    import json

    settings.CAMPAIGN_CHANNELS = {
        **settings.CAMPAIGN_CHANNELS,
        "sms": {"BACKEND": "file", "DIRECTORY": str(tmp_path)},
        "push": {"BACKEND": "console"},
    }
    make_customer(channels=("sms", "push"), phone="+4915112345678", last_purchase_at=now - LAPSED)
    sms = evaluated(make_campaign, now, channel="sms", subject="", body="Hi from SMS")
    push = evaluated(make_campaign, now, channel="push", subject="Title", body="Hi from push")
    messages_send_batch(campaign_id=sms.pk, now=now)
    messages_send_batch(campaign_id=push.pk, now=now)
    [line] = (tmp_path / "sms.jsonl").read_text().splitlines()
    record = json.loads(line)
    message_uuid = str(Message.objects.get(campaign=sms).uuid)
    assert (record["to"], record["body"], record["id"]) == (
        "+4915112345678",
        f"Hi from SMS\n\nPreferences: {LinkMaker().preferences_url(message_uuid)}",
        message_uuid,
    )
    assert "Hi from push" in capsys.readouterr().out
