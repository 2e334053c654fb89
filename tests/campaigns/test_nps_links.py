"""NPS in the message (SPEC §4.2): ``{{ nps_links }}`` renders 0-10 signed links; a click records the
answer for that message, a later click within 7 days replaces it, the thank-you page takes an
optional comment, and the review bonus is earned once (SPEC §3)."""

import datetime as dt
import re

import pytest
from django.conf import settings
from django.core import mail
from django.test import Client
from django.utils import timezone

from campaigns.content.links import nps_read
from campaigns.models import Message
from campaigns.services import campaign_evaluate, messages_send_batch
from customers.models import NpsResponse, PointsEntry
from customers.services import customer_erase
from tests.loyalty_support import program_set

pytestmark = pytest.mark.django_db
LAPSED = dt.timedelta(days=100)
PREFIX = f"{settings.SITE_URL}/nps/"


@pytest.fixture
def surveyed(make_customer, make_campaign, now):
    """A customer who bought once, and the message asking them, sent with NPS links."""
    from tests.loyalty_support import buy

    program_set(review_bonus=50)
    customer = make_customer(external_id="ada", email="ada@example.com")
    buy("ada", "10.00", placed_at=now - LAPSED)
    campaign = make_campaign(
        "reactivation",
        body="How likely are you to recommend us?\n{{ nps_links }}",
        body_html="<p>How likely are you to recommend us?</p>{{ nps_links }}",
    )
    campaign_evaluate(campaign_id=campaign.pk, now=now)
    assert messages_send_batch(campaign_id=campaign.pk, now=now).sent == 1
    customer.refresh_from_db()
    return customer, Message.objects.get(campaign=campaign)


def text_links() -> dict[int, str]:
    (email,) = mail.outbox
    return {
        int(score): url.removeprefix(settings.SITE_URL)
        for score, url in re.findall(r"^(\d+): (\S+)$", email.body, re.M)
    }


def test_nps_links_render_0_to_10_signed_links_in_text_and_html(surveyed):
    _, message = surveyed
    links = text_links()
    assert sorted(links) == list(range(11))
    for score, path in links.items():
        assert nps_read(path.removeprefix("/nps/")) == (message.uuid, score)
    html = mail.outbox[0].alternatives[0][0]
    html_links = re.findall(rf'<a class="nps-score" href="{re.escape(PREFIX)}([^"]+)"[^>]*>(\d+)</a>', html)
    assert [int(score) for _, score in html_links] == list(range(11))
    assert all(nps_read(token) == (message.uuid, int(score)) for token, score in html_links)


def test_a_click_records_the_answer_for_the_message_and_earns_the_bonus_once(client, surveyed):
    customer, message = surveyed
    balance_before = customer.points_balance
    links = text_links()
    page = client.get(links[9])
    assert page.status_code == 200
    assert b"Thank you" in page.content and b'id="nps-comment-form"' in page.content
    answer = NpsResponse.objects.get(message=message)
    assert (answer.customer_id, answer.score) == (customer.pk, 9)
    message.refresh_from_db()
    assert message.clicked_at is not None  # answering is engaging with the message

    assert client.get(links[4]).status_code == 200  # changed their mind, within 7 days
    answer.refresh_from_db()
    assert answer.score == 4
    assert NpsResponse.objects.filter(customer=customer).count() == 1
    customer.refresh_from_db()
    assert customer.points_balance == balance_before + 50
    assert PointsEntry.objects.filter(customer=customer, idempotency_key__startswith="bonus:review:").count() == 1


def test_a_click_after_seven_days_leaves_the_answer_as_it_was(client, surveyed):
    _, message = surveyed
    links = text_links()
    client.get(links[10])
    NpsResponse.objects.filter(message=message).update(answered_at=timezone.now() - dt.timedelta(days=8))
    page = client.get(links[0])
    assert page.status_code == 200 and b'id="nps-kept"' in page.content
    assert NpsResponse.objects.get(message=message).score == 10


def test_the_thank_you_page_takes_an_optional_comment(client, surveyed):
    _, message = surveyed
    path = text_links()[8]
    client.get(path)
    response = client.post(path, {"comment": "  Lovely tea, slow delivery.  "})
    assert response.status_code == 200 and b'id="nps-commented"' in response.content
    answer = NpsResponse.objects.get(message=message)
    assert (answer.score, answer.comment) == (8, "Lovely tea, slow delivery.")


def test_a_comment_that_cannot_be_stored_is_a_400_and_changes_nothing(client, surveyed):
    _, message = surveyed
    path = text_links()[8]
    client.get(path)
    for bad in ("bad\x00text", "x" * 5001):
        response = client.post(path, {"comment": bad})
        assert response.status_code == 400 and b'id="nps-error"' in response.content
    assert NpsResponse.objects.get(message=message).comment == ""


def test_the_comment_form_needs_its_token(surveyed):
    _, message = surveyed
    browser = Client(enforce_csrf_checks=True)
    path = text_links()[7]
    assert browser.get(path).status_code == 200
    assert browser.post(path, {"comment": "forged"}).status_code == 403
    assert NpsResponse.objects.get(message=message).comment == ""


def test_a_tampered_link_or_an_erased_customer_is_a_400(client, surveyed):
    customer, _ = surveyed
    path = text_links()[3]
    token = path.removeprefix("/nps/")
    hex_part = token.split(":", 1)[0]
    for bad in (token[:-1] + ("A" if token[-1] != "A" else "B"), f"{hex_part[:-1]}9:{token.split(':', 1)[1]}", "x"):
        assert client.get(f"/nps/{bad}").status_code == 400
    assert not NpsResponse.objects.exists()
    customer_erase(external_id=customer.external_id, actor="test")
    assert client.get(path).status_code == 400
    assert not NpsResponse.objects.exists()
