"""Analysts read the retention dashboard in a real browser (headless chromium)."""

import datetime as dt
import importlib

import pytest
from django.apps import apps
from django.contrib.auth.models import Group
from django.utils import timezone
from playwright.sync_api import Page, expect

from customers.services import nps_record
from metrics.churn_risk import customer_scores_refresh
from metrics.periods import local_midnight
from metrics.snapshots import snapshots_fill
from tests.e2e.conftest import STAFF_PASSWORD
from tests.metrics.conftest import buy, noon

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PERIOD = "start=2026-03-01&end=2026-04-01&window_days=90"


@pytest.fixture
def shop():
    """The textbook shop: 30 customers active on 1 March, 2 of them lost, 8 new in March."""
    for n in range(30):
        buy(f"regular-{n:02d}", noon(dt.date(2025, 12, 11)), "40.00")
        if n >= 2:
            buy(f"regular-{n:02d}", noon(dt.date(2026, 3, 10)), f"{30 + n}.00")
    for n in range(8):
        buy(f"new-{n}", noon(dt.date(2026, 3, 5)), "25.00")
    for score in (10, 9, 9, 7, 3):
        nps_record(customer="regular-05", score=score, answered_at=noon(dt.date(2026, 3, 20)))
    snapshots_fill(until=dt.date(2026, 3, 31), days=30)
    customer_scores_refresh(as_of=local_midnight(dt.date(2026, 4, 1)))


@pytest.fixture
def staff_groups():
    """The staff groups come from data migrations, whose rows the flush between transactional
    tests removes: run the same migration functions again."""
    for module, function in (
        ("customers.migrations.0002_staff_groups", "create_groups"),
        ("metrics.migrations.0002_permissions_and_schedules", "grant_permissions"),
    ):
        getattr(importlib.import_module(module), function)(apps, None)


def login(page: Page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", STAFF_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")


def test_dashboard_shows_retention_trend_cohorts_segments_and_nps(admin_page: Page, live_server, shop, tmp_path):
    page = admin_page
    page.goto(f"{live_server.url}/admin/")
    page.click("a[href='/admin/metrics/dashboard/']")
    expect(page.locator("h1")).to_contain_text("Retention dashboard")

    page.goto(f"{live_server.url}/admin/metrics/dashboard/?{PERIOD}")
    cards = page.locator("#retention-cards")
    expect(cards.locator("[data-figure=crr]")).to_have_text("93.3 %")
    expect(cards.locator("[data-figure=churn_rate]")).to_have_text("6.7 %")
    expect(cards.locator("[data-figure=customers_start]")).to_have_text("30")
    expect(cards.locator("[data-figure=customers_end]")).to_have_text("36")
    expect(cards.locator("[data-figure=new_customers]")).to_have_text("8")
    # ARPPU: March's $1,474.00 over its 36 buyers (28 regulars who came back, 8 new).
    expect(cards.locator("[data-figure=arppu]")).to_contain_text("40.94")

    expect(page.locator("#trend-chart svg polyline")).to_have_count(2)
    expect(page.locator("#trend-chart svg title")).to_have_text("CRR and churn, rolling 30 days")

    heatmap = page.locator("#cohort-heatmap tbody tr")
    expect(heatmap).to_have_count(2)
    expect(heatmap.nth(0)).to_contain_text("2025-12")
    expect(heatmap.nth(0).locator("td").nth(0)).to_have_text("30")  # cohort size
    expect(heatmap.nth(0).locator("td").nth(1)).to_have_text("100%")  # month 0
    expect(heatmap.nth(0).locator("td").nth(4)).to_have_text("93%")  # March: 28 of 30
    expect(heatmap.nth(1)).to_contain_text("2026-03")

    segments = page.locator("#rfm-segments svg g[data-label]")
    expect(segments).to_have_count(8)
    expect(page.locator("#rfm")).to_contain_text("From the nightly scores")
    # The segment flow of the last quarter: nobody bought in it, so every row stays where it was.
    flow = page.frame_locator("#rfm-flow #flow-frame").locator("svg")
    expect(flow.locator("g[data-from]")).to_have_count(9 * 8)
    assert flow.locator('g[data-from="none"]:not([data-count="0"])').count() == 0

    expect(page.locator("[data-figure=nps-score]")).to_have_text("40")  # (3 promoters - 1 detractor) / 5
    expect(page.locator("#nps-chart rect[data-part=promoters]")).to_have_count(1)

    screenshot = tmp_path / "metrics-dashboard.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 20_000
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_parameters_show_a_message_not_an_error_page(admin_page: Page, live_server):
    response = admin_page.goto(f"{live_server.url}/admin/metrics/dashboard/?start=2026-04-01&end=2026-03-01")
    assert response is not None and response.status == 200
    expect(admin_page.locator("#dashboard-error")).to_contain_text("end must be after start")
    expect(admin_page.locator("#trend-empty")).to_be_visible()


def test_an_analyst_may_read_the_dashboard_and_support_may_not(
    page: Page, live_server, django_user_model, shop, staff_groups
):
    for username, group in (("ana", "analyst"), ("sam", "support")):
        user = django_user_model.objects.create_user(username, f"{username}@example.com", STAFF_PASSWORD, is_staff=True)
        user.groups.add(Group.objects.get(name=group))

    login(page, live_server, "ana")
    expect(page.locator("a[href='/admin/metrics/dashboard/']").first).to_be_visible()
    page.goto(f"{live_server.url}/admin/metrics/dashboard/?{PERIOD}")
    expect(page.locator("[data-figure=crr]")).to_have_text("93.3 %")
    assert page.locator("#metrics-dashboard form.period").count() == 1

    page.context.clear_cookies()
    login(page, live_server, "sam")
    expect(page.locator("a[href='/admin/metrics/dashboard/']")).to_have_count(0)
    response = page.goto(f"{live_server.url}/admin/metrics/dashboard/")
    assert response is not None and response.status == 403


def test_dashboard_charts_a_campaigns_treated_vs_control_conversion(admin_page: Page, live_server, tmp_path):
    from campaigns.services import campaign_create
    from tests.factories import campaign_half_converted

    campaign = campaign_create(
        data={"name": "Winback autumn", "trigger": "reactivation", "channel": "email", "subject": "Hi", "body": "Hi"}
    )
    campaign_half_converted(campaign_id=campaign.pk, at=timezone.now() - dt.timedelta(days=3))

    page = admin_page
    page.goto(f"{live_server.url}/admin/metrics/dashboard/")
    block = page.locator(f"#campaign-impact [data-campaign='{campaign.pk}']")
    expect(block).to_contain_text("Winback autumn")
    expect(block.locator("svg g[data-label=treated]")).to_contain_text("50%")
    expect(block.locator("svg g[data-label=control]")).to_contain_text("0%")
    expect(block.locator("[data-figure=uplift]")).to_contain_text("Uplift +50.0 pp")
    block.screenshot(path=str(tmp_path / "campaign-impact.png"))


def test_a_period_a_worker_computes_shows_progress_then_fills_in(
    admin_page: Page, live_server, shop, monkeypatch, tmp_path
):
    """A period no rollup answers and too large to read during the request (the limit set to 0
    here): the page says a worker is computing, reloads itself, and shows the figures once the
    worker has stored them (run here in the test's process, as the worker would)."""
    from metrics import jobs
    from metrics.jobs import metrics_job_run
    from metrics.models import MetricsJob
    from metrics.rollups import rollups_rebuild

    rollups_rebuild()
    monkeypatch.setattr(jobs, "INLINE_SCAN_PURCHASES", 0)
    page = admin_page
    # 107 days with W = 90: longer than the window, so the day chain cannot answer it.
    page.goto(f"{live_server.url}/admin/metrics/dashboard/?start=2025-12-15&end=2026-04-01&window_days=90")
    expect(page.locator("#figures-computing")).to_contain_text("a worker is computing")
    page.screenshot(path=str(tmp_path / "dashboard-computing.png"), full_page=True)

    metrics_job_run(job_id=MetricsJob.objects.get().pk)
    # No click: the page's own refresh brings the figures in.
    expect(page.locator("#figures-computed-at")).to_be_visible(timeout=10_000)
    expect(page.locator("[data-figure=customers_start]")).to_have_text("30")
    page.screenshot(path=str(tmp_path / "dashboard-filled.png"), full_page=True)
