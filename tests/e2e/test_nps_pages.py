"""A customer answers the NPS question from inside the email, in a real browser: clicks 9 on the
row of scores, lands on the thank-you page, changes their mind to 7, leaves a comment; the answer
is kept for that message and the review bonus is earned once.

Screenshots (nps_*.png) go to $SCREENSHOT_DIR when it is set, else to tmp_path."""

import datetime as dt
import re

import pytest
from django.conf import settings
from django.core import mail
from django.utils import timezone
from playwright.sync_api import Page, expect

from campaigns.models import ContactPolicy, Message
from campaigns.services import campaign_create, campaign_evaluate, messages_send_batch
from customers.models import NpsResponse, PointsEntry
from customers.services import customer_upsert
from tests.loyalty_support import buy, program_set

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def shot(shots):
    def take(page: Page, name: str) -> None:
        page.screenshot(path=str(shots / f"nps_{name}.png"), full_page=True)

    return take


@pytest.fixture
def survey_email(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    program_set(review_bonus=50)
    ContactPolicy.objects.update_or_create(
        pk=1, defaults={"quiet_hours_start": dt.time(0), "quiet_hours_end": dt.time(0)}
    )
    customer, _ = customer_upsert(
        external_id="shop-ada", data={"email": "ada@example.com", "first_name": "Ada", "consents": {"email": True}}
    )
    buy("shop-ada", "40.00", placed_at=timezone.now() - dt.timedelta(days=100))
    campaign = campaign_create(
        data={
            "name": "How did we do?",
            "trigger": "reactivation",
            "status": "active",
            "holdout_percent": 0,
            "subject": "How did we do, {{ customer.first_name }}?",
            "body": "",
            "body_html": "<p>How likely are you to recommend us to a friend?</p>{{ nps_links }}",
        }
    )
    campaign_evaluate(campaign_id=campaign.pk)
    messages_send_batch(campaign_id=campaign.pk)
    (email,) = mail.outbox
    return customer, Message.objects.get(campaign=campaign), email.alternatives[0][0]


def test_answering_inside_the_email_then_changing_it_and_commenting(page: Page, live_server, survey_email, shot):
    customer, message, html = survey_email
    # The email itself, as the customer sees it, with its row of scores.
    page.set_content(html)
    expect(page.locator("a.nps-score")).to_have_count(11)
    shot(page, "email")
    links = dict(
        (score, url.removeprefix(settings.SITE_URL))
        for url, score in re.findall(r'<a class="nps-score" href="([^"]+)"[^>]*>(\d+)</a>', html)
    )

    page.goto(live_server.url + links["9"])
    expect(page.locator("h1")).to_have_text("Thank you for your answer")
    expect(page.locator("#nps-score")).to_contain_text("9")
    shot(page, "thanks")

    page.goto(live_server.url + links["7"])  # a second thought, the same day
    expect(page.locator("#nps-score")).to_contain_text("7")
    page.fill("#nps-comment", "Good tea, but delivery took a week.")
    page.click("#nps-comment-send")
    expect(page.locator("#nps-commented")).to_be_visible()
    shot(page, "commented")

    answer = NpsResponse.objects.get(message=message)
    assert (answer.score, answer.comment) == (7, "Good tea, but delivery took a week.")
    assert NpsResponse.objects.filter(customer=customer).count() == 1
    assert PointsEntry.objects.filter(customer=customer, idempotency_key__startswith="bonus:review:").count() == 1


def test_a_comment_with_a_nul_is_refused_with_a_message(page: Page, live_server, survey_email, shot):
    _, message, html = survey_email
    (url,) = re.findall(r'<a class="nps-score" href="([^"]+)"[^>]*>10</a>', html)
    page.goto(live_server.url + url.removeprefix(settings.SITE_URL))
    page.evaluate("document.getElementById('nps-comment').value = 'bad\\u0000text'")
    page.click("#nps-comment-send")
    expect(page.locator("#nps-error")).to_contain_text("NUL")
    shot(page, "refused")
    assert NpsResponse.objects.get(message=message).comment == ""
