"""HTML email (SPEC §4.2) over real SMTP: multipart/alternative with the text part, the body in the
shop's layout with its CSS inlined, links rewritten to signed redirects, the footer's links."""

import datetime as dt
import re
import time
from urllib.parse import unquote

import pytest
from django.conf import settings

from campaigns.content.html_email import html_to_text, links_rewritten
from campaigns.content.links import click_read, preferences_read
from campaigns.content.models import EmailLayout
from campaigns.models import Message
from campaigns.services import campaign_evaluate, messages_send_batch
from campaigns.tokens import unsubscribe_token_read
from tests.campaigns.smtp_capture import parts, smtp_server_fixture  # noqa: F401 (the smtp_server fixture)

pytestmark = pytest.mark.django_db
LAPSED = dt.timedelta(days=100)
HTML = (
    "<h1>We miss you, {{ customer.first_name }}</h1>"
    '<p>Take a look at <a class="button" href="https://shop.example.com/sale?from=email&amp;size=m">the sale</a>.</p>'
    '<p>Or write to <a href="mailto:help@example.com">help</a>.</p>'
)


@pytest.fixture
def layout(db) -> EmailLayout:
    layout, _ = EmailLayout.objects.update_or_create(
        pk=1,
        defaults={
            "shop_name": "Tea & Co",
            "logo_url": "https://cdn.example.com/logo.png",
            "brand_colour": "#aa3300",
            "shop_address": "1 High Street\nLondon",
        },
    )
    return layout


def sent(make_customer, make_campaign, now, **campaign_fields):
    customer = make_customer(last_purchase_at=now - LAPSED, first_name="Ada", email="ada@example.com")
    campaign = make_campaign("reactivation", **campaign_fields)
    campaign_evaluate(campaign_id=campaign.pk, now=now)
    result = messages_send_batch(campaign_id=campaign.pk, now=now)
    assert result.sent == 1, result
    return customer, Message.objects.get(campaign=campaign)


def hrefs(html: str) -> list[str]:
    return [unquote(href).replace("&amp;", "&") for href in re.findall(r'href="([^"]*)"', html)]


def test_html_email_is_multipart_with_css_inlined_links_tracked_and_the_footer(
    smtp_server, layout, make_customer, make_campaign, now
):
    _, message = sent(make_customer, make_campaign, now, body="Hi {{ customer.first_name }}.", body_html=HTML)
    (received,) = smtp_server.messages
    assert received.get_content_type() == "multipart/alternative"
    assert received["Message-ID"] == f"<{message.uuid}@example.com>"
    content = parts(received)
    assert set(content) == {"text/plain", "text/html"}
    assert content["text/plain"].startswith("Hi Ada.")
    html = content["text/html"]

    # CSS inlined: the layout's rules on the elements themselves; only media queries stay a style sheet.
    sheets = re.findall(r"<style>(.*?)</style>", html, re.S)
    assert sheets and all(sheet.strip().startswith("@media") for sheet in sheets)
    assert re.search(r'<a class="button"[^>]*style="[^"]*background-color: ?#aa3300', html)
    assert re.search(r"<h1[^>]*>We miss you, Ada</h1>", html)
    assert 'src="https://cdn.example.com/logo.png"' in html and "1 High Street<br>London" in html

    # The sale link is a signed redirect to the original address; mailto is left alone.
    links = hrefs(html)
    tracked = [link for link in links if link.startswith(f"{settings.SITE_URL}/c/")]
    assert len(tracked) == 1
    message_uuid, original = click_read(tracked[0].removeprefix(f"{settings.SITE_URL}/c/"))
    assert (message_uuid, original) == (message.uuid, "https://shop.example.com/sale?from=email&size=m")
    assert "mailto:help@example.com" in links
    assert "https://shop.example.com/sale" not in html  # only through the redirect

    # The footer: the unsubscribe link of the List-Unsubscribe header and the preference centre.
    unsubscribe = received["List-Unsubscribe"].strip(" <>")
    assert unsubscribe in links
    assert unsubscribe_token_read(unsubscribe.rsplit("/", 1)[1]) == message.uuid
    (preferences,) = [link for link in links if link.startswith(f"{settings.SITE_URL}/preferences/")]
    assert preferences_read(preferences.rsplit("/", 1)[1]) == message.uuid
    # The text part carries both links too (the text body does not show them itself).
    assert f"Unsubscribe: {unsubscribe}" in content["text/plain"]
    assert f"Preferences: {preferences}" in content["text/plain"]


def test_without_a_text_body_the_plain_part_is_made_from_the_html(
    smtp_server, layout, make_customer, make_campaign, now
):
    sent(make_customer, make_campaign, now, body="", body_html=HTML)
    text = parts(smtp_server.messages[0])["text/plain"]
    assert text.startswith(
        "We miss you, Ada\n\nTake a look at the sale (https://shop.example.com/sale?from=email&size=m)."
    )
    assert "<" not in text.split("Preferences:")[0]


def test_customer_data_is_escaped_in_the_html_body(smtp_server, layout, make_customer, make_campaign, now):
    customer = make_customer(last_purchase_at=now - LAPSED, first_name='<img src=x onerror="alert(1)">')
    campaign = make_campaign("reactivation", body="Hi", body_html="<p>Hi {{ customer.first_name }}</p>")
    campaign_evaluate(campaign_id=campaign.pk, now=now)
    messages_send_batch(campaign_id=campaign.pk, now=now)
    html = parts(smtp_server.messages[0])["text/html"]
    assert "<img src=x" not in html and "&lt;img src=x" in html
    assert customer.pk


def test_a_text_only_campaign_sends_plain_text(smtp_server, make_customer, make_campaign, now):
    sent(make_customer, make_campaign, now)
    (received,) = smtp_server.messages
    assert received.get_content_type() == "text/plain"


def test_no_open_pixel_unless_the_shop_turns_it_on(smtp_server, layout, make_customer, make_campaign, now):
    sent(make_customer, make_campaign, now, body="Hi", body_html=HTML)
    assert f"{settings.SITE_URL}/o/" not in parts(smtp_server.messages[0])["text/html"]


def test_the_open_pixel_once_the_shop_turns_it_on(smtp_server, layout, make_customer, make_campaign, now):
    layout.track_opens = True
    layout.save()
    sent(make_customer, make_campaign, now, body="Hi", body_html=HTML)
    html = parts(smtp_server.messages[0])["text/html"]
    assert re.search(rf'<img src="{re.escape(settings.SITE_URL)}/o/[^"]+" width="1" height="1"', html)


def test_a_journey_variant_sends_its_own_html(smtp_server, layout, make_customer, make_campaign, now):
    steps = [
        {
            "key": "hello",
            "type": "message",
            "subject": "Hello",
            "body": "Text",
            "body_html": "<p>Step HTML</p>",
            "variants": [
                {"key": "a", "weight": 1, "body_html": "<p>Variant A HTML</p>"},
                {"key": "b", "weight": 1, "body_html": "<p>Variant B HTML</p>"},
            ],
        }
    ]
    _, message = sent(make_customer, make_campaign, now, steps=steps, subject="", body="")
    html = parts(smtp_server.messages[0])["text/html"]
    assert f"Variant {message.variant_key.upper()} HTML" in html


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"channel": "sms", "body": "Hi", "body_html": "<p>Hi</p>"}, "body_html"),
        ({"body_html": "<p>{% if %}</p>"}, "body_html"),
        ({"body": "", "body_html": ""}, "body"),
    ],
)
def test_bad_html_bodies_are_refused_naming_the_field(api, fields, field):
    response = api.post(
        "/api/v1/campaigns",
        {"name": "x", "trigger": "reactivation", "subject": "Hi", "body": "Hi", **fields},
        format="json",
    )
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]


def test_the_api_takes_and_shows_body_html_and_topic(api):
    response = api.post(
        "/api/v1/campaigns",
        {"name": "x", "trigger": "reactivation", "subject": "Hi", "body": "", "body_html": "<p>Hi</p>"},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["body_html"] == "<p>Hi</p>"
    assert response.json()["topic"] == "promotions"


def test_unclosed_markup_cannot_make_link_rewriting_or_the_text_version_slow():
    # Quadratic patterns would take minutes on these; linear ones take well under a second each.
    for body in ("<a " * 170_000, "<" * 500_000, '<a href="https://x">' * 60_000, "<style>" * 70_000):
        started = time.monotonic()
        links_rewritten(body, lambda url: url)
        html_to_text(body)
        assert time.monotonic() - started < 5
