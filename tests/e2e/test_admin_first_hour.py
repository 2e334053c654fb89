"""A new staff member's first hour with the admin, in a real browser: the site's front page and
"View site" lead somewhere, no request answers 4xx (the favicon included), the consent badges
are readable (WCAG AA contrast, light and dark theme), and the customer list shows Tier and Points
in a 1400 x 900 window with the navigation sidebar open."""

import datetime as dt
import re
from collections.abc import Iterator
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import Browser, Page, expect

from customers.models import Consent
from tests.e2e.conftest import STAFF_PASSWORD
from tests.factories import CustomerFactory
from tests.loyalty_support import program_set

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

WCAG_AA_NORMAL_TEXT = 4.5

# The WCAG 2 contrast ratio of an element's text against the background it is drawn on (its own,
# or the nearest ancestor's that is not transparent).
CONTRAST_JS = """
(element) => {
  const parse = (value) => value.match(/[\\d.]+/g).map(Number);
  const luminance = ([r, g, b]) => {
    const channel = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  };
  let backdrop = element;
  while (backdrop) {
    const color = parse(getComputedStyle(backdrop).backgroundColor);
    if (color.length < 4 || color[3] > 0) break;
    backdrop = backdrop.parentElement;
  }
  const background = backdrop ? parse(getComputedStyle(backdrop).backgroundColor) : [255, 255, 255];
  const [a, b] = [luminance(parse(getComputedStyle(element).color)), luminance(background)];
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
}
"""


def log_in(page: Page, username: str) -> None:
    page.fill("#id_username", username)
    page.fill("#id_password", STAFF_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")


@pytest.fixture
def page_1400x900(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


@pytest.fixture
def shop():
    program_set(tiers=[("bronze", "Bronze", "0", "1"), ("gold", "Gold Club", "2000", "1.5")])
    now = timezone.now()
    customers = [
        CustomerFactory(
            external_id=f"shop-{number:03d}",
            email=f"a.rather.long.address.{number}@customers.example-shop.co.uk",
            first_name="Maximiliane",
            last_name="Oberhuber-Castellanos",
            last_purchase_at=now - dt.timedelta(days=number),
            orders_count=number,
            total_spent=Decimal("852.270000000000") * number,
            tier="gold" if number % 2 else "bronze",
            points_balance=1000 * number,
        )
        for number in range(1, 8)
    ]
    Consent.objects.create(customer=customers[0], channel="email", granted=True, source="api")
    return customers


def test_the_front_page_and_view_site_lead_to_the_admin_and_nothing_answers_4xx(
    page: Page, live_server, admin_user, shop
):
    failures: list[tuple[int, str]] = []

    def record(response) -> None:
        if response.status >= 400:
            failures.append((response.status, response.url))

    page.on("response", record)

    page.goto(f"{live_server.url}/")
    expect(page).to_have_url(re.compile(r"/admin/login/"))
    log_in(page, admin_user.username)

    page.click("#user-tools a:has-text('View site')")
    expect(page).to_have_url(re.compile(r"/admin/metrics/dashboard/$"))
    expect(page.locator("#content h1")).to_have_text("Retention dashboard")

    page.goto(f"{live_server.url}/admin/customers/customer/{shop[0].pk}/change/")
    expect(page.locator("#customer-360")).to_be_visible()
    icon = page.locator("link[rel=icon]").get_attribute("href")
    assert icon and page.request.get(f"{live_server.url}{icon}").ok
    assert page.request.get(f"{live_server.url}/favicon.ico").ok  # follows the redirect to the icon
    assert failures == []


@pytest.mark.parametrize("color_scheme", ["light", "dark"])
def test_consent_badges_pass_wcag_aa_contrast(browser: Browser, live_server, admin_user, shop, color_scheme):
    context = browser.new_context(viewport={"width": 1400, "height": 900}, color_scheme=color_scheme)
    page = context.new_page()
    try:
        page.goto(f"{live_server.url}/admin/customers/customer/{shop[0].pk}/change/")
        log_in(page, admin_user.username)
        granted = page.locator("#customer-360-consents .granted")
        expect(granted).to_have_count(1)
        expect(granted).to_have_text("granted")
        assert granted.evaluate(CONTRAST_JS) >= WCAG_AA_NORMAL_TEXT
        not_granted = page.locator("#customer-360-consents .not-granted").first
        assert not_granted.evaluate(CONTRAST_JS) >= WCAG_AA_NORMAL_TEXT
    finally:
        context.close()


def test_the_customer_list_shows_tier_and_points_at_1400_px(
    page_1400x900: Page, live_server, admin_user, shop, tmp_path
):
    page = page_1400x900
    page.goto(f"{live_server.url}/admin/customers/customer/")
    log_in(page, admin_user.username)
    expect(page.locator("#nav-sidebar")).to_be_visible()  # the widest layout: both sidebars open

    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(7)
    expect(rows.first).to_contain_text("shop-001")  # the most recent buyer first
    expect(rows.first).to_contain_text("$852.27")
    expect(rows.first).to_contain_text("Gold Club")
    expect(rows.first.locator("td.field-points_display")).to_have_text("1000")

    for column in ("tier_display", "points_display"):
        heading = page.locator(f"#result_list thead th.column-{column}")
        expect(heading).to_be_in_viewport(ratio=1)
        cell = rows.first.locator(f"td.field-{column}")
        box = cell.bounding_box()
        assert box is not None and box["x"] + box["width"] <= 1400, (column, box)
    results = page.locator("#changelist .results")
    assert results.evaluate("(e) => e.scrollWidth <= e.clientWidth"), "the table needs no horizontal scrolling"
    page.screenshot(path=str(tmp_path / "customer-list-1400x900.png"))
