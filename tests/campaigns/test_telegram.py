"""Telegram (SPEC §4.2) against a local stand-in for the Bot API: the signed deep link, the webhook's
/start and /stop, sending through sendMessage and what its errors do (403 blocked, 429 retry_after)."""

import datetime as dt
import re
import time

import pytest

from campaigns.content.links import LinkMaker
from campaigns.models import Message, MessageStatus
from campaigns.services import campaign_evaluate, messages_send_batch
from campaigns.telegram_links import LINK_MAX_AGE, telegram_start_token
from customers.models import Consent, ConsentEvent, Customer
from customers.services import customer_erase
from tests.api.conftest import assert_error
from tests.campaigns.telegram_standin import (
    BOT_NAME,
    TOKEN,
    blocked_update,
    message_update,
    start_bot_api,
    stop_bot_api,
)

pytestmark = pytest.mark.django_db
SECRET = "webhook-secret-for-tests"
CHAT = 987654321
LAPSED = dt.timedelta(days=100)
WEBHOOK = f"/telegram/webhook/{SECRET}"


@pytest.fixture
def bot_api(settings):
    api = start_bot_api()
    settings.TELEGRAM_BOT_TOKEN = TOKEN
    settings.TELEGRAM_BOT_NAME = BOT_NAME
    settings.TELEGRAM_API_URL = api.url
    settings.TELEGRAM_WEBHOOK_SECRET = SECRET
    yield api
    stop_bot_api(api)


def webhook(client, update, path=WEBHOOK):
    return client.post(path, update, content_type="application/json")


def telegram_consent(customer: Customer) -> Consent | None:
    return Consent.objects.filter(customer=customer, channel="telegram").first()


def linked_customer(make_customer, now, chat=CHAT, **fields) -> Customer:
    return make_customer(channels=("telegram",), telegram_chat_id=str(chat), last_purchase_at=now - LAPSED, **fields)


def telegram_campaign(make_campaign, now):
    campaign = make_campaign(
        "reactivation", channel="telegram", subject="", body="Hi {{ customer.first_name }}, we miss you."
    )
    campaign_evaluate(campaign_id=campaign.pk, now=now)
    return campaign


# --- The deep link ----------------------------------------------------------------------------------


def test_the_api_answers_a_signed_deep_link_that_telegram_accepts(bot_api, make_client, make_customer):
    customer = make_customer(external_id="ada")
    response = make_client("write").post("/api/v1/customers/ada/telegram-link")
    assert response.status_code == 200, response.content
    match = re.fullmatch(rf"https://t\.me/{BOT_NAME}\?start=([A-Za-z0-9_-]{{1,64}})", response.json()["url"])
    assert match, response.json()
    assert set(response.json()) == {"url"}
    assert telegram_consent(customer) is None  # a link alone grants nothing


def test_the_link_needs_the_write_scope(bot_api, make_client, make_customer):
    make_customer(external_id="ada")
    assert_error(make_client("read").post("/api/v1/customers/ada/telegram-link"), 403)


def test_a_link_for_an_unknown_or_erased_customer_is_refused(bot_api, api, make_customer):
    assert_error(api.post("/api/v1/customers/nobody/telegram-link"), 404, "customer_not_found")
    make_customer(external_id="gone")
    customer_erase(external_id="gone", actor="test")
    assert_error(api.post("/api/v1/customers/gone/telegram-link"), 409, "erased")


def test_without_a_bot_name_there_is_no_link(bot_api, api, make_customer, settings):
    settings.TELEGRAM_BOT_NAME = ""
    make_customer(external_id="ada")
    assert_error(api.post("/api/v1/customers/ada/telegram-link"), 409, "telegram_not_configured")


# --- The webhook: /start and /stop ---------------------------------------------------------------------


def start_link(api, external_id: str) -> str:
    return api.post(f"/api/v1/customers/{external_id}/telegram-link").json()["url"].split("start=", 1)[1]


def test_start_with_the_token_links_the_chat_and_grants_consent(bot_api, api, client, make_customer):
    customer = make_customer(external_id="ada")
    response = webhook(client, message_update(CHAT, f"/start {start_link(api, 'ada')}"))
    assert response.status_code == 200
    assert response.json()["method"] == "sendMessage" and response.json()["chat_id"] == CHAT
    customer.refresh_from_db()
    assert customer.telegram_chat_id == str(CHAT)
    consent = telegram_consent(customer)
    assert consent.granted and consent.source == "telegram"
    assert list(ConsentEvent.objects.filter(channel="telegram").values_list("granted", "source")) == [
        (True, "telegram")
    ]
    # Pressing Start again (Telegram resends the same link) changes nothing more.
    webhook(client, message_update(CHAT, f"/start {start_link(api, 'ada')}"))
    assert ConsentEvent.objects.filter(channel="telegram").count() == 1


def test_a_chat_linked_again_moves_to_the_new_customer(bot_api, api, client, make_customer):
    first, second = make_customer(external_id="first"), make_customer(external_id="second")
    webhook(client, message_update(CHAT, f"/start {start_link(api, 'first')}"))
    webhook(client, message_update(CHAT, f"/start {start_link(api, 'second')}"))
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.telegram_chat_id, second.telegram_chat_id) == ("", str(CHAT))
    assert not telegram_consent(first).granted and telegram_consent(second).granted


@pytest.mark.parametrize(
    "mangle",
    [
        lambda token: token[:-1] + ("A" if token[-1] != "A" else "B"),  # signature changed
        lambda token: "2" + token[1:] if token[0] != "2" else "3" + token[1:],  # another customer's id
        lambda token: token + "x",
        lambda token: "not-a-token",
        lambda token: "",
    ],
)
def test_a_tampered_token_links_nothing(bot_api, api, client, make_customer, mangle):
    customer = make_customer(external_id="ada")
    make_customer(external_id="other")
    token = start_link(api, "ada")
    response = webhook(client, message_update(CHAT, f"/start {mangle(token)}".strip()))
    assert response.status_code == 200
    assert not Customer.objects.exclude(telegram_chat_id="").exists()
    assert not Consent.objects.filter(channel="telegram").exists()
    assert response.json()["method"] == "sendMessage"  # the bot says why
    assert customer.pk


def test_an_expired_token_links_nothing(bot_api, client, make_customer):
    customer = make_customer(external_id="ada")
    old = time.time() - LINK_MAX_AGE.total_seconds() - 60
    webhook(client, message_update(CHAT, f"/start {telegram_start_token(customer.pk, issued_at=old)}"))
    customer.refresh_from_db()
    assert customer.telegram_chat_id == "" and telegram_consent(customer) is None


def test_a_group_chat_is_never_linked(bot_api, api, client, make_customer):
    make_customer(external_id="ada")
    response = webhook(client, message_update(-100123, f"/start {start_link(api, 'ada')}", chat_type="group"))
    assert response.status_code == 200
    assert not Consent.objects.filter(channel="telegram").exists()


def test_stop_revokes_the_consent_and_nothing_more_is_sent(bot_api, api, client, make_customer, make_campaign, now):
    customer = make_customer(external_id="ada", last_purchase_at=now - LAPSED)
    webhook(client, message_update(CHAT, f"/start {start_link(api, 'ada')}"))
    response = webhook(client, message_update(CHAT, "/stop"))
    assert response.status_code == 200 and response.json()["method"] == "sendMessage"
    consent = telegram_consent(customer)
    assert not consent.granted and consent.source == "telegram"
    assert list(ConsentEvent.objects.filter(channel="telegram").order_by("id").values_list("granted", "source")) == [
        (True, "telegram"),
        (False, "telegram"),
    ]
    campaign = telegram_campaign(make_campaign, now)
    messages_send_batch(campaign_id=campaign.pk, now=now)
    assert bot_api.requests == []
    assert not Message.objects.filter(campaign=campaign, status=MessageStatus.SENT).exists()


def test_blocking_the_bot_in_telegram_revokes_the_consent(bot_api, client, make_customer, now):
    customer = linked_customer(make_customer, now)
    assert webhook(client, blocked_update(CHAT)).status_code == 200
    assert not telegram_consent(customer).granted


@pytest.mark.parametrize(
    "update",
    [
        {"update_id": 1, "edited_message": {"chat": {"id": CHAT, "type": "private"}, "text": "hi"}},
        message_update(CHAT, "hello there"),
        message_update(CHAT, "/help"),
        {"update_id": 2, "message": {"chat": {"id": CHAT, "type": "private"}, "sticker": {"file_id": "x"}}},
        {"update_id": 3, "message": {"chat": {"id": "not a number"}, "text": "/stop"}},
        {"update_id": 4, "message": "not an object"},
        {},
    ],
)
def test_updates_the_bot_ignores_answer_200(bot_api, client, make_customer, now, update):
    customer = linked_customer(make_customer, now)
    response = webhook(client, update)
    assert response.status_code == 200
    assert telegram_consent(customer).granted


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'"text"', b"\xff\xfe", b""])
def test_a_body_that_is_not_a_json_object_is_400(bot_api, client, body):
    response = client.post(WEBHOOK, body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"


def test_a_wrong_secret_is_404_and_changes_nothing(bot_api, api, client, make_customer, settings):
    customer = make_customer(external_id="ada")
    update = message_update(CHAT, f"/start {start_link(api, 'ada')}")
    assert webhook(client, update, path="/telegram/webhook/guessed").status_code == 404
    assert webhook(client, update, path=f"/telegram/webhook/{SECRET}x").status_code == 404
    settings.TELEGRAM_WEBHOOK_SECRET = ""
    assert webhook(client, update, path="/telegram/webhook/").status_code == 404
    assert webhook(client, update, path=WEBHOOK).status_code == 404
    customer.refresh_from_db()
    assert customer.telegram_chat_id == "" and telegram_consent(customer) is None


def test_the_webhook_takes_only_post(bot_api, client):
    assert client.get(WEBHOOK).status_code == 405


# --- Sending -----------------------------------------------------------------------------------------


def test_a_message_goes_to_the_chat_through_send_message(bot_api, make_customer, make_campaign, now):
    linked_customer(make_customer, now, first_name="Ada")
    campaign = telegram_campaign(make_campaign, now)
    assert messages_send_batch(campaign_id=campaign.pk, now=now).sent == 1
    message = Message.objects.get(campaign=campaign)
    link = LinkMaker().preferences_url(str(message.uuid))
    assert bot_api.sent == [{"chat_id": str(CHAT), "text": f"Hi Ada, we miss you.\n\nPreferences: {link}"}]
    assert message.status == MessageStatus.SENT and message.provider_message_id == "1"


def test_a_customer_without_a_chat_is_not_addressed(bot_api, make_customer, make_campaign, now):
    make_customer(channels=("telegram",), last_purchase_at=now - LAPSED)
    campaign = telegram_campaign(make_campaign, now)
    messages_send_batch(campaign_id=campaign.pk, now=now)
    assert bot_api.requests == []
    assert not Message.objects.filter(campaign=campaign).exclude(status="suppressed").exists()


def test_a_blocked_bot_fails_the_message_and_revokes_the_consent(bot_api, make_customer, make_campaign, now):
    customer = linked_customer(make_customer, now)
    bot_api.script[:] = ["blocked"]
    campaign = telegram_campaign(make_campaign, now)
    result = messages_send_batch(campaign_id=campaign.pk, now=now)
    assert result.failed == 1
    message = Message.objects.get(campaign=campaign)
    assert message.status == MessageStatus.FAILED and "blocked" in message.error
    assert TOKEN not in message.error
    consent = telegram_consent(customer)
    assert not consent.granted and consent.source == "provider"
    assert ConsentEvent.objects.filter(customer=customer, channel="telegram", granted=False).count() == 1


def test_429_waits_the_retry_after_it_names(bot_api, make_customer, make_campaign, now):
    linked_customer(make_customer, now, chat=CHAT)
    linked_customer(make_customer, now, chat=CHAT + 1)
    bot_api.script[:] = [("flood", 3)]
    campaign = telegram_campaign(make_campaign, now)
    result = messages_send_batch(campaign_id=campaign.pk, now=now)
    assert result.retried == 2 and result.sent == 0
    # The second message of the batch is not tried against a rate-limited bot.
    assert len(bot_api.requests) == 1
    for message in Message.objects.filter(campaign=campaign):
        assert message.status == MessageStatus.QUEUED
        assert now < message.send_at <= now + dt.timedelta(seconds=3)
        assert "429" in message.error or "wait" in message.error
    # Once the wait is over both go out.
    assert messages_send_batch(campaign_id=campaign.pk, now=now + dt.timedelta(seconds=3)).sent == 2
    assert len(bot_api.sent) == 2


def test_a_server_error_is_retried_with_backoff(bot_api, make_customer, make_campaign, now):
    linked_customer(make_customer, now)
    bot_api.script[:] = ["down"]
    campaign = telegram_campaign(make_campaign, now)
    assert messages_send_batch(campaign_id=campaign.pk, now=now).retried == 1
    message = Message.objects.get(campaign=campaign)
    assert message.status == MessageStatus.QUEUED and message.send_at == now + dt.timedelta(seconds=60)


def test_a_wrong_bot_token_is_retried_and_never_logged(bot_api, make_customer, make_campaign, now, settings):
    customer = linked_customer(make_customer, now)
    settings.TELEGRAM_BOT_TOKEN = "123456:wrong"
    campaign = telegram_campaign(make_campaign, now)
    assert messages_send_batch(campaign_id=campaign.pk, now=now).retried == 1
    message = Message.objects.get(campaign=campaign)
    assert message.status == MessageStatus.QUEUED and "401" in message.error and "wrong" not in message.error
    assert telegram_consent(customer).granted


# --- Erasure ------------------------------------------------------------------------------------------


def test_erasing_the_customer_clears_the_chat(bot_api, client, make_customer, now):
    customer = linked_customer(make_customer, now, external_id="ada")
    customer_erase(external_id="ada", actor="test")
    customer.refresh_from_db()
    assert customer.telegram_chat_id == ""
    assert not telegram_consent(customer).granted
    # The chat's /start or /stop finds no one any more.
    assert webhook(client, message_update(CHAT, "/stop")).status_code == 200
