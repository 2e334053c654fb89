"""Every message links the preference centre (SPEC §4.2), each channel its own way: SMS and
Telegram end their text with a "Preferences: <url>" line, push and webhook carry the link as the
payload's ``preferences_url``, email keeps its footer. Sent through the send task to local stand-ins
for the providers and the Bot API; each link is opened and must be that customer's page."""

import datetime as dt
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.core import mail
from django.utils import timezone

from campaigns import tasks
from campaigns.channels.registry import CHANNELS, PreferencesLink
from campaigns.channels.telegram import MAX_TEXT_LENGTH
from campaigns.content.links import LinkMaker
from campaigns.content.preview import text_preview
from campaigns.models import ContactPolicy, Message, MessageStatus
from campaigns.services import campaign_evaluate, campaign_preview
from campaigns.tokens import unsubscribe_url
from tests.campaigns.telegram_standin import BOT_NAME, TOKEN, start_bot_api, stop_bot_api

pytestmark = pytest.mark.django_db
BODY = "Hi {{ customer.first_name }}, we miss you."
HTTP_CHANNELS = ("sms", "push", "webhook")


@pytest.fixture(autouse=True)
def any_hour(db):
    """The send task runs on the real clock: no quiet hours or cap in the way at any hour."""
    ContactPolicy.objects.update_or_create(
        pk=1, defaults={"quiet_hours_start": dt.time(0), "quiet_hours_end": dt.time(0), "max_messages": 100}
    )


@pytest.fixture
def providers(settings, sink):
    """SMS, push and webhook post to the local provider."""
    settings.CAMPAIGN_CHANNELS = {
        **settings.CAMPAIGN_CHANNELS,
        **{channel: {"BACKEND": "http", "URL": sink.url, "TIMEOUT": 5} for channel in HTTP_CHANNELS},
    }
    return sink


@pytest.fixture
def bot_api(settings):
    api = start_bot_api()
    settings.TELEGRAM_BOT_TOKEN = TOKEN
    settings.TELEGRAM_BOT_NAME = BOT_NAME
    settings.TELEGRAM_API_URL = api.url
    yield api
    stop_bot_api(api)


@pytest.fixture
def customers(make_customer):
    """Two lapsed customers reachable on every channel, with addresses of their own."""
    lapsed = timezone.now() - dt.timedelta(days=100)
    return {
        name: make_customer(
            channels=tuple(CHANNELS),
            first_name=name,
            external_id=f"shop-{name.lower()}",
            phone=phone,
            telegram_chat_id=chat,
            last_purchase_at=lapsed,
        )
        for name, phone, chat in (("Ada", "+442079460111", "111222333"), ("Grace", "+442079460222", "444555666"))
    }


def sent(make_campaign, channel: str, body: str = BODY, subject: str = "") -> dict[str, Message]:
    """Evaluate a campaign now and run the send task; its sent messages by the customer's first name."""
    campaign = make_campaign("reactivation", channel=channel, subject=subject, body=body)
    campaign_evaluate(campaign_id=campaign.pk, now=timezone.now())
    tasks.send_batch.apply(args=(campaign.pk,)).get()
    messages = Message.objects.filter(campaign=campaign).select_related("customer")
    assert {message.status for message in messages} == {MessageStatus.SENT}
    return {message.customer.first_name: message for message in messages}


def preferences_link(message: Message) -> str:
    return LinkMaker().preferences_url(str(message.uuid))


def assert_opens_the_customers_page(client, url: str, message: Message) -> None:
    page = client.get(urlsplit(url).path)
    assert page.status_code == 200
    assert page.context["preferences"].customer == message.customer
    assert message.customer.phone[-3:] in page.content.decode()  # the page shows their (masked) number


def sink_bodies(sink, channel: str) -> dict[str, dict]:
    """What the provider received on ``channel``, by the customer's external id."""
    return {item.body["customer"]: item.body for item in sink.received if item.body["channel"] == channel}


def test_the_registry_says_how_each_channel_carries_the_link():
    assert {key: definition.preferences_link for key, definition in CHANNELS.items()} == {
        "email": PreferencesLink.FOOTER,
        "sms": PreferencesLink.LAST_LINE,
        "push": PreferencesLink.FIELD,
        "webhook": PreferencesLink.FIELD,
        "telegram": PreferencesLink.LAST_LINE,
    }


def test_an_sms_ends_with_a_line_that_opens_the_customers_preference_centre(
    client, customers, providers, make_campaign
):
    messages = sent(make_campaign, "sms")
    received = sink_bodies(providers, "sms")
    assert len(received) == 2
    for name, message in messages.items():
        body = received[message.customer.external_id]
        url = preferences_link(message)
        assert body["to"] == message.customer.phone
        assert body["body"] == f"Hi {name}, we miss you.\n\nPreferences: {url}"
        assert body["preferences_url"] == url
        assert_opens_the_customers_page(client, body["body"].splitlines()[-1].removeprefix("Preferences: "), message)


def test_a_telegram_message_ends_with_a_line_that_opens_the_customers_preference_centre(
    client, customers, bot_api, make_campaign
):
    messages = sent(make_campaign, "telegram", subject="News")
    received = {request["chat_id"]: request["text"] for request in bot_api.sent}
    assert len(received) == 2
    for name, message in messages.items():
        text = received[message.customer.telegram_chat_id]
        url = preferences_link(message)
        assert text == f"News\n\nHi {name}, we miss you.\n\nPreferences: {url}"
        assert_opens_the_customers_page(client, text.splitlines()[-1].removeprefix("Preferences: "), message)


@pytest.mark.parametrize("channel", ["push", "webhook"])
def test_push_and_webhook_carry_the_link_as_a_field_and_their_text_is_unchanged(
    client, customers, providers, make_campaign, channel
):
    messages = sent(make_campaign, channel, subject="News")
    received = sink_bodies(providers, channel)
    assert len(received) == 2
    for name, message in messages.items():
        body = received[message.customer.external_id]
        assert body["body"] == f"Hi {name}, we miss you."
        assert body["subject"] == "News"
        assert body["preferences_url"] == preferences_link(message)
        assert_opens_the_customers_page(client, body["preferences_url"], message)


@pytest.mark.parametrize("channel", HTTP_CHANNELS)
def test_a_body_that_writes_the_link_gets_no_second_one(client, customers, providers, make_campaign, channel):
    messages = sent(make_campaign, channel, body="Hi {{ customer.first_name }}. Choose: {{ preferences_url }}")
    received = sink_bodies(providers, channel)
    for name, message in messages.items():
        url = preferences_link(message)
        body = received[message.customer.external_id]
        assert body["body"] == f"Hi {name}. Choose: {url}"
        assert body["preferences_url"] == url
        assert_opens_the_customers_page(client, url, message)


def test_a_telegram_body_that_writes_the_link_gets_no_second_one(customers, bot_api, make_campaign):
    messages = sent(make_campaign, "telegram", body="Choose: {{ preferences_url }}")
    texts = {request["chat_id"]: request["text"] for request in bot_api.sent}
    for message in messages.values():
        assert texts[message.customer.telegram_chat_id] == f"Choose: {preferences_link(message)}"


def test_a_telegram_text_cut_to_the_api_limit_keeps_its_link(client, customers, bot_api, make_campaign):
    messages = sent(make_campaign, "telegram", body="{{ customer.first_name }} " + "x" * 5_000)
    texts = {request["chat_id"]: request["text"] for request in bot_api.sent}
    for message in messages.values():
        text = texts[message.customer.telegram_chat_id]
        url = preferences_link(message)
        assert len(text) == MAX_TEXT_LENGTH
        assert text.startswith(f"{message.customer.first_name} xxx")
        assert text.endswith(f"x\nPreferences: {url}")
        assert_opens_the_customers_page(client, url, message)


def test_email_keeps_its_footer_and_nothing_more(customers, make_campaign):
    messages = sent(make_campaign, "email", subject="Hello")
    bodies = {email.to[0]: email.body for email in mail.outbox}
    assert len(bodies) == 2
    for name, message in messages.items():
        footer = f"Preferences: {preferences_link(message)}\nUnsubscribe: {unsubscribe_url(str(message.uuid))}\n"
        assert bodies[message.customer.email] == f"Hi {name}, we miss you.\n\n{footer}"


def test_an_email_that_shows_the_unsubscribe_link_still_gets_no_footer(customers, make_campaign):
    messages = sent(make_campaign, "email", subject="Hello", body="Bye: {{ unsubscribe_url }}")
    bodies = {email.to[0]: email.body for email in mail.outbox}
    for message in messages.values():
        assert bodies[message.customer.email] == f"Bye: {unsubscribe_url(str(message.uuid))}"


@pytest.mark.parametrize("channel", ["sms", "telegram"])
def test_the_preview_text_is_the_text_the_customer_gets(customers, providers, bot_api, make_campaign, channel):
    messages = sent(make_campaign, channel)
    # What each customer got, by external id (SMS) or chat (Telegram).
    delivered = {key: body["body"] for key, body in sink_bodies(providers, channel).items()}
    delivered.update({request["chat_id"]: request["text"] for request in bot_api.sent})
    for message in messages.values():
        customer = message.customer
        preview = campaign_preview(
            subject="", body=BODY, channel=channel, trigger="reactivation", customer_external_id=customer.external_id
        )
        # The preview links to a sample preference centre; the message, to the customer's own.
        shown = preview.body.replace(f"{settings.SITE_URL}/preferences/preview", preferences_link(message))
        assert shown == delivered[customer.external_id if channel == "sms" else customer.telegram_chat_id]
        assert preview.body.endswith(f"Preferences: {settings.SITE_URL}/preferences/preview")


@pytest.mark.parametrize("channel", ["email", "push", "webhook"])
def test_the_preview_of_other_channels_shows_the_text_as_written(channel):
    assert text_preview(channel=channel, source=BODY, text="Hi Ada", preferences_url="https://shop/p") == "Hi Ada"
