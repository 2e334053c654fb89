"""Marketers build a campaign in the admin editor in a real browser: the trigger picker shows the
chosen trigger's parameters, the preview renders live for a chosen customer (who stays chosen
across saves), an error box shows only while there is an error, invalid parameters and templates
are refused, then activate, run now, send a test and pause."""

import datetime as dt
import re

import pytest
from django.core import mail
from django.utils import timezone
from playwright.sync_api import Page, expect

from campaigns.models import Campaign, ContactPolicy, Message
from customers.services import customer_upsert

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def grace():
    customer, _ = customer_upsert(
        external_id="shop-grace",
        data={"email": "grace@example.com", "first_name": "Grace", "last_name": "Hopper", "consents": {"email": True}},
    )
    customer.last_purchase_at = timezone.now() - dt.timedelta(days=120)
    customer.save()
    # The run below happens now, whatever the hour: no quiet hours in the way.
    ContactPolicy.objects.update_or_create(
        pk=1, defaults={"quiet_hours_start": dt.time(0), "quiet_hours_end": dt.time(0)}
    )
    return customer


def test_build_preview_save_activate_run_test_and_pause(admin_page: Page, live_server, grace, settings):
    settings.TEST_EMAIL_DOMAINS = ["example.com"]  # the shop's own team may receive tests
    page = admin_page
    page.goto(f"{live_server.url}/admin/campaigns/campaign/add/")

    # The trigger picker: only the chosen trigger's parameters show.
    page.select_option("#id_trigger", "reactivation")
    expect(page.locator("fieldset.trigger-params-reactivation")).to_be_visible()
    expect(page.locator("fieldset.trigger-params-birthday")).to_be_hidden()
    page.select_option("#id_trigger", "birthday")
    expect(page.locator("fieldset.trigger-params-birthday")).to_be_visible()
    expect(page.locator("fieldset.trigger-params-reactivation")).to_be_hidden()

    # The live preview, for the sample customer, then for Grace.
    page.fill("#id_name", "Come back, Grace")
    page.select_option("#id_trigger", "reactivation")
    page.fill("#id_subject", "We miss you, {{ customer.first_name }}")
    page.fill("#id_body", "Here are {{ offer.bonus_points }} points, {{ customer.first_name }}.")
    page.fill("#id_offer_bonus_points", "150")
    expect(page.locator("#preview-subject")).to_have_text("We miss you, Ada")
    expect(page.locator("#preview-error")).to_be_hidden()  # no empty red box while all is well
    page.fill("#preview-customer", "shop-grace")
    expect(page.locator("#preview-subject")).to_have_text("We miss you, Grace")
    expect(page.locator("#preview-body")).to_contain_text("Here are 150 points, Grace.")

    # A broken template shows in the preview and is refused on save; so is a parameter out of range.
    page.fill("#id_body", "{% if %}broken")
    expect(page.locator("#preview-error")).to_contain_text("template error")
    expect(page.locator("#preview-error")).to_be_visible()
    page.click("input[name=_continue]")
    expect(page.locator("#id_body_error")).to_contain_text("template error")
    page.fill("#id_body", "Here are {{ offer.bonus_points }} points, {{ customer.first_name }}.")
    expect(page.locator("#preview-error")).to_be_hidden()  # fixed: the box goes away
    page.fill("#id_param__reactivation__inactive_days", "0")
    page.click("input[name=_continue]")
    expect(page.locator("#id_param__reactivation__inactive_days_error")).to_contain_text("between 1 and 3650")
    expect(page.locator("#preview-customer")).to_have_value("shop-grace")  # a refused save keeps the customer
    assert not Campaign.objects.exists()

    # Fixed, saved: the parameters and the offer are stored in the API's shape.
    page.fill("#id_body", "Here are {{ offer.bonus_points }} points, {{ customer.first_name }}.")
    page.fill("#id_param__reactivation__inactive_days", "60")
    page.fill("#id_offer_bonus_points", "150")
    page.fill("#id_holdout_percent", "0")
    page.click("input[name=_continue]")
    expect(page.locator("#campaign-status")).to_have_text("Draft")
    campaign = Campaign.objects.get()
    assert (campaign.params, campaign.offer) == ({"inactive_days": 60}, {"bonus_points": 150})
    expect(page).to_have_url(re.compile(rf"/admin/campaigns/campaign/{campaign.pk}/change/"))
    # The preview customer survived the save.
    expect(page.locator("#preview-customer")).to_have_value("shop-grace")
    expect(page.locator("#preview-subject")).to_have_text("We miss you, Grace")
    eligible = "Eligible now: the next run would send them this message."
    expect(page.locator("#preview-eligibility")).to_have_text(eligible)

    # Activate, run now.
    page.click("#campaign-active")
    expect(page.locator("#campaign-status")).to_have_text("Active")
    page.click("#campaign-run")
    expect(page.locator("ul.messagelist")).to_contain_text("Run now: 1 queued")
    assert Message.objects.get(campaign=campaign).customer == grace
    expect(page.locator("#campaign-report .count-queued")).to_have_text(re.compile(r"[01]"))

    # Send a test to a staff address, rendered for the preview's customer.
    page.fill("#preview-customer", "shop-grace")
    expect(page.locator("#preview-subject")).to_have_text("We miss you, Grace")
    page.fill("#send-test-to", "marketing@example.com")
    page.click("#send-test-button")
    expect(page.locator("ul.messagelist")).to_contain_text(
        "Test sent to marketing@example.com: kept in memory (locmem email backend, for tests)"
    )
    test_mail = next(m for m in mail.outbox if m.to == ["marketing@example.com"])
    assert test_mail.subject == "[TEST] We miss you, Grace"

    # Pause.
    page.click("#campaign-paused")
    expect(page.locator("#campaign-status")).to_have_text("Paused")
    campaign.refresh_from_db()
    assert campaign.status == "paused"
