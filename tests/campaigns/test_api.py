"""REST API v1 for campaigns (SPEC §6): create, list, run, report; scopes; errors in the SPEC's shape."""

import datetime as dt

import pytest
from django.utils import timezone

from campaigns.models import Campaign, Message, MessageStatus
from tests.api.conftest import assert_error
from tests.factories import message_reached

pytestmark = pytest.mark.django_db
CAMPAIGN = {
    "name": "Come back",
    "trigger": "reactivation",
    "channel": "email",
    "status": "active",
    "subject": "We miss you, {{ customer.first_name }}",
    "body": "Here are {{ offer.bonus_points }} points.",
    "params": {},
    "audience": {},
    "offer": {"bonus_points": 100},
    "holdout_percent": 10,
    "attribution_days": 7,
}
SHAPE = {
    "id",
    "name",
    "trigger",
    "channel",
    "status",
    "subject",
    "body",
    "params",
    "audience",
    "offer",
    "holdout_percent",
    "attribution_days",
}


def create(api, **changes):
    response = api.post("/api/v1/campaigns", {**CAMPAIGN, **changes}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_create_answers_the_spec_shape_and_empty_params_mean_defaults(api):
    body = create(api)
    assert set(body) >= SHAPE
    assert {name: body[name] for name in SHAPE - {"id"}} == CAMPAIGN
    assert Campaign.objects.get(pk=body["id"]).params == {}


def test_list_paginates_and_filters(api):
    create(api, name="A")
    create(api, name="B", trigger="birthday", status="draft")
    listing = api.get("/api/v1/campaigns").json()
    assert listing["count"] == 2 and [c["name"] for c in listing["results"]] == ["B", "A"]
    assert [c["name"] for c in api.get("/api/v1/campaigns/?trigger=birthday").json()["results"]] == ["B"]
    assert [c["name"] for c in api.get("/api/v1/campaigns?status=active").json()["results"]] == ["A"]
    assert_error(api.get("/api/v1/campaigns?status=sleeping"), 400, field="status")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"params": {"inactive_days": -5}}, "params.inactive_days"),
        ({"params": {"days_before": 3}}, "params.days_before"),
        ({"params": "ninety"}, "params"),
        ({"trigger": "moon_phase"}, "trigger"),
        ({"channel": "pigeon"}, "channel"),
        ({"holdout_percent": 51}, "holdout_percent"),
        ({"attribution_days": 0}, "attribution_days"),
        ({"body": "{% if %}"}, "body"),
        ({"body": "{% load static %}{% static 'x' %}"}, "body"),
        ({"body": "{% include 'admin/base.html' %}"}, "body"),
        ({"subject": ""}, "subject"),
        ({"audience": {"tier": ["platinum"]}}, "audience.tier"),
        ({"audience": {"rfm_segment": ["Sleepy"]}}, "audience.rfm_segment"),
        ({"audience": {"min_total_spent": "-1"}}, "audience.min_total_spent"),
        ({"audience": {"shoe_size": 42}}, "audience.shoe_size"),
        ({"offer": {"bonus_points": 100, "discount_percent": 10}}, "offer.discount_percent"),
        ({"offer": {"bonus_points": 1.5}}, "offer.bonus_points"),
        ({"colour": "red"}, "colour"),
        ({"name": ""}, "name"),
    ],
)
def test_invalid_campaigns_are_a_400_naming_the_field_and_write_nothing(api, changes, field):
    assert_error(api.post("/api/v1/campaigns", {**CAMPAIGN, **changes}, format="json"), 400, field=field)
    assert not Campaign.objects.exists()


def test_malformed_bodies_are_a_400(api):
    assert_error(api.post("/api/v1/campaigns", "[1]", content_type="application/json"), 400)
    assert_error(api.post("/api/v1/campaigns", "{nope", content_type="application/json"), 400)


def test_run_evaluates_now_and_answers_the_counts(api, make_customer):
    for _ in range(30):
        make_customer(last_purchase_at=timezone.now() - dt.timedelta(days=200), timezone="Pacific/Kiritimati")
    campaign = create(api, holdout_percent=50)
    response = api.post(f"/api/v1/campaigns/{campaign['id']}/run")
    assert response.status_code == 200
    counts = response.json()
    assert set(counts) == {"queued", "held_out", "suppressed", "deferred"}
    assert counts["queued"] + counts["held_out"] == 30 and counts["held_out"] > 0
    again = api.post(f"/api/v1/campaigns/{campaign['id']}/run/").json()
    assert again == {"queued": 0, "held_out": 0, "suppressed": 0, "deferred": 0}


def test_only_an_active_campaign_runs(api):
    draft = create(api, status="draft")
    assert_error(api.post(f"/api/v1/campaigns/{draft['id']}/run"), 409, code="campaign_not_active")
    assert_error(api.post("/api/v1/campaigns/999999/run"), 404, code="campaign_not_found")


def test_report_has_every_status_and_the_impact(api, make_customer):
    campaign = create(api)
    customer = make_customer()
    now = timezone.now()
    for index, status in enumerate(["sent", "sent", "held_out", "suppressed"]):
        Message.objects.create(
            campaign_id=campaign["id"],
            customer=customer if index == 0 else make_customer(),
            channel="email",
            dedupe_key=f"k{index}",
            status=status,
            scheduled_at=now,
            send_at=now,
            sent_at=now if status == "sent" else None,
            touched_at=now if status in ("sent", "held_out") else None,
            reason="no_consent" if status == "suppressed" else "",
        )
    report = api.get(f"/api/v1/campaigns/{campaign['id']}/report").json()
    assert set(report["counts"]) == set(MessageStatus.values)
    assert report["counts"]["sent"] == 2 and report["counts"]["held_out"] == 1 and report["counts"]["clicked"] == 0
    assert report["reasons"] == {"suppressed:no_consent": 1}
    impact = report["impact"]
    assert impact["treated"]["customers"] == 2 and impact["control"]["customers"] == 1
    assert {"conversion_rate", "revenue", "revenue_per_customer"} <= set(impact["treated"])
    assert set(impact["uplift"]) == {"absolute", "ci_low", "ci_high", "p_value"}


def test_report_shows_who_is_still_active_30_and_90_days_after_the_message(api, make_customer):
    from customers.services import PurchaseInput, purchase_record

    campaign = create(api)
    now = timezone.now()
    touched = now - dt.timedelta(days=100)  # both checkpoints have come for these members
    members = {"back": "sent", "gone": "sent", "held": "held_out"}
    for name, status in members.items():
        message_reached(campaign_id=campaign["id"], customer=make_customer(external_id=name), status=status, at=touched)
    # "back" bought 20 days after the message: active at +30 and at +90 (W = 90); "held" bought
    # 95 days after: active at neither checkpoint; "gone" never bought.
    for number, (name, days) in enumerate((("back", 20), ("held", 95))):
        purchase_record(
            data=PurchaseInput.clean(
                {
                    "external_id": f"o-{number}",
                    "customer": name,
                    "placed_at": touched + dt.timedelta(days=days),
                    "total": "10.00",
                }
            )
        )
    impact = api.get(f"/api/v1/campaigns/{campaign['id']}/report").json()["impact"]
    assert impact["treated"]["still_active"] == {
        "30d": {"customers": 2, "share": 0.5},
        "90d": {"customers": 2, "share": 0.5},
    }
    assert impact["control"]["still_active"] == {
        "30d": {"customers": 1, "share": 0.0},
        "90d": {"customers": 1, "share": 0.0},
    }


def test_patch_changes_fields_and_moves_status_by_the_rules(api):
    campaign = create(api)
    path = f"/api/v1/campaigns/{campaign['id']}"
    assert api.patch(path, {"status": "paused", "holdout_percent": 20}, format="json").json()["status"] == "paused"
    assert api.get(path).json()["holdout_percent"] == 20
    assert api.patch(path, {"status": "archived"}, format="json").status_code == 200
    assert_error(api.patch(path, {"status": "active"}, format="json"), 409)
    changed_trigger = create(api)
    answer = api.patch(f"/api/v1/campaigns/{changed_trigger['id']}", {"trigger": "birthday"}, format="json").json()
    assert (answer["trigger"], answer["params"]) == ("birthday", {})


def test_scopes(make_client):
    assert make_client("read").get("/api/v1/campaigns").status_code == 403
    assert make_client("campaigns").get("/api/v1/campaigns").status_code == 200
    from rest_framework.test import APIClient

    assert APIClient().get("/api/v1/campaigns").status_code == 401


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"body": "hello\u0000"}, "body"),
        ({"subject": "hi \ud800"}, "subject"),
        ({"name": "x\ud800"}, "name"),
        ({"audience": {"tags": ["vip\u0000"]}}, "audience.tags"),
    ],
)
def test_text_postgresql_cannot_store_is_a_400_not_a_500(api, changes, field):
    import json

    # Sent as raw JSON: \\u escapes of NUL and lone surrogates are valid JSON.
    body = json.dumps({**CAMPAIGN, **changes})
    assert_error(api.post("/api/v1/campaigns", body, content_type="application/json"), 400, field=field)
