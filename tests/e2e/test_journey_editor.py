"""A marketer builds a journey in the campaign editor in a real browser: adds a message, a message and
a wait, moves the wait between the two messages, gives the second message an A/B test, saves; sees
the drawn flow; previews the second step's variant B for a customer; activates the campaign and
finds adding, removing and reordering turned off (texts still editable), the server refusing a
reorder smuggled in through the JSON; pauses it and adds a split and a tag.

Screenshots (journey_editor_*.png) go to $SCREENSHOT_DIR when it is set (to look at them), else to
pytest's tmp_path."""

import datetime as dt
import json
import os
import re
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from campaigns.models import Campaign
from customers.services import customer_upsert

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def shot(tmp_path):
    folder = Path(os.environ.get("SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)

    def take(locator_or_page, name: str) -> None:
        locator_or_page.screenshot(path=str(folder / f"journey_editor_{name}.png"))

    return take


@pytest.fixture
def grace():
    customer, _ = customer_upsert(
        external_id="shop-grace",
        data={"email": "grace@example.com", "first_name": "Grace", "last_name": "Hopper", "consents": {"email": True}},
    )
    customer.last_purchase_at = timezone.now() - dt.timedelta(days=120)
    customer.save()
    return customer


def card(page: Page, number: int):
    return page.locator(f"#journey-steps > li:nth-child({number})")


def keys_in_list(page: Page) -> list[str]:
    return page.locator("#journey-steps > li .step-key").evaluate_all("inputs => inputs.map(i => i.value)")


def test_build_a_journey_see_its_flow_preview_a_variant_and_lock_it_while_active(
    admin_page: Page, live_server, grace, shot
):
    page = admin_page
    page.goto(f"{live_server.url}/admin/campaigns/campaign/add/")
    page.fill("#id_name", "Come back in three steps")
    page.select_option("#id_trigger", "reactivation")
    page.fill("#id_holdout_percent", "0")
    expect(page.locator("#journey-empty")).to_be_visible()
    expect(page.locator("fieldset.campaign-message")).to_be_visible()

    # Add a message, a second message and a wait.
    page.click("#journey-add-message")
    expect(page.locator("fieldset.campaign-message")).to_be_hidden()  # a journey's messages are its steps'
    card(page, 1).locator(".step-subject").fill("We miss you, {{ customer.first_name }}")
    card(page, 1).locator(".step-body").fill("Come back soon, {{ customer.first_name }}.")
    page.click("#journey-add-message")
    card(page, 2).locator(".step-subject").fill("Still there?")
    card(page, 2).locator(".step-body").fill("One more nudge.")
    page.click("#journey-add-wait")
    card(page, 3).locator(".wait-amount").fill("2")
    card(page, 3).locator(".wait-unit").select_option("days")
    assert keys_in_list(page) == ["message-1", "message-2", "wait-1"]

    # Reorder: the wait goes between the two messages.
    card(page, 3).locator(".step-up").click()
    assert keys_in_list(page) == ["message-1", "wait-1", "message-2"]
    expect(card(page, 1).locator(".step-up")).to_be_disabled()
    expect(card(page, 3).locator(".step-down")).to_be_disabled()

    # An A/B test on the second message; variant B gets its own subject.
    card(page, 3).locator(".step-add-ab").click()
    variant_b = card(page, 3).locator('.journey-variant[data-variant="b"]')
    variant_b.locator(".variant-subject").fill("Grace, 200 points are waiting: {{ customer.first_name }}")
    variant_b.locator(".variant-body").fill("Variant B body.")
    steps = json.loads(page.locator("#id_steps_json").input_value())
    assert [step["key"] for step in steps] == ["message-1", "wait-1", "message-2"]
    assert steps[1] == {"key": "wait-1", "type": "wait", "minutes": 2880}
    page.locator("#journey-editor").scroll_into_view_if_needed()
    shot(page.locator("fieldset.campaign-journey"), "build")

    # A broken template in variant B: refused, the error next to that variant's body.
    variant_b.locator(".variant-body").fill("{% if %}Variant B body.")
    page.click("input[name=_continue]")
    error = card(page, 3).locator('.journey-variant[data-variant="b"] [data-field="variants[1].body"] .errorlist')
    expect(error).to_contain_text("template error")
    expect(card(page, 1).locator(".errorlist")).to_have_count(0)
    assert not Campaign.objects.exists()
    card(page, 3).scroll_into_view_if_needed()
    shot(card(page, 3), "step_error")
    variant_b = card(page, 3).locator('.journey-variant[data-variant="b"]')
    variant_b.locator(".variant-body").fill("Variant B body.")

    page.click("input[name=_continue]")
    expect(page.locator("#campaign-status")).to_have_text("Draft")
    campaign = Campaign.objects.get()
    assert [step["key"] for step in campaign.steps] == ["message-1", "wait-1", "message-2"]
    assert [v["key"] for v in campaign.steps[2]["variants"]] == ["a", "b"]
    assert campaign.steps[2]["variants"][1]["subject"].startswith("Grace, 200 points")

    # The drawn flow: three boxes in order, each with its counts, ending in "Completed".
    flow = page.locator("#journey-flow svg")
    expect(flow).to_be_visible()
    boxes = page.locator("#journey-flow g.flow-step")
    assert boxes.evaluate_all("gs => gs.map(g => g.dataset.step)") == ["message-1", "wait-1", "message-2"]
    expect(boxes.nth(0)).to_contain_text("entered 0 · waiting 0 · sent 0 · exited 0")
    expect(boxes.nth(1)).to_contain_text("wait 2 days")
    expect(page.locator("#journey-flow .flow-done-node")).to_contain_text("Completed")
    shot(page.locator("#journey-flow"), "flow")

    # Preview the second message step's variant B for Grace.
    expect(page.locator("#preview-step-row")).to_be_visible()
    page.fill("#preview-customer", "shop-grace")
    page.select_option("#preview-step", "message-2")
    expect(page.locator("#preview-variant")).to_have_value("a")
    page.select_option("#preview-variant", "b")
    expect(page.locator("#preview-which")).to_have_text("Step message-2, variant b")
    expect(page.locator("#preview-subject")).to_have_text("Grace, 200 points are waiting: Grace")
    expect(page.locator("#preview-body")).to_contain_text("Variant B body.")
    expect(page.locator("#preview-error")).to_be_hidden()
    expect(page.locator("#send-test-step")).to_have_value("message-2")
    expect(page.locator("#send-test-variant")).to_have_value("b")
    shot(page.locator("#campaign-preview"), "preview")

    # Active: no adding, removing or reordering; texts stay editable.
    page.click("#campaign-active")
    expect(page.locator("#campaign-status")).to_have_text("Active")
    expect(page.locator("#journey-locked-note")).to_have_text(
        "Pause the campaign to add, remove or reorder steps; texts can change now."
    )
    for add in ("message", "wait", "split", "tag"):
        expect(page.locator(f"#journey-add-{add}")).to_be_disabled()
    for number in (1, 2, 3):
        expect(card(page, number).locator(".step-remove")).to_be_disabled()
        expect(card(page, number).locator(".step-up")).to_be_disabled()
        expect(card(page, number).locator(".step-down")).to_be_disabled()
        expect(card(page, number).locator(".step-key")).to_be_disabled()
    expect(card(page, 1).locator(".step-body")).to_be_editable()
    page.locator("#journey-editor").scroll_into_view_if_needed()
    shot(page.locator("fieldset.campaign-journey"), "active")

    card(page, 1).locator(".step-body").fill("Come back today, {{ customer.first_name }}.")
    page.click("input[name=_continue]")
    expect(page.locator("ul.messagelist")).to_contain_text("was changed successfully")
    campaign.refresh_from_db()
    assert campaign.steps[0]["body"] == "Come back today, {{ customer.first_name }}."

    # A reorder typed into the JSON is refused by the server, on the form, the edit kept.
    page.locator("#journey-raw summary").click()
    reordered = [campaign.steps[1], campaign.steps[0], campaign.steps[2]]
    page.fill("#id_steps_json", json.dumps(reordered, indent=2))
    assert keys_in_list(page) == ["wait-1", "message-1", "message-2"]  # the list follows the JSON
    page.click("input[name=_continue]")
    expect(page.locator("#journey-list-errors")).to_contain_text("pause the campaign to change its steps")
    expect(page.locator(".errornote").first).to_be_visible()
    expect(page.locator("form#campaign_form")).to_contain_text("needs the campaign paused")
    assert keys_in_list(page) == ["wait-1", "message-1", "message-2"]
    campaign.refresh_from_db()
    assert [step["key"] for step in campaign.steps] == ["message-1", "wait-1", "message-2"]
    shot(page, "refused")
    page.locator("fieldset.campaign-journey").scroll_into_view_if_needed()
    shot(page.locator("fieldset.campaign-journey"), "refused_journey")
    assert re.search(r"/admin/campaigns/campaign/\d+/change/", page.url)

    # Paused: the controls come back; a split after the wait (bought: exit, else the nudge) and a tag.
    page.click("#campaign-paused")
    expect(page.locator("#campaign-status")).to_have_text("Paused")
    expect(page.locator("#journey-locked-note")).to_be_hidden()
    page.click("#journey-add-split")
    split = card(page, 4)
    split.locator(".step-up").click()
    split = card(page, 3)
    expect(split.locator(".step-key")).to_have_value("split-1")
    split.locator(".split-no").select_option("message-2")
    page.click("#journey-add-tag")
    card(page, 5).locator(".tag-add").fill("nudged, journey")
    page.click("input[name=_continue]")
    expect(page.locator("ul.messagelist")).to_contain_text("was changed successfully")
    campaign.refresh_from_db()
    assert [step["key"] for step in campaign.steps] == ["message-1", "wait-1", "split-1", "message-2", "tag-1"]
    assert campaign.steps[2] == {
        "key": "split-1",
        "type": "split",
        "condition": {"purchased_since_entry": True},
        "yes": "exit",
        "no": "message-2",
    }
    expect(page.locator("#journey-flow .flow-exit-node")).to_contain_text("Exit")
    shot(page.locator("#journey-flow"), "flow_split")
    card(page, 3).scroll_into_view_if_needed()
    shot(card(page, 3), "split")
    shot(card(page, 5), "tag")
