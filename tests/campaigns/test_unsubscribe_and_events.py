"""The signed unsubscribe link (confirmation page, one-click POST, tampered or unknown tokens) and the
providers' callbacks (status progression, hard bounces revoke email consent)."""

import datetime as dt
import json
import time
import uuid

import pytest

from campaigns.models import Message
from campaigns.services import campaign_evaluate, messages_send_batch
from campaigns.tokens import unsubscribe_token
from customers.models import Consent, ConsentEvent
from retention_crm.api.signing import signature_compute

pytestmark = pytest.mark.django_db
SECRET = "callback-secret-for-tests"


@pytest.fixture
def sent_message(make_customer, make_campaign, now) -> Message:
    make_customer(email="ada@example.com", last_purchase_at=now - dt.timedelta(days=100))
    campaign = make_campaign("reactivation")
    campaign_evaluate(campaign_id=campaign.pk, now=now)
    messages_send_batch(campaign_id=campaign.pk, now=now)
    return Message.objects.get(campaign=campaign)


def consent(message: Message, channel: str = "email") -> Consent:
    return Consent.objects.get(customer=message.customer, channel=channel)


# --- Unsubscribe ------------------------------------------------------------------------------------


def test_the_link_opens_a_confirmation_page_and_changes_nothing(client, sent_message):
    response = client.get(f"/unsubscribe/{unsubscribe_token(sent_message.uuid)}")
    assert response.status_code == 200
    assert b"a***@example.com" in response.content and b"<form" in response.content
    assert consent(sent_message).granted is True


def test_confirming_revokes_the_channels_consent_with_source_unsubscribe_link(client, sent_message):
    token = unsubscribe_token(sent_message.uuid)
    response = client.post(f"/unsubscribe/{token}")
    assert response.status_code == 200 and b"unsubscribed" in response.content
    revoked = consent(sent_message)
    assert (revoked.granted, revoked.source) == (False, "unsubscribe_link")
    event = ConsentEvent.objects.filter(customer=sent_message.customer).first()
    assert (event.granted, event.source) == (False, "unsubscribe_link")
    sent_message.refresh_from_db()
    assert sent_message.unsubscribed_at is not None
    assert client.post(f"/unsubscribe/{token}/").status_code == 200  # again: still fine, nothing new
    assert ConsentEvent.objects.filter(customer=sent_message.customer, granted=False).count() == 1


def test_one_click_post_from_a_mail_provider_needs_no_cookie_or_csrf_token(sent_message):
    from django.test import Client

    provider = Client(enforce_csrf_checks=True)
    response = provider.post(
        f"/unsubscribe/{unsubscribe_token(sent_message.uuid)}",
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    assert consent(sent_message).granted is False


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_tampered_or_unknown_token_is_a_400(client, sent_message, method):
    token = unsubscribe_token(sent_message.uuid)
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    other_uuid = token.replace(sent_message.uuid.hex, uuid.uuid4().hex)  # signature no longer matches
    unknown = unsubscribe_token(uuid.uuid4())  # well signed, names no message
    for bad in (tampered, other_uuid, unknown, "garbage", sent_message.uuid.hex):
        assert getattr(client, method)(f"/unsubscribe/{bad}").status_code == 400, bad
    assert consent(sent_message).granted is True


# --- Provider callbacks ---------------------------------------------------------------------------------


def signed_headers(raw: bytes, secret: str = SECRET, timestamp: int | None = None) -> dict[str, str]:
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        "HTTP_X_SIGNATURE_TIMESTAMP": str(timestamp),
        "HTTP_X_SIGNATURE": signature_compute(secret=secret, timestamp=timestamp, body=raw),
    }


def post_raw(client, raw: bytes, headers: dict[str, str]):
    return client.post("/api/v1/campaigns/events", raw, content_type="application/json", **headers)


def post_events(client, body, secret=SECRET, timestamp: int | None = None):
    raw = json.dumps(body).encode()
    headers = signed_headers(raw, secret, timestamp) if secret is not None else {}
    return post_raw(client, raw, headers)


@pytest.fixture
def callback_secret(settings):
    settings.CAMPAIGN_CALLBACK_SECRET = SECRET


def test_callbacks_need_a_valid_signature(client, sent_message, callback_secret):
    event = {"message_id": str(sent_message.uuid), "event": "delivered"}
    assert post_events(client, event, secret=None).status_code == 403
    assert post_events(client, event, secret="wrong").status_code == 403
    assert post_events(client, event).status_code == 200


def test_the_old_static_secret_header_is_not_enough(client, sent_message, callback_secret):
    raw = json.dumps({"message_id": str(sent_message.uuid), "event": "delivered"}).encode()
    response = post_raw(client, raw, {"HTTP_X_CALLBACK_SECRET": SECRET})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


def test_a_signature_over_another_body_is_refused(client, sent_message, callback_secret):
    signed = json.dumps({"message_id": str(sent_message.uuid), "event": "delivered"}).encode()
    tampered = json.dumps({"message_id": str(sent_message.uuid), "event": "bounced", "bounce": "hard"}).encode()
    assert post_raw(client, tampered, signed_headers(signed)).status_code == 403
    assert consent(sent_message).granted is True


def test_a_timestamp_outside_five_minutes_is_refused(client, sent_message, callback_secret):
    event = {"message_id": str(sent_message.uuid), "event": "delivered"}
    # Margins of a few seconds either side of 300 s: a slow request must not move the boundary.
    now = int(time.time())
    assert post_events(client, event, timestamp=now - 305).status_code == 403
    assert post_events(client, event, timestamp=now + 310).status_code == 403
    assert post_events(client, event, timestamp=now - 290).status_code == 200


def test_a_replayed_callback_is_refused(client, sent_message, callback_secret):
    raw = json.dumps({"message_id": str(sent_message.uuid), "event": "delivered"}).encode()
    headers = signed_headers(raw)
    assert post_raw(client, raw, headers).status_code == 200
    replay = post_raw(client, raw, headers)
    assert replay.status_code == 403
    assert "replay" in replay.json()["error"]["message"]


def test_a_rotated_secret_may_send_both_signatures(client, sent_message, callback_secret):
    raw = json.dumps({"message_id": str(sent_message.uuid), "event": "delivered"}).encode()
    headers = signed_headers(raw)
    old = signed_headers(raw, secret="the-old-secret")["HTTP_X_SIGNATURE"]
    headers["HTTP_X_SIGNATURE"] = f"{old}, {headers['HTTP_X_SIGNATURE']}"
    assert post_raw(client, raw, headers).status_code == 200


def test_callbacks_are_throttled_per_address(client, sent_message, callback_secret):
    from django.core.cache import cache

    from retention_crm.api.throttling import CallbackRateThrottle

    cache.clear()
    original = CallbackRateThrottle.THROTTLE_RATES
    CallbackRateThrottle.THROTTLE_RATES = {**original, "callbacks": "3/min"}
    try:
        event = {"message_id": str(sent_message.uuid), "event": "delivered"}
        answers = [post_events(client, event, secret="wrong") for _ in range(4)]
    finally:
        CallbackRateThrottle.THROTTLE_RATES = original
        cache.clear()
    assert [answer.status_code for answer in answers] == [403, 403, 403, 429]
    assert answers[3].json()["error"]["code"] == "throttled"


def test_without_a_configured_secret_every_callback_is_refused(client, sent_message, settings):
    settings.CAMPAIGN_CALLBACK_SECRET = ""
    response = post_events(client, {"message_id": str(sent_message.uuid), "event": "opened"}, secret="")
    assert response.status_code == 403


def test_statuses_only_move_forward(client, sent_message, callback_secret):
    key = str(sent_message.uuid)
    answer = post_events(
        client,
        {
            "events": [
                {"message_id": key, "event": "opened", "at": "2026-03-10T13:00:00Z"},
                {"message_id": key, "event": "delivered", "at": "2026-03-10T12:01:00Z"},
                {"message_id": str(uuid.uuid4()), "event": "clicked"},
            ]
        },
    )
    assert answer.json() == {"processed": 2, "unknown": 1}
    sent_message.refresh_from_db()
    assert sent_message.status == "opened"
    assert sent_message.delivered_at == dt.datetime(2026, 3, 10, 12, 1, tzinfo=dt.UTC)
    post_events(client, {"message_id": key, "event": "clicked"})
    sent_message.refresh_from_db()
    assert sent_message.status == "clicked" and sent_message.clicked_at is not None


def test_a_hard_bounce_fails_the_message_and_revokes_email_consent(client, sent_message, callback_secret):
    post_events(client, {"message_id": str(sent_message.uuid), "event": "bounced", "bounce": "hard"})
    sent_message.refresh_from_db()
    assert (sent_message.status, sent_message.error) == ("failed", "hard bounce")
    assert sent_message.touched_at is None  # nothing to attribute to a message that never arrived
    revoked = consent(sent_message)
    assert (revoked.granted, revoked.source) == (False, "provider")


def test_a_soft_bounce_keeps_the_consent(client, sent_message, callback_secret):
    post_events(client, {"message_id": str(sent_message.uuid), "event": "bounced", "bounce": "soft"})
    sent_message.refresh_from_db()
    assert sent_message.status == "sent" and sent_message.bounced_at is not None
    assert consent(sent_message).granted is True


@pytest.mark.parametrize(
    "body",
    [
        {"message_id": "not-a-uuid", "event": "delivered"},
        {"message_id": str(uuid.uuid4()), "event": "exploded"},
        {"message_id": str(uuid.uuid4()), "event": "delivered", "at": "yesterday"},
        {"message_id": str(uuid.uuid4()), "event": "delivered", "extra": 1},
        {"events": []},
        {"events": "all"},
        [1, 2],
    ],
)
def test_malformed_callbacks_are_a_400_in_the_error_shape(client, callback_secret, body):
    response = post_events(client, body)
    assert response.status_code == 400
    assert set(response.json()["error"]) == {"code", "message", "fields"}


def test_a_callback_before_our_own_record_of_the_send_is_kept(
    make_customer, make_campaign, now, client, callback_secret
):
    from campaigns.services.sending import Outcome, SendResult, _record

    make_customer(last_purchase_at=now - dt.timedelta(days=100))
    campaign = make_campaign("reactivation")
    campaign_evaluate(campaign_id=campaign.pk, now=now)
    message = Message.objects.get(campaign=campaign)
    Message.objects.filter(pk=message.pk).update(status="sending", claimed_at=now)
    post_events(client, {"message_id": str(message.uuid), "event": "delivered"})
    _record(campaign, [Outcome(message.pk, message.customer_id, str(message.uuid), "sent", now)], SendResult())
    message.refresh_from_db()
    assert message.status == "delivered" and message.sent_at == now
