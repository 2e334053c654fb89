"""A marketer finds who is sliding and aims a campaign at them, in a real browser (headless chromium):
the dashboard's segment flow, a cell's customers, the lifecycle board and the campaign editor."""

import datetime as dt
import re

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from metrics import board, rfm
from metrics.board import board_columns
from metrics.churn_risk import customer_scores_refresh
from metrics.rfm_flow import segment_flow
from tests.metrics.conftest import buy, noon

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def shop():
    """Sixty customers who bought before the last quarter; a third of them came back in it (big
    spenders among them), and twelve new ones arrived. Scored as of now."""
    today = timezone.localdate()
    for n in range(60):
        for k in range(1 + n % 5):
            buy(f"loyal-{n:02d}", noon(today - dt.timedelta(days=120 + 2 * n + 40 * k)), f"{20 + 3 * n}.00")
        if n % 3 == 0:
            buy(f"loyal-{n:02d}", noon(today - dt.timedelta(days=10 + n // 3)), f"{50 + 5 * n}.00")
    for n in range(12):
        buy(f"fresh-{n:02d}", noon(today - dt.timedelta(days=5 + n)), "30.00")
    customer_scores_refresh()


def test_the_flow_chart_links_each_cell_to_its_customers(admin_page: Page, live_server, shop, tmp_path):
    page = admin_page
    page.goto(f"{live_server.url}/admin/metrics/dashboard/")
    # The chart comes as a document of its own, so the dashboard's request scores nothing.
    expect(page.locator("#rfm-flow iframe#flow-frame")).to_be_visible()
    chart = page.frame_locator("#flow-frame").locator("svg")
    expect(chart).to_be_visible()
    expect(chart.locator("g[data-from]")).to_have_count(9 * 8)  # "none" + eight segments, by eight
    page.locator("#rfm-flow").screenshot(path=str(tmp_path / "dashboard-flow.png"))

    now = timezone.now()
    flow = segment_flow(start=now - dt.timedelta(days=90), end=now).flow
    assert sum(flow["none"].values()) == 12
    # The cells show the selector's numbers (the page's dates are a moment earlier: same history).
    for source in ("none", "Champions"):
        for target in rfm.SEGMENTS:
            cell = chart.locator(f'g[data-from="{source}"][data-to="{target}"]')
            expect(cell).to_have_attribute("data-count", str(flow[source][target]))

    target = max(flow["none"], key=flow["none"].get)
    chart.locator(f'a g[data-from="none"][data-to="{target}"]').click()
    expect(page.locator("h1")).to_contain_text("RFM segment flow")
    cell = page.locator("#flow-cell")
    expect(cell.locator("h2")).to_have_text(f"none → {target}")
    expect(cell.locator("tr.flow-customer")).to_have_count(flow["none"][target])
    names = cell.locator("tr.flow-customer td:first-child").all_inner_texts()
    assert all(name.startswith("fresh-") for name in names) and names == sorted(names)
    page.screenshot(path=str(tmp_path / "flow-cell.png"), full_page=True)


def test_the_board_lists_each_stage_most_at_risk_first_and_aims_a_campaign(
    admin_page: Page, live_server, shop, tmp_path, monkeypatch
):
    monkeypatch.setattr(board, "PAGE_CUSTOMERS", 4)  # so a stage of this small shop spans pages
    page = admin_page
    page.goto(f"{live_server.url}/admin/metrics/dashboard/")
    page.click("#board-link")
    expect(page.locator("h1")).to_have_text("Lifecycle board")
    stages = page.locator("#lifecycle-board .stage")
    expect(stages).to_have_count(8)

    stored = board_columns()
    for column in stored.columns:
        stage = page.locator(f'.stage[data-segment="{column.segment}"]')
        expect(stage.locator(".count")).to_have_text(str(column.customers))
        shown = stage.locator("li[data-customer]")
        expect(shown).to_have_count(len(column.first))
        assert shown.evaluate_all("items => items.map(i => i.dataset.customer)") == [
            c.external_id for c in column.first
        ]
    page.screenshot(path=str(tmp_path / "lifecycle-board.png"), full_page=True)

    # The biggest stage, paged by key: every customer once, the most spend at risk first.
    biggest = max(stored.columns, key=lambda column: column.customers)
    page.locator(f'.stage[data-segment="{biggest.segment}"] h2 a').click()
    expect(page.locator("#stage-page")).to_have_attribute("data-segment", biggest.segment)
    seen = page.locator("#stage-page tr.stage-customer td:first-child").all_inner_texts()
    while page.locator("#stage-next").count():
        previous = page.url
        page.click("#stage-next")
        page.wait_for_url(lambda url, previous=previous: url != previous)  # else these rows may be the old page
        seen += page.locator("#stage-page tr.stage-customer td:first-child").all_inner_texts()
    assert len(seen) == len(set(seen)) == biggest.customers
    assert seen[: len(biggest.first)] == [c.external_id for c in biggest.first]

    page.goto(f"{live_server.url}/admin/metrics/dashboard/board/")
    page.locator('.stage[data-segment="At risk"] a.aim-campaign').click()
    expect(page).to_have_url(re.compile(r"/admin/campaigns/campaign/add/\?audience_rfm_segment=At%20risk$"))
    chosen = page.locator("[name=audience_rfm_segment]:checked, [name=audience_rfm_segment] option:checked")
    expect(chosen).to_have_count(1)
    page.screenshot(path=str(tmp_path / "campaign-editor-at-risk.png"), full_page=True)
    assert chosen.first.get_attribute("value") == "At risk"
