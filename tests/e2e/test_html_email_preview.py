"""A marketer sets the shop's email layout and writes an HTML email in the campaign editor, in a
real browser: the preview shows the email in the layout inside a sandboxed frame (no scripts, no
navigation), refreshed as they type; a colour that is not #rrggbb is refused.

Screenshots (html_email_*.png) go to $SCREENSHOT_DIR when it is set, else to tmp_path."""

import os
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from campaigns.content.models import EmailLayout

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def shot(tmp_path):
    folder = Path(os.environ.get("SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)

    def take(locator, name: str) -> None:
        locator.screenshot(path=str(folder / f"html_email_{name}.png"))

    return take


def test_layout_then_html_email_previewed_in_a_sandboxed_frame(admin_page: Page, live_server, shot):
    page = admin_page
    page.goto(f"{live_server.url}/admin/campaigns/emaillayout/")  # one record: straight to its form
    page.fill("#id_shop_name", "Tea & Co")
    page.fill("#id_shop_address", "1 High Street, London")
    page.fill("#id_brand_colour", "#aa3300")
    page.click("input[name=_save]")
    expect(page.locator(".messagelist")).to_contain_text("changed successfully")
    assert EmailLayout.objects.get().brand_colour == "#aa3300"

    page.goto(f"{live_server.url}/admin/campaigns/campaign/add/")
    page.fill("#id_name", "HTML hello")
    page.select_option("#id_trigger", "reactivation")
    page.fill("#id_subject", "Hello {{ customer.first_name }}")
    page.fill(
        "#id_body_html",
        '<h1>Hello {{ customer.first_name }}</h1><p><a class="button" href="https://shop.example.com/">Shop now</a></p>'
        "<script>document.title = 'ran'</script>",
    )
    frame_element = page.locator("#preview-html")
    expect(frame_element).to_be_visible()
    assert frame_element.get_attribute("sandbox") == ""
    frame = page.frame_locator("#preview-html")
    expect(frame.locator("h1")).to_have_text("Hello Ada")
    expect(frame.locator(".header")).to_contain_text("Tea & Co")
    expect(frame.locator(".footer")).to_contain_text("1 High Street, London")
    expect(frame.locator("a.unsubscribe-link")).to_have_text("Unsubscribe")
    # The inlined button colour, and no script ran in the frame.
    assert "aa3300" in (frame.locator("a.button").get_attribute("style") or "")
    assert frame.locator("title").inner_text() != "ran"
    # The text part is made from the HTML while there is no text body.
    expect(page.locator("#preview-body")).to_contain_text("Shop now (https://shop.example.com/)")
    shot(page.locator("#campaign-preview"), "preview")

    page.fill("#id_body_html", "<p>Changed, {{ customer.first_name }}</p>")
    expect(frame.locator("p").first).to_have_text("Changed, Ada")


def test_a_colour_that_is_not_hex_is_refused(admin_page: Page, live_server):
    page = admin_page
    page.goto(f"{live_server.url}/admin/campaigns/emaillayout/")
    page.evaluate("document.getElementById('id_brand_colour').type = 'text'")
    page.fill("#id_brand_colour", "red;}</style>")
    page.click("input[name=_save]")
    expect(page.locator(".errorlist")).to_contain_text("#rrggbb")
    assert EmailLayout.objects.get().brand_colour == "#1f6feb"
