"""Click tracking (SPEC §4.2): links in HTML email are signed redirects that record the first click
and answer 302 to the original address; a tampered link answers 400; never an open redirect. Clicks
feed the journey's ``clicked_previous`` split and the report; the open pixel records opens."""

import base64
import datetime as dt
import re

import pytest
from django.conf import settings
from django.core import mail, signing

from campaigns.content.links import CLICK_SALT, LinkMaker
from campaigns.content.models import EmailLayout
from campaigns.models import Message
from campaigns.services import campaign_evaluate, messages_send_batch

pytestmark = pytest.mark.django_db
LAPSED = dt.timedelta(days=100)
HOUR = dt.timedelta(hours=1)
SALE = "https://shop.example.com/sale?from=email&size=m"
HTML = f'<p>See <a href="{SALE.replace("&", "&amp;")}">the sale</a>.</p>'


def html_of(email) -> str:
    return email.alternatives[0][0]


def click_paths(html: str) -> list[str]:
    prefix = re.escape(settings.SITE_URL)
    return [path.replace("&amp;", "&") for path in re.findall(rf'href="{prefix}(/c/[^"]+)"', html)]


@pytest.fixture
def sent_message(make_customer, make_campaign, now):
    make_customer(last_purchase_at=now - LAPSED)
    campaign = make_campaign("reactivation", body="Hi", body_html=HTML)
    campaign_evaluate(campaign_id=campaign.pk, now=now)
    messages_send_batch(campaign_id=campaign.pk, now=now)
    (email,) = mail.outbox
    (path,) = click_paths(html_of(email))
    return Message.objects.get(campaign=campaign), path


def test_a_click_is_recorded_once_and_redirects_to_the_original(client, sent_message):
    message, path = sent_message
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"] == SALE
    assert response["Referrer-Policy"] == "no-referrer"
    message.refresh_from_db()
    assert message.status == "clicked"
    first = message.clicked_at
    assert first is not None

    assert client.get(path).status_code == 302  # a second click still goes there...
    message.refresh_from_db()
    assert message.clicked_at == first  # ...and the first click is the one kept


def test_a_head_request_follows_without_counting(client, sent_message):
    message, path = sent_message
    assert client.head(path).status_code == 302
    message.refresh_from_db()
    assert message.clicked_at is None and message.status == "sent"


def test_a_tampered_link_answers_400_and_records_nothing(client, sent_message):
    message, path = sent_message
    token = path.removeprefix("/c/")
    for bad in (token[:-2] + ("AA" if not token.endswith("AA") else "BB"), token[5:], "x", token + "x"):
        response = client.get(f"/c/{bad}")
        assert response.status_code == 400
        assert b"not valid" in response.content
    message.refresh_from_db()
    assert message.clicked_at is None


def test_no_open_redirect(client, sent_message):
    message, _ = sent_message
    # A link to somewhere else, signed with any key but ours, or as another kind of link: refused.
    evil = base64.urlsafe_b64encode(b"https://evil.example.net/").decode().rstrip("=")
    forged = signing.Signer(key="not-our-key", salt=CLICK_SALT).sign(f"{message.uuid.hex}.{evil}")
    assert client.get(f"/c/{forged}").status_code == 400
    preferences_token = LinkMaker().preferences_url(str(message.uuid)).rsplit("/", 1)[1]
    assert client.get(f"/c/{preferences_token}").status_code == 400
    # Even a signed address that is not a web address is not followed.
    script = LinkMaker().click_url(str(message.uuid), "javascript:alert(1)").rsplit("/", 1)[1]
    assert client.get(f"/c/{script}").status_code == 400
    assert client.get("/c/abc%00def").status_code == 400
    newline = LinkMaker().click_url(str(message.uuid), "https://shop.example.com/\r\nSet-Cookie: x=1")
    assert client.get("/c/" + newline.rsplit("/", 1)[1]).status_code == 400


def test_own_pages_and_non_web_links_are_not_wrapped(make_customer, make_campaign, now):
    make_customer(last_purchase_at=now - LAPSED)
    body_html = (
        '<a href="mailto:help@example.com">mail</a> <a href="#top">top</a> <a href="tel:+441234">call</a>'
        '<a href="{{ preferences_url }}">prefs</a> <a href="{{ unsubscribe_url }}">out</a> {{ nps_links }}'
    )
    campaign = make_campaign("reactivation", body="Hi", body_html=body_html)
    campaign_evaluate(campaign_id=campaign.pk, now=now)
    messages_send_batch(campaign_id=campaign.pk, now=now)
    html = html_of(mail.outbox[0])
    assert click_paths(html) == []
    assert 'href="mailto:help@example.com"' in html and 'href="#top"' in html
    assert len(re.findall(rf'href="{re.escape(settings.SITE_URL)}/nps/', html)) == 11


def test_clicks_feed_the_split_and_the_report(client, api, make_customer, make_campaign, now):
    clicker = make_customer(last_purchase_at=now - LAPSED, email="clicker@example.com")
    other = make_customer(last_purchase_at=now - LAPSED, email="other@example.com")
    steps = [
        {"key": "hello", "type": "message", "subject": "Hi", "body": "Come back", "body_html": HTML},
        {"key": "think", "type": "wait", "minutes": 60},
        {"key": "clicked", "type": "split", "condition": {"clicked_previous": True}, "yes": "mark", "no": "exit"},
        {"key": "mark", "type": "tag", "add": ["engaged"]},
    ]
    campaign = make_campaign("reactivation", steps=steps, subject="", body="")
    campaign_evaluate(campaign_id=campaign.pk, now=now)
    messages_send_batch(campaign_id=campaign.pk, now=now)
    (email,) = [email for email in mail.outbox if email.to == [clicker.email]]
    (path,) = click_paths(html_of(email))
    assert client.get(path).status_code == 302

    campaign_evaluate(campaign_id=campaign.pk, now=now + HOUR)
    clicker.refresh_from_db()
    other.refresh_from_db()
    assert "engaged" in clicker.tags
    assert "engaged" not in other.tags
    report = api.get(f"/api/v1/campaigns/{campaign.pk}/report").json()
    assert report["counts"]["clicked"] == 1
    assert report["counts"]["sent"] == 1


def test_the_open_pixel_records_an_open(client, make_customer, make_campaign, now):
    EmailLayout.objects.update_or_create(pk=1, defaults={"track_opens": True})
    make_customer(last_purchase_at=now - LAPSED)
    campaign = make_campaign("reactivation", body="Hi", body_html=HTML)
    campaign_evaluate(campaign_id=campaign.pk, now=now)
    messages_send_batch(campaign_id=campaign.pk, now=now)
    (pixel,) = re.findall(rf'<img src="{re.escape(settings.SITE_URL)}(/o/[^"]+)"', html_of(mail.outbox[0]))
    response = client.get(pixel)
    assert response.status_code == 200 and response["Content-Type"] == "image/gif"
    message = Message.objects.get(campaign=campaign)
    assert message.status == "opened" and message.opened_at is not None
    assert client.get(pixel[:-3] + "xyz").status_code == 400
