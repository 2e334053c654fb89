"""Staff work with loyalty in a real browser: the ledger in the 360, adjusting points with a
reason, and the program's settings page."""

import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from playwright.sync_api import Page, expect

from customers.models import LoyaltyProgram, LoyaltyTier, PointsEntry
from tests.e2e.conftest import STAFF_PASSWORD
from tests.loyalty_support import balance, buy, program_set

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def ada():
    program_set(tiers=[("bronze", "Bronze", "0", "1"), ("silver", "Silver", "500", "1.25")])
    buy("shop-ada", "120.00", external_id="ada-order-1")
    from customers.models import Customer

    return Customer.objects.get(external_id="shop-ada")


def test_the_360_shows_the_ledger_and_loyalty_summary(admin_page: Page, live_server, ada):
    page = admin_page
    page.goto(f"{live_server.url}/admin/customers/customer/{ada.pk}/change/")
    expect(page.locator("[data-stat=loyalty_balance]")).to_have_text("120")
    expect(page.locator("[data-stat=loyalty_tier]")).to_have_text("Bronze")
    ledger = page.locator("#customer-360-ledger tbody tr.ledger-entry")
    expect(ledger).to_have_count(1)
    expect(ledger.first).to_contain_text("earn")
    expect(ledger.first).to_contain_text("120")


def test_staff_adjust_points_with_a_reason(admin_page: Page, live_server, ada):
    page = admin_page
    page.goto(f"{live_server.url}/admin/customers/customer/{ada.pk}/change/")
    page.click("#adjust-points-link")
    expect(page).to_have_url(re.compile(rf"/admin/customers/customer/{ada.pk}/adjust-points/$"))
    expect(page.locator("#adjust-balance")).to_have_text("120")

    # No reason: refused, nothing written.
    page.fill("#id_points", "30")
    page.click("input[name=_adjust]")
    expect(page.locator(".errorlist")).to_contain_text("required")
    assert not PointsEntry.objects.filter(kind="adjust").exists()

    page.fill("#id_points", "-30")
    page.fill("#id_reason", "Damaged parcel, goodwill reversed")
    page.click("input[name=_adjust]")
    expect(page).to_have_url(re.compile(rf"/admin/customers/customer/{ada.pk}/change/$"))
    expect(page.locator(".messagelist")).to_contain_text("balance is now 90")
    expect(page.locator("[data-stat=loyalty_balance]")).to_have_text("90")
    newest = page.locator("#customer-360-ledger tbody tr.ledger-entry").first
    expect(newest).to_contain_text("adjust")
    expect(newest).to_contain_text("-30")
    expect(newest).to_contain_text("Damaged parcel, goodwill reversed")
    entry = PointsEntry.objects.get(kind="adjust")
    assert entry.created_by is not None and entry.created_by.username == "staff"
    assert balance("shop-ada") == 90


def test_taking_more_than_the_balance_is_refused_in_the_form(admin_page: Page, live_server, ada):
    page = admin_page
    page.goto(f"{live_server.url}/admin/customers/customer/{ada.pk}/adjust-points/")
    page.fill("#id_points", "-500")
    page.fill("#id_reason", "Too much")
    page.click("input[name=_adjust]")
    expect(page.locator(".errorlist")).to_contain_text("balance is 120")
    assert balance("shop-ada") == 120


def test_staff_without_the_permission_see_no_adjust_button(page: Page, live_server, ada, django_user_model):
    clerk = django_user_model.objects.create_user("clerk", password=STAFF_PASSWORD, is_staff=True)
    clerk.user_permissions.add(*Permission.objects.filter(codename__in=["view_customer", "change_customer"]))
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "clerk")
    page.fill("#id_password", STAFF_PASSWORD)
    page.click("input[type=submit]")
    page.goto(f"{live_server.url}/admin/customers/customer/{ada.pk}/change/")
    expect(page.locator("#customer-360-ledger")).to_be_visible()
    expect(page.locator("#adjust-points-link")).to_have_count(0)
    response = page.goto(f"{live_server.url}/admin/customers/customer/{ada.pk}/adjust-points/")
    assert response is not None and response.status == 403


def test_staff_edit_the_program_settings_and_tiers(admin_page: Page, live_server, ada):
    page = admin_page
    page.goto(f"{live_server.url}/admin/customers/loyaltyprogram/")
    expect(page).to_have_url(re.compile(r"/admin/customers/loyaltyprogram/1/change/$"))
    expect(page.locator(".object-tools a.addlink")).to_have_count(0)
    page.fill("#id_earn_rate", "2")
    page.fill("#id_welcome_bonus", "0")
    page.fill("#id_max_redeem_share", "0.5")
    # The second tier row: Silver's multiplier.
    silver = LoyaltyTier.objects.get(code="silver")
    row = page.locator(f"input[name$='-id'][value='{silver.pk}']").locator("xpath=ancestor::tr")
    row.locator("input[name$='-multiplier']").fill("1.4")
    page.click("input[name=_continue]")
    expect(page.locator(".messagelist")).to_contain_text("changed successfully")

    program = LoyaltyProgram.objects.get()
    assert (program.earn_rate, program.max_redeem_share, program.welcome_bonus) == (
        Decimal("2"),
        Decimal("0.5"),
        0,
    )
    assert LoyaltyTier.objects.get(code="silver").multiplier == Decimal("1.4")
    buy("shop-ada", "400.00")  # 520 spent: silver, so 400 x 2 x 1.4
    assert balance("shop-ada") == 120 + 1120


def test_tiers_without_a_base_tier_are_refused(admin_page: Page, live_server, ada):
    page = admin_page
    page.goto(f"{live_server.url}/admin/customers/loyaltyprogram/1/change/")
    bronze = LoyaltyTier.objects.get(code="bronze")
    row = page.locator(f"input[name$='-id'][value='{bronze.pk}']").locator("xpath=ancestor::tr")
    row.locator("input[name$='-threshold']").fill("10")
    page.click("input[name=_save]")
    expect(page.locator(".errornote, .errorlist").first).to_be_visible()
    expect(page.locator("body")).to_contain_text("threshold of 0")
    assert LoyaltyTier.objects.get(code="bronze").threshold == 0
