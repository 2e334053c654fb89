"""A marketer's first hour with campaigns, in a real browser: what they see must explain itself.

The editor shows no error box while nothing is wrong, estimates who would enter before anything
runs, says whether the preview's customer is eligible now (and why not), keeps that customer
chosen across a save, says where a test email went; the message list says in words what each
message is and why a queued one waits; the campaign list carries sent, conversion and uplift; the
report reads the same in the editor and on the metrics dashboard.

Screenshots go to $SCREENSHOT_DIR when it is set (to look at them), else to pytest's tmp_path.
"""

import datetime as dt
import re
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from campaigns.models import Campaign, ContactPolicy
from campaigns.services import campaign_create
from customers.models import Customer
from customers.services import customer_upsert
from tests.factories import campaign_half_converted

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def zone_at_local_hour(hour: int) -> str:
    """An Etc/GMT zone where it is now ``hour`` o'clock (Etc/GMT-5 is UTC+5)."""
    offset = (hour - timezone.now().astimezone(dt.UTC).hour) % 24
    offset = offset - 24 if offset > 12 else offset
    return "Etc/GMT" + ("+" if offset <= 0 else "-") + str(abs(offset))


def shopper(external_id: str, first_name: str, *, last_purchase_days: int, tz: str = "UTC") -> Customer:
    customer, _ = customer_upsert(
        external_id=external_id,
        data={"email": f"{external_id}@example.com", "first_name": first_name, "consents": {"email": True}},
    )
    Customer.objects.filter(pk=customer.pk).update(
        last_purchase_at=timezone.now() - dt.timedelta(days=last_purchase_days), timezone=tz
    )
    return customer


@pytest.fixture
def shop():
    """Grace and two more lapsed (Grace where it is 23:00 now, the others at noon), Lin who bought 5 days ago,
    the default quiet hours (21:00-09:00), and last month's campaign with its results."""
    ContactPolicy.objects.update_or_create(
        pk=1, defaults={"quiet_hours_start": dt.time(21), "quiet_hours_end": dt.time(9)}
    )
    night, day = zone_at_local_hour(23), zone_at_local_hour(12)
    shopper("shop-grace", "Grace", last_purchase_days=120, tz=night)
    shopper("shop-ada", "Ada", last_purchase_days=120, tz=day)
    shopper("shop-alan", "Alan", last_purchase_days=150, tz=day)
    shopper("shop-lin", "Lin", last_purchase_days=5)

    earlier = campaign_create(
        data={"name": "Winback autumn", "trigger": "reactivation", "subject": "Hi", "body": "Hi", "holdout_percent": 50}
    )
    campaign_half_converted(campaign_id=earlier.pk, at=timezone.now() - dt.timedelta(days=3))
    return {"night": night, "earlier": earlier}


def test_a_new_marketers_first_campaign_explains_itself(admin_page: Page, live_server, shop, shots: Path):
    page = admin_page
    page.goto(f"{live_server.url}/admin/campaigns/campaign/add/")

    page.fill("#id_name", "Come back")
    page.select_option("#id_trigger", "reactivation")
    page.fill("#id_param__reactivation__inactive_days", "60")
    page.fill("#id_subject", "We miss you, {{ customer.first_name }}")
    page.fill("#id_body", "Here is 10% off, {{ customer.first_name }}.")
    page.fill("#id_holdout_percent", "0")

    # Nothing is wrong: the preview (for the sample customer) shows, and no red box anywhere.
    expect(page.locator("#preview-subject")).to_have_text("We miss you, Ada")
    expect(page.locator("#preview-error")).to_be_hidden()
    expect(page.locator(".errornote:visible")).to_have_count(0)

    # Who would enter, before anything runs: Grace, Ada and Alan, not Lin.
    expect(page.locator("#audience-estimate")).to_have_text("About 3 customers would enter now.")

    # The preview for Lin says she is not eligible, and why.
    page.fill("#preview-customer", "shop-lin")
    expect(page.locator("#preview-subject")).to_have_text("We miss you, Lin")
    eligibility = page.locator("#preview-eligibility")
    expect(eligibility).to_have_text(
        "Not eligible now: the reactivation trigger needs no completed purchase for 60 days; "
        "here: last completed purchase 5 days ago."
    )
    page.locator("#campaign-estimate").screenshot(path=str(shots / "editor-estimate.png"))
    page.locator("#campaign-preview").screenshot(path=str(shots / "editor-not-eligible.png"))

    # Grace is; she stays chosen across "Save and continue editing".
    page.fill("#preview-customer", "shop-grace")
    expect(eligibility).to_have_text("Eligible now: the next run would send them this message.")
    page.click("input[name=_continue]")
    campaign = Campaign.objects.get(name="Come back")
    expect(page).to_have_url(
        re.compile(rf"/admin/campaigns/campaign/{campaign.pk}/change/\?preview_customer=shop-grace")
    )
    expect(page.locator("#preview-customer")).to_have_value("shop-grace")
    expect(page.locator("#preview-subject")).to_have_text("We miss you, Grace")
    expect(page.locator("#preview-error")).to_be_hidden()

    # Activate and run; still Grace in the preview afterwards.
    page.click("#campaign-active")
    expect(page.locator("#campaign-status")).to_have_text("Active")
    page.click("#campaign-run")
    expect(page.locator("ul.messagelist")).to_contain_text("Run now: 3 queued")
    expect(page.locator("#preview-customer")).to_have_value("shop-grace")
    expect(eligibility).to_contain_text("they already had this campaign for the same occasion")
    expect(page.locator("#audience-estimate")).to_have_text(
        "About 0 customers would enter now. 3 more already had this campaign for the same occasion."
    )

    # A test: the page says where it went.
    page.fill("#send-test-to", "staff@example.com")  # the staff user's own address
    page.click("#send-test-button")
    expect(page.locator("ul.messagelist")).to_contain_text("Test sent to staff@example.com: kept in memory")
    expect(page.locator("#campaign-report th", has_text="Held out (control group)")).to_be_visible()
    page.screenshot(path=str(shots / "editor-after-run.png"), full_page=True)
    page.locator("ul.messagelist").screenshot(path=str(shots / "editor-test-sent.png"))
    page.locator("#campaign-preview").screenshot(path=str(shots / "editor-preview-after-run.png"))

    # The message list: statuses in words, and why Grace's message waits.
    page.goto(f"{live_server.url}/admin/campaigns/message/?campaign__id__exact={campaign.pk}")
    grace_row = page.locator("#result_list tbody tr", has_text="shop-grace")
    expect(grace_row).to_contain_text("Queued")
    expect(grace_row).to_contain_text(f"Quiet hours (21:00-09:00): waits until 09:00 tomorrow, {shop['night']} time.")
    expect(page.locator("#result_list tbody tr", has_text="shop-ada")).to_contain_text("Due now")
    expect(page.locator("#result_list")).not_to_contain_text("queued")
    page.screenshot(path=str(shots / "message-list.png"), full_page=True)

    # The campaign list: sent, conversion and uplift per campaign.
    page.goto(f"{live_server.url}/admin/campaigns/campaign/")
    earlier_row = page.locator("#result_list tbody tr", has_text="Winback autumn")
    expect(earlier_row.locator("td.field-sent_column")).to_have_text("2")
    expect(earlier_row.locator("td.field-conversion_column")).to_have_text("50.0% (0.0%)")
    expect(earlier_row.locator("td.field-uplift_column")).to_have_text("+50.0 pp, not significant yet")
    expect(page.locator("#result_list tbody tr", has_text="Come back").locator("td.field-uplift_column")).to_have_text(
        "—"
    )
    page.screenshot(path=str(shots / "campaign-list.png"), full_page=True)

    # The report: the same words in the campaign editor and on the dashboard.
    page.goto(f"{live_server.url}/admin/campaigns/campaign/{shop['earlier'].pk}/change/")
    report = page.locator("#campaign-report")
    verdict = report.locator("[data-figure=verdict]").inner_text()
    uplift = report.locator("[data-figure=uplift]").inner_text()
    assert verdict.startswith("Not significant yet: too few messages (2 sent, 2 held out)")
    assert uplift.startswith("Uplift +50.0 pp (95% CI ")
    expect(report.locator("tr[data-group=treated] [data-figure=conversion]")).to_have_text("50.0%")
    report.screenshot(path=str(shots / "editor-report.png"))
    page.goto(f"{live_server.url}/admin/metrics/dashboard/")
    block = page.locator(f"#campaign-impact [data-campaign='{shop['earlier'].pk}']")
    expect(block.locator("[data-figure=verdict]")).to_have_text(verdict)
    expect(block.locator("[data-figure=uplift]")).to_have_text(uplift)
    expect(block.locator("tr[data-group=control] [data-figure=conversion]")).to_have_text("0.0%")
    block.screenshot(path=str(shots / "dashboard-report.png"))
