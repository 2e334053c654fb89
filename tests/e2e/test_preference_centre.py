"""A customer opens the preference centre from the link in a campaign email, in a real browser:
sees each channel (addresses masked) and each topic, turns SMS and promotions off, saves, and
finds the choices kept on reload — with history, and the next promotion not sent to them.

Screenshots (preference_centre_*.png) go to $SCREENSHOT_DIR when it is set, else to tmp_path."""

import datetime as dt
import re

import pytest
from django.conf import settings
from django.core import mail
from django.utils import timezone
from playwright.sync_api import Page, expect

from campaigns.content.models import TopicPreference, TopicPreferenceEvent
from campaigns.models import ContactPolicy, Message
from campaigns.services import campaign_create, campaign_evaluate, messages_send_batch
from customers.models import Consent, ConsentEvent
from customers.services import customer_upsert

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def shot(shots):
    def take(page: Page, name: str) -> None:
        page.screenshot(path=str(shots / f"preference_centre_{name}.png"), full_page=True)

    return take


@pytest.fixture
def emailed(settings):
    """Grace, lapsed, reachable by email and SMS, and the promotion email she was sent."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    ContactPolicy.objects.update_or_create(
        pk=1, defaults={"quiet_hours_start": dt.time(0), "quiet_hours_end": dt.time(0)}
    )
    customer, _ = customer_upsert(
        external_id="shop-grace",
        data={
            "email": "grace@example.com",
            "phone": "+442079460958",
            "first_name": "Grace",
            "consents": {"email": True, "sms": True},
        },
    )
    customer.last_purchase_at = timezone.now() - dt.timedelta(days=120)
    customer.save()
    campaign = campaign_create(
        data={
            "name": "Come back",
            "trigger": "reactivation",
            "status": "active",
            "holdout_percent": 0,
            "subject": "We miss you",
            "body": "Hi {{ customer.first_name }}",
            "body_html": "<p>Hi {{ customer.first_name }}</p>",
        }
    )
    campaign_evaluate(campaign_id=campaign.pk)
    messages_send_batch(campaign_id=campaign.pk)
    return customer, campaign


def preferences_path() -> str:
    (email,) = mail.outbox
    html = email.alternatives[0][0]
    (url,) = re.findall(r'class="preferences-link" href="([^"]+)"', html) or re.findall(
        r'href="([^"]+)"[^>]*class="preferences-link"', html
    )
    return url.removeprefix(settings.SITE_URL)


def test_a_customer_turns_off_sms_and_promotions_from_the_email_footer(page: Page, live_server, emailed, shot):
    customer, campaign = emailed
    page.goto(live_server.url + preferences_path())
    expect(page.locator("h1")).to_have_text("Your preferences")
    expect(page.locator("#channel-email")).to_be_checked()
    expect(page.locator("#channel-sms")).to_be_checked()
    expect(page.locator("#preferences-channels")).to_contain_text("g***@example.com")
    expect(page.locator("#preferences-channels")).to_contain_text("***958")
    expect(page.locator("#preferences-channels")).not_to_contain_text("grace@example.com")
    for code in ("promotions", "reminders", "loyalty", "surveys"):
        expect(page.locator(f"#topic-{code}")).to_be_checked()
    shot(page, "before")

    page.uncheck("#channel-sms")
    page.uncheck("#topic-promotions")
    page.click("#preferences-save")
    expect(page.locator("#preferences-saved")).to_have_text("Your choices are saved.")
    expect(page.locator("#channel-sms")).not_to_be_checked()
    expect(page.locator("#topic-promotions")).not_to_be_checked()
    expect(page.locator("#channel-email")).to_be_checked()
    shot(page, "saved")

    page.reload()  # kept on the server, not in the page
    expect(page.locator("#topic-promotions")).not_to_be_checked()
    expect(page.locator("#topic-reminders")).to_be_checked()

    assert Consent.objects.get(customer=customer, channel="sms").source == "preference_centre"
    assert ConsentEvent.objects.filter(customer=customer, channel="sms", granted=False).count() == 1
    assert TopicPreference.objects.get(customer=customer, topic__code="promotions").subscribed is False
    assert TopicPreferenceEvent.objects.filter(customer=customer, subscribed=False).count() == 1

    # The next promotion leaves her out.
    customer.last_purchase_at = timezone.now() - dt.timedelta(days=95)  # a new occasion
    customer.save()
    campaign_evaluate(campaign_id=campaign.pk)
    assert Message.objects.filter(campaign=campaign, customer=customer).count() == 1


def test_a_tampered_preferences_link_shows_a_clear_refusal(page: Page, live_server, emailed, shot):
    path = preferences_path()
    response = page.goto(live_server.url + path[:-4] + "abcd")
    assert response.status == 400
    expect(page.locator("h1")).to_have_text("This link is not valid")
    shot(page, "invalid")
