"""The campaign editor's server side (the browser flow is tests/e2e/test_campaign_editor.py): read-only
views for analysts and archived campaigns, permissions on run / preview / send test, form errors; the
report worded one way in the editor and on the dashboard; message statuses and why a message waits
in words; the campaign list's figures from one query; the audience estimate and the preview's
eligibility check; where a test email went."""

import datetime as dt
import re
import zoneinfo
from decimal import Decimal
from html import unescape

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from campaigns import display
from campaigns.models import Campaign, Message
from campaigns.selectors import campaign_impact, campaign_list_figures
from campaigns.services import campaign_evaluate
from campaigns.services.audience import Target, campaign_audience_estimate, customer_eligibility
from campaigns.services.editor import channel_destination, email_destination
from tests.factories import PurchaseFactory

pytestmark = pytest.mark.django_db

CHANGE = "/admin/campaigns/campaign/{}/change/"


@pytest.fixture
def analyst_client(client):
    user = User.objects.create_user("analyst", "analyst@example.com", "pw", is_staff=True)
    user.groups.add(Group.objects.get(name="analyst"))
    client.force_login(user)
    return client


@pytest.fixture
def marketer_client(client):
    user = User.objects.create_user("marketer", "marketer@example.com", "pw", is_staff=True)
    user.groups.add(Group.objects.get(name="marketer"))
    client.force_login(user)
    return client


def lapsed(make_customer, external_id: str, *, days: int = 120, **fields):
    """A customer whose last completed purchase was ``days`` ago (reactivation's candidate)."""
    return make_customer(external_id=external_id, last_purchase_at=timezone.now() - dt.timedelta(days=days), **fields)


def message(campaign, customer, status: str, *, touched_days_ago: float = 3, **fields) -> Message:
    touched = timezone.now() - dt.timedelta(days=touched_days_ago)
    sent = status in ("sent", "delivered", "opened", "clicked")
    values = {
        "channel": "email",
        "dedupe_key": f"k:{customer.pk}:{status}:{fields.get('reason', '')}",
        "status": status,
        "scheduled_at": touched,
        "send_at": touched,
        "sent_at": touched if sent else None,
        "touched_at": touched if sent or status == "held_out" else None,
        **fields,
    }
    return Message.objects.create(campaign=campaign, customer=customer, **values)


def form_data(**overrides):
    data = {
        "name": "Come back",
        "trigger": "reactivation",
        "channel": "email",
        "status": "draft",
        "subject": "Hi {{ customer.first_name }}",
        "body": "We miss you, {{ customer.first_name }}.",
        "holdout_percent": "10",
        "attribution_days": "7",
        "param__reactivation__inactive_days": "60",
    }
    return {**data, **overrides}


def text_of(html: str) -> str:
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


# --- Permissions and the form (as before) ------------------------------------------------------


def test_analysts_see_a_campaign_read_only_and_may_not_run_preview_or_test_it(analyst_client, make_campaign):
    campaign = make_campaign("reactivation", params={"inactive_days": 60})
    page = analyst_client.get(CHANGE.format(campaign.pk))
    assert page.status_code == 200
    html = page.content.decode()
    assert "inactive_days" in html and 'id="campaign-run"' not in html and 'id="preview-customer"' not in html
    assert analyst_client.post(f"/admin/campaigns/campaign/{campaign.pk}/run/").status_code == 403
    assert analyst_client.post("/admin/campaigns/campaign/preview/", {"body": "x"}).status_code == 403
    assert analyst_client.post("/admin/campaigns/campaign/audience/", {"trigger": "welcome"}).status_code == 403
    assert (
        analyst_client.post(f"/admin/campaigns/campaign/{campaign.pk}/send-test/", {"to": "a@b.c"}).status_code == 403
    )
    assert analyst_client.post(f"/admin/campaigns/campaign/{campaign.pk}/status/paused/").status_code == 403


def test_an_archived_campaign_is_read_only(admin_client, make_campaign):
    campaign = make_campaign("birthday", status="draft")
    admin_client.post(f"/admin/campaigns/campaign/{campaign.pk}/status/archived/")
    campaign.refresh_from_db()
    assert campaign.status == "archived"
    page = admin_client.get(CHANGE.format(campaign.pk))
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()


def test_marketers_create_with_the_editor_and_errors_land_on_the_field(marketer_client):
    form = {
        "name": "Birthday",
        "trigger": "birthday",
        "channel": "email",
        "status": "draft",
        "subject": "Happy birthday {{ customer.first_name }}",
        "body": "Enjoy {{ offer.discount_percent }}% off with {{ offer.discount_code }}",
        "holdout_percent": "10",
        "attribution_days": "7",
        "param__birthday__days_before": "99",
        "offer_discount_percent": "15",
        "offer_code_prefix": "BDAY",
        "audience_tier": ["gold"],
        "audience_tags": "vip, newsletter",
    }
    refused = marketer_client.post("/admin/campaigns/campaign/add/", form)
    assert refused.status_code == 200
    assert "must be between 0 and 60" in refused.content.decode()
    saved = marketer_client.post("/admin/campaigns/campaign/add/", {**form, "param__birthday__days_before": "3"})
    assert saved.status_code == 302

    campaign = Campaign.objects.get()
    assert campaign.params == {"days_before": 3}
    assert campaign.audience == {"tier": ["gold"], "tags": ["vip", "newsletter"]}
    assert campaign.offer == {"discount_percent": 15, "code_prefix": "BDAY"}


def test_the_preview_renders_unsaved_templates_for_a_customer(marketer_client, make_customer):
    make_customer(external_id="shop-lin", first_name="Lin")
    answer = marketer_client.post(
        "/admin/campaigns/campaign/preview/",
        {
            "subject": "Hi {{ customer.first_name }}",
            "body": "{{ offer.bonus_points }} points",
            "offer_bonus_points": "75",
            "trigger": "welcome",
            "preview_customer": "shop-lin",
        },
    ).json()
    assert (answer["subject"], answer["body"], answer["customer"]) == ("Hi Lin", "75 points", "shop-lin")
    unknown = marketer_client.post("/admin/campaigns/campaign/preview/", {"body": "x", "preview_customer": "nobody"})
    assert unknown.status_code == 404
    broken = marketer_client.post("/admin/campaigns/campaign/preview/", {"body": "{% for %}"})
    assert broken.status_code == 400 and "body" in broken.json()["error"]["fields"]


# --- 1. The report reads the same in the editor and on the dashboard ------------------------------


def test_the_verdict_says_in_words_whether_the_uplift_is_significant():
    def words(treated, treated_converted, control, control_converted, holdout=10):
        from metrics.stats import two_proportion_z_test

        uplift = two_proportion_z_test(
            treated_hits=treated_converted, treated=treated, control_hits=control_converted, control=control
        )
        shape = None if uplift is None else {"absolute": uplift.difference, "p_value": uplift.p_value}
        return display.verdict(
            treated=treated,
            treated_converted=treated_converted,
            control=control,
            control_converted=control_converted,
            uplift=shape,
            holdout_percent=holdout,
        )

    significant = words(2000, 400, 2000, 338)
    assert significant.kind == "significant"
    assert significant.text == "Significant at 95%: treated customers converted 3.1 pp more."
    assert words(1000, 150, 1000, 200).text.startswith("Significant at 95%: treated customers converted 5.0 pp less")
    few = words(2, 1, 2, 0)
    assert few.kind == "too_few" and few.text.startswith("Not significant yet: too few messages (2 sent, 2 held out)")
    assert words(400, 2, 400, 1).text.startswith("Not significant yet: too few conversions (2 treated, 1 control)")
    chance = words(1000, 105, 1000, 100)
    assert chance.kind == "not_significant" and "+0.5 pp difference could be chance (p = 0.7" in chance.text
    assert "About " in chance.text and "customers per group would tell a difference this size" in chance.text
    assert words(10, 1, 0, 0, holdout=0).text == (
        "Not measurable: the campaign holds out no control group (holdout 0%)."
    )
    assert words(0, 0, 5, 1).text == "Not measurable yet: nothing sent so far."


def test_rates_read_in_percent_and_differences_in_percentage_points():
    shown = display.impact_display(
        {
            "attribution_days": 7,
            "treated": {
                "customers": 1000,
                "converted": 200,
                "conversion_rate": 0.2,
                "revenue": "5000.00",
                "revenue_per_customer": "5.00",
                "attributed_revenue": "4200.00",
            },
            "control": {
                "customers": 1000,
                "converted": 169,
                "conversion_rate": 0.169,
                "revenue": "4000.00",
                "revenue_per_customer": "4.00",
                "attributed_revenue": "0.00",
            },
            "uplift": {"absolute": 0.031, "ci_low": -0.0042, "ci_high": 0.0662, "p_value": 0.0784},
            "incremental_revenue": "1000.00",
        }
    )
    assert [group.conversion for group in shown.groups] == ["20.0%", "16.9%"]
    assert shown.uplift_summary == "Uplift +3.1 pp (95% CI -0.4 to +6.6 pp, p = 0.078)"
    assert shown.groups[0].revenue == "$5,000.00" and shown.incremental_revenue == "$1,000.00"


@pytest.fixture
def measured_campaign(make_campaign, make_customer):
    """Two sent (one bought within the window) and two held out."""
    campaign = make_campaign("reactivation", name="Winback", holdout_percent=50)
    for name, status, buys in (("t1", "sent", True), ("t2", "sent", False), ("c1", "held_out", False)):
        customer = make_customer(external_id=name)
        sent = message(campaign, customer, status)
        if buys:
            PurchaseFactory(customer=customer, placed_at=sent.touched_at + dt.timedelta(days=1), total=Decimal("25"))
    message(campaign, make_customer(external_id="c2"), "held_out")
    return campaign


def test_the_campaign_editor_and_the_dashboard_show_the_same_report(admin_client, measured_campaign):
    editor = admin_client.get(CHANGE.format(measured_campaign.pk))
    dashboard = admin_client.get("/admin/metrics/dashboard/")
    assert editor.status_code == dashboard.status_code == 200
    shown = editor.context["impact"]
    assert shown.verdict.text.startswith("Not significant yet: too few messages (2 sent, 2 held out)")
    assert shown.uplift == "+50.0 pp" and [g.conversion for g in shown.groups] == ["50.0%", "0.0%"]
    rows = [row for row in dashboard.context["dashboard"].campaign_impacts if row.campaign_id == measured_campaign.pk]
    assert rows[0].display == shown
    editor_text, dashboard_text = text_of(editor.content.decode()), text_of(dashboard.content.decode())
    for words in (
        shown.verdict.text,
        shown.uplift_summary,
        "Treated (sent) 2 1 50.0%",
        "Control (held out) 2 0 0.0%",
    ):
        assert words in editor_text and words in dashboard_text


# --- 2. Statuses and reasons in words --------------------------------------------------------------


def test_the_change_page_answers_200_and_names_statuses_in_words(admin_client, measured_campaign, make_customer):
    message(measured_campaign, make_customer(external_id="s1"), "suppressed", reason="frequency_cap")
    message(measured_campaign, make_customer(external_id="q1"), "queued", reason="frequency_cap")
    page = admin_client.get(CHANGE.format(measured_campaign.pk))
    assert page.status_code == 200
    html = page.content.decode()
    report = text_of(html[html.index('id="campaign-report"') :])
    for label in ("Held out (control group)", "Suppressed", "Sent", "Queued"):
        assert f">{label}</th>" in html
    assert "Suppressed: Frequency cap: 1" in report and "Waiting: Frequency cap: 1" in report
    assert not re.search(r"held_out|frequency_cap|HELD_OUT", report)


def test_the_change_page_answers_200_for_a_new_campaign_and_another_channel(admin_client, make_campaign, settings):
    settings.CAMPAIGN_CHANNELS = {
        **settings.CAMPAIGN_CHANNELS,
        "sms": {"BACKEND": "http", "URL": "https://sms.test/v1"},
    }
    sms = make_campaign("welcome", channel="sms", subject="")
    page = admin_client.get(CHANGE.format(sms.pk))
    assert page.status_code == 200
    assert "This campaign's SMS messages are posted to https://sms.test/v1." in text_of(page.content.decode())
    assert admin_client.get("/admin/campaigns/campaign/add/").status_code == 200


def test_the_message_list_names_statuses_and_reasons_in_words(admin_client, measured_campaign, make_customer):
    message(measured_campaign, make_customer(external_id="s1"), "suppressed", reason="no_consent")
    page = admin_client.get("/admin/campaigns/message/")
    assert page.status_code == 200
    rows = text_of(page.content.decode()[page.content.decode().index('id="result_list"') :])
    assert "Held out (control group)" in rows and "Suppressed" in rows and "Consent revoked since selection" in rows
    assert not re.search(r"held_out|no_consent", rows)
    filtered = admin_client.get("/admin/campaigns/message/", {"reason": "no_consent"})
    assert filtered.status_code == 200 and len(filtered.context["cl"].result_list) == 1
    one = Message.objects.get(reason="no_consent")
    page = admin_client.get(f"/admin/campaigns/message/{one.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Winback → s1: Suppressed" in text_of(html[html.index('class="breadcrumbs"') :])
    assert "Consent revoked since selection" in text_of(html)


def test_the_attribution_list_names_the_message_in_words(admin_client, measured_campaign):
    from campaigns.models import Attribution

    sent = Message.objects.get(campaign=measured_campaign, customer__external_id="t1")
    purchase = PurchaseFactory(customer=sent.customer)
    Attribution.objects.create(purchase=purchase, message=sent, campaign=measured_campaign)
    rows = text_of(admin_client.get("/admin/campaigns/attribution/").content.decode())
    assert "Winback → t1: Sent" in rows and ": sent" not in rows
    assert admin_client.get(f"/admin/campaigns/attribution/{purchase.pk}/change/").status_code == 200


# --- 4. Why a queued message waits -------------------------------------------------------------------


def zone_at_local_hour(hour: int) -> str:
    """An Etc/GMT zone where it is now ``hour`` o'clock (Etc/GMT-5 is UTC+5)."""
    offset = (hour - timezone.now().astimezone(dt.UTC).hour) % 24
    offset = offset - 24 if offset > 12 else offset
    return "Etc/GMT" + ("+" if offset <= 0 else "-") + str(abs(offset))


def test_a_message_held_back_by_quiet_hours_says_until_when(admin_client, make_campaign, make_customer, policy):
    night = zone_at_local_hour(23)
    lapsed(make_customer, "night-owl", timezone=night)
    campaign = make_campaign("reactivation")
    assert campaign_evaluate(campaign_id=campaign.pk).queued == 1
    page = admin_client.get("/admin/campaigns/message/")
    rows = text_of(page.content.decode())
    assert f"Quiet hours (21:00-09:00): waits until 09:00 tomorrow, {night} time." in rows
    queued = Message.objects.get(campaign=campaign)
    assert queued.send_at.astimezone(zoneinfo.ZoneInfo(night)).time() == dt.time(9)


def test_a_message_held_back_by_the_frequency_cap_says_so(admin_client, make_campaign, make_customer, policy):
    noon = zone_at_local_hour(12)
    busy = lapsed(make_customer, "busy", timezone=noon)
    earlier = make_campaign("welcome", name="Earlier", status="paused")
    for number in range(3):
        sent = message(earlier, busy, "sent", touched_days_ago=6 + number / 24, dedupe_key=f"earlier-{number}")
        Message.objects.filter(pk=sent.pk).update(cap_at=sent.sent_at)
    campaign = make_campaign("reactivation")
    assert campaign_evaluate(campaign_id=campaign.pk).deferred == 1
    rows = text_of(admin_client.get("/admin/campaigns/message/").content.decode())
    assert "Frequency cap (3 per 7 days): waits until " in rows
    capped = Message.objects.get(campaign=campaign)
    assert capped.reason == "frequency_cap" and capped.send_at > timezone.now() + dt.timedelta(hours=12)


def test_other_waits_are_named_from_the_row():
    policy = display.PolicyView(3, 7, dt.time(21), dt.time(9))
    now = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
    base = {
        "status": "queued",
        "reason": "",
        "send_at": now - dt.timedelta(minutes=1),
        "attempts": 0,
        "error": "",
        "customer_timezone": "UTC",
        "campaign_status": "active",
        "policy": policy,
        "now": now,
        "max_attempts": 5,
    }
    assert display.wait_reason(**base).startswith("Due now")
    assert display.wait_reason(**{**base, "campaign_status": "paused"}).startswith(
        "Waits for the campaign: it is paused"
    )
    retry = {"send_at": now + dt.timedelta(minutes=2), "attempts": 1, "error": "SMTP: timed out"}
    assert display.wait_reason(**{**base, **retry}) == (
        "Retry after a provider error (attempt 2 of 5) at 12:02 today, UTC time: SMTP: timed out"
    )
    assert display.wait_reason(**{**base, "status": "sent"}) == ""


# --- 5. The campaign list: sent, conversion, uplift, one query for the page ----------------------------


def test_the_campaign_list_shows_sent_conversion_and_uplift(admin_client, measured_campaign, make_campaign):
    make_campaign("welcome", name="Quiet one")
    page = admin_client.get("/admin/campaigns/campaign/")
    assert page.status_code == 200
    html = page.content.decode()
    row = text_of(html[html.index("Winback") :].split("</tr>")[0])
    assert "2 50.0% (0.0%) +50.0 pp, not significant yet" in row
    quiet = text_of(html[html.index("Quiet one") :].split("</tr>")[0])
    assert "0 — —" in quiet


def test_the_campaign_list_costs_the_same_queries_for_2_or_8_campaigns(admin_client, make_campaign, make_customer):
    customers = [make_customer(external_id=f"lc-{n}") for n in range(2)]

    def campaigns(count: int) -> None:
        for _ in range(count):
            campaign = make_campaign("reactivation", holdout_percent=50)
            message(campaign, customers[0], "sent")
            message(campaign, customers[1], "held_out")

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get("/admin/campaigns/campaign/").status_code == 200
        return len(captured)

    campaigns(2)
    few = queries()
    campaigns(6)
    assert queries() == few


def test_the_list_figures_count_conversion_as_the_report_does(measured_campaign):
    figures = campaign_list_figures(campaign_ids=[measured_campaign.pk])[measured_campaign.pk]
    impact = campaign_impact(campaign=measured_campaign)
    assert (figures.treated, figures.treated_converted) == (
        impact["treated"]["customers"],
        impact["treated"]["converted"],
    )
    assert (figures.control, figures.control_converted) == (
        impact["control"]["customers"],
        impact["control"]["converted"],
    )
    assert figures.sent == 2 and figures.uplift.difference == pytest.approx(impact["uplift"]["absolute"])


# --- 3. The editor: estimate, eligibility, the preview customer, where a test went -------------------


def target(**overrides) -> Target:
    values = {"trigger": "reactivation", "params": {"inactive_days": 60}, "channel": "email", "audience": {}}
    return Target.clean(**{**values, **overrides})


def test_the_audience_estimate_counts_who_would_enter_now_in_one_query(make_customer, make_campaign, policy):
    for number in range(3):
        lapsed(make_customer, f"gone-{number}")
    lapsed(make_customer, "recent", days=10)
    lapsed(make_customer, "no-consent", channels=())
    lapsed(make_customer, "erased", erased_at=timezone.now())
    lapsed(make_customer, "gold-one", tier="gold")
    with CaptureQueriesContext(connection) as captured:
        estimate = campaign_audience_estimate(target=target())
    assert len([q for q in captured if "pg_timezone_names" not in q["sql"]]) == 1
    assert (estimate.eligible, estimate.would_enter) == (4, 4)
    assert estimate.text == "About 4 customers would enter now."
    half = campaign_audience_estimate(target=target(holdout_percent=50))
    assert half.text == "About 4 customers would enter now (about 2 of them held out as the control group)."
    assert campaign_audience_estimate(target=target(audience={"tier": ["gold"]})).would_enter == 1

    campaign = make_campaign("reactivation", params={"inactive_days": 60}, holdout_percent=0)
    assert campaign_evaluate(campaign_id=campaign.pk).queued == estimate.would_enter  # the run agrees
    again = campaign_audience_estimate(target=target(campaign_id=campaign.pk))
    assert (again.eligible, again.would_enter) == (4, 0)
    assert again.text == "About 0 customers would enter now. 4 more already had this campaign for the same occasion."


def test_the_estimate_matches_what_a_run_creates_for_other_triggers(make_customer, make_campaign, policy):
    from tests.factories import CartItemFactory

    three_hours_ago = timezone.now() - dt.timedelta(hours=3)
    owner = make_customer(external_id="cart-owner")
    for _ in range(2):  # two carts, one customer: one customer enters (with two messages)
        CartItemFactory(cart__customer=owner, cart__updated_at=three_hours_ago)
    CartItemFactory(cart__customer=make_customer(external_id="cart-two"), cart__updated_at=three_hours_ago)
    make_customer(external_id="new", created_at=timezone.now() - dt.timedelta(hours=2))
    today = timezone.now().astimezone(dt.UTC).date()
    make_customer(external_id="birthday", birth_date=dt.date(1992, today.month, today.day), timezone="UTC")
    expected = {"abandoned_cart": 2, "welcome": 1, "birthday": 1}
    for trigger, customers in expected.items():
        estimate = campaign_audience_estimate(target=target(trigger=trigger, params={}))
        campaign = make_campaign(trigger, holdout_percent=0)
        campaign_evaluate(campaign_id=campaign.pk)
        entered = Message.objects.filter(campaign=campaign).values("customer").distinct().count()
        assert estimate.would_enter == entered == customers, trigger


def test_the_audience_endpoint_answers_for_the_unsaved_form(marketer_client, make_customer):
    lapsed(make_customer, "gone")
    answer = marketer_client.post("/admin/campaigns/campaign/audience/", form_data()).json()
    assert answer["would_enter"] == 1 and answer["text"].startswith("About 1 customer would enter now")
    wrong = marketer_client.post(
        "/admin/campaigns/campaign/audience/", form_data(param__reactivation__inactive_days="0")
    )
    assert wrong.status_code == 400 and "params.inactive_days" in wrong.json()["error"]["fields"]


def test_the_preview_says_why_a_customer_is_not_eligible_now(marketer_client, make_customer):
    make_customer(external_id="fresh", last_purchase_at=timezone.now() - dt.timedelta(days=5), tier="bronze")
    answer = marketer_client.post(
        "/admin/campaigns/campaign/preview/", form_data(preview_customer="fresh", audience_tier=["gold"])
    ).json()
    eligibility = answer["eligibility"]
    assert eligibility["eligible"] is False
    assert eligibility["reasons"] == [
        "outside the audience: tier must be gold",
        "the reactivation trigger needs no completed purchase for 60 days; here: last completed purchase 5 days ago",
    ]
    assert eligibility["text"].startswith("Not eligible now: outside the audience: tier must be gold; ")

    lapsed(make_customer, "silent", channels=())
    silent = customer_eligibility(target=target(), customer_id=customer_pk("silent"))
    assert silent.reasons == ["no email consent"]


def customer_pk(external_id: str) -> int:
    from customers.models import Customer

    return Customer.objects.get(external_id=external_id).pk


def test_the_preview_says_an_eligible_customer_would_get_it_or_be_held_out(
    marketer_client, make_customer, make_campaign
):
    lapsed(make_customer, "gone")
    answer = marketer_client.post("/admin/campaigns/campaign/preview/", form_data(preview_customer="gone")).json()
    assert answer["eligibility"]["text"] == "Eligible now: the next run would send them this message."
    campaign = make_campaign("reactivation", params={"inactive_days": 60}, holdout_percent=50)
    held = [
        n
        for n in range(40)
        if customer_eligibility(
            target=target(campaign_id=campaign.pk, holdout_percent=50), customer_id=lapsed(make_customer, f"h{n}").pk
        ).held_out
    ]
    assert held, "about half of 40 customers fall in a 50 % control group"
    campaign_evaluate(campaign_id=campaign.pk)
    done = customer_eligibility(target=target(campaign_id=campaign.pk), customer_id=customer_pk("gone"))
    assert done.reasons == ["they already had this campaign for the same occasion (one message per occasion, ever)"]


def test_the_preview_customer_survives_a_save_and_the_buttons(marketer_client, make_customer, make_campaign):
    make_customer(external_id="shop-grace")
    added = marketer_client.post(
        "/admin/campaigns/campaign/add/", form_data(preview_customer="shop-grace", _continue="1")
    )
    campaign = Campaign.objects.get()
    assert added.status_code == 302 and added["Location"].endswith(
        f"/admin/campaigns/campaign/{campaign.pk}/change/?preview_customer=shop-grace"
    )
    page = marketer_client.get(added["Location"])
    assert 'id="preview-customer" name="preview_customer" autocomplete="off" class="vTextField" value="shop-grace"' in (
        page.content.decode()
    )
    changed = marketer_client.post(CHANGE.format(campaign.pk), form_data(preview_customer="shop-grace", _continue="1"))
    assert changed["Location"].endswith("?preview_customer=shop-grace")
    refused = marketer_client.post(
        CHANGE.format(campaign.pk), form_data(preview_customer="shop-grace", body="{% if %}")
    )
    assert refused.status_code == 200 and 'value="shop-grace"' in refused.content.decode()
    moved = marketer_client.post(
        f"/admin/campaigns/campaign/{campaign.pk}/status/active/", {"preview_customer": "shop-grace"}
    )
    assert moved["Location"].endswith("?preview_customer=shop-grace")


def test_a_test_send_says_where_it_went(admin_client, make_campaign, settings):
    campaign = make_campaign("welcome")
    answer = admin_client.post(
        f"/admin/campaigns/campaign/{campaign.pk}/send-test/", {"to": "admin@example.com"}, follow=True
    )
    flash = [str(m) for m in answer.context["messages"]]
    assert flash == [
        "Test sent to admin@example.com: kept in memory (locmem email backend, for tests): no email left the server."
    ]

    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    assert email_destination().startswith("printed to the server's console")
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_USE_TLS = "smtp.example.com", 587, True
    assert email_destination() == "handed to the SMTP server smtp.example.com:587 over TLS"
    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.EMAIL_FILE_PATH = "/srv/mail"
    assert email_destination().startswith("written to a file in /srv/mail")
    settings.EMAIL_BACKEND = "anymail.backends.mailgun.EmailBackend"
    assert email_destination() == "handed to Mailgun (through django-anymail)"
    settings.CAMPAIGN_CHANNELS = {"sms": {"BACKEND": "http", "URL": "https://sms.example.com/v1/send?x=1"}}
    assert channel_destination("sms") == "posted to https://sms.example.com/v1/send"


def test_a_failing_test_send_says_so_and_the_page_stays(admin_client, make_campaign, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_USE_TLS, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, False, 2
    campaign = make_campaign("welcome")
    answer = admin_client.post(
        f"/admin/campaigns/campaign/{campaign.pk}/send-test/", {"to": "admin@example.com"}, follow=True
    )
    assert answer.status_code == 200
    flash = [str(m) for m in answer.context["messages"]]
    assert flash[0].startswith("Test not sent: ") and flash[0].endswith(
        "(email here is handed to the SMTP server 127.0.0.1:9)"
    )


def test_a_test_goes_only_to_the_staff_users_own_address_or_an_allowed_domain(admin_client, make_campaign, settings):
    from django.core import mail

    from customers.models import AuditLog

    campaign = make_campaign("welcome")
    url = f"/admin/campaigns/campaign/{campaign.pk}/send-test/"
    refused = admin_client.post(url, {"to": "someone@elsewhere.test"}, follow=True)
    flash = [str(m) for m in refused.context["messages"]]
    assert flash[0].startswith("Test not sent:") and "TEST_EMAIL_DOMAINS" in flash[0]
    assert mail.outbox == [] and not AuditLog.objects.filter(action="campaign.send_test").exists()

    settings.TEST_EMAIL_DOMAINS = ["Shop.Example"]
    admin_client.post(url, {"to": "team@shop.example"}, follow=True)
    admin_client.post(url, {"to": "ADMIN@example.com"}, follow=True)
    assert [m.to for m in mail.outbox] == [["team@shop.example"], ["ADMIN@example.com"]]
    audits = list(AuditLog.objects.filter(action="campaign.send_test").order_by("id"))
    assert [(a.actor, a.target, a.details["to"]) for a in audits] == [
        ("admin", f"campaign:{campaign.pk}", "team@shop.example"),
        ("admin", f"campaign:{campaign.pk}", "ADMIN@example.com"),
    ]


def test_the_editor_names_tiers_by_their_names_and_stores_codes(admin_client):
    page = " ".join(admin_client.get("/admin/campaigns/campaign/add/").content.decode().split())
    assert 'name="audience_tier" value="gold" id="id_audience_tier_2"> Gold</label>' in page
