"""The journey parts of the campaign API (SPEC §6): steps, exit_on and reentry in the shape, 400s that
name the step and field, the report's steps and variants, the entries and a customer's messages."""

import datetime as dt

import pytest
from django.utils import timezone

from campaigns.models import ContactPolicy, Entry, Message, VariantWinner
from campaigns.services import campaign_evaluate
from tests.api.conftest import assert_error

pytestmark = pytest.mark.django_db

STEPS = [
    {"key": "hello", "type": "message", "subject": "Hello", "body": "We miss you"},
    {"key": "pause", "type": "wait", "minutes": 60},
    {
        "key": "offer",
        "type": "message",
        "variants": [
            {"key": "a", "weight": 1, "subject": "A gift", "body": "Plain text"},
            {"key": "b", "weight": 1, "subject": "A gift, {{ customer.first_name }}", "body": "Personal"},
        ],
        "auto_winner": {"min_per_variant": 100},
    },
]
JOURNEY = {"name": "Win back", "trigger": "reactivation", "status": "active", "steps": STEPS, "holdout_percent": 0}


def create(api, **changes):
    return api.post("/api/v1/campaigns", {**JOURNEY, **changes}, format="json")


def test_a_journey_is_created_with_its_steps_and_defaults(api):
    response = create(api)
    assert response.status_code == 201, response.content
    body = response.json()
    assert [step["key"] for step in body["steps"]] == ["hello", "pause", "offer"]
    assert body["steps"][0]["channel"] == "email"  # the campaign's channel, written out
    assert body["exit_on"] == "purchase"
    assert body["reentry"] == "never"  # a journey's default
    assert body["subject"] == body["body"] == ""


def test_a_campaign_without_steps_reenters_per_dedupe_key(api):
    body = create(api, steps=[], subject="Hi", body="Come back").json()
    assert body["reentry"] == {"after_days": 0}
    assert create(api, steps=[], subject="Hi", body="x", reentry="never").json()["reentry"] == "never"


@pytest.mark.parametrize(
    ("steps", "field"),
    [
        (
            [{"key": "s", "type": "split", "condition": {"clicked_previous": True}, "yes": "nowhere", "no": "exit"}],
            "steps[0].yes",
        ),
        ([{"key": "m", "type": "message", "subject": "Hi"}], "steps[0].body"),
        (
            [{**STEPS[2], "variants": [{"key": "a", "weight": 0, "body": "x"}, {"key": "b", "body": "y"}]}],
            "steps[0].variants[0].weight",
        ),
        ([{"key": "w", "type": "wait", "minutes": 0}], "steps[0].minutes"),
        ([{"key": "w", "type": "wait", "until": "25:00"}], "steps[0].until"),
        ([{"key": "x", "type": "jump"}], "steps[0].type"),
        ([STEPS[0], dict(STEPS[0])], "steps[1].key"),
        ([{"key": "t", "type": "tag"}], "steps[0].add"),
        ([{**STEPS[0], "body": "{% for %}"}], "steps[0].body"),
        ([{**STEPS[0], "offer": {"bonus_points": -1}}], "steps[0].offer.bonus_points"),
        (
            [{"key": "s", "type": "split", "condition": {"colour": "red"}, "yes": "exit", "no": "exit"}],
            "steps[0].condition",
        ),
    ],
)
def test_invalid_steps_are_a_400_naming_the_step_and_field(api, steps, field):
    assert_error(create(api, steps=steps), 400, field=field)
    assert Entry.objects.count() == 0


def test_a_cycle_without_a_wait_is_refused_and_one_with_a_wait_is_not(api):
    loop = [
        {"key": "m", "type": "message", "subject": "Hi", "body": "Hi"},
        {"key": "s", "type": "split", "condition": {"clicked_previous": True}, "yes": "exit", "no": "m"},
    ]
    error = assert_error(create(api, steps=loop), 400)
    assert "cycle without a wait" in error["message"]
    waited = [loop[0], {"key": "w", "type": "wait", "minutes": 1440}, loop[1]]
    waited[2] = {**loop[1], "no": "m"}
    assert create(api, steps=waited).status_code == 201


def test_reentry_and_exit_on_are_validated(api):
    assert_error(create(api, reentry={"after_days": -1}), 400, field="reentry.after_days")
    assert_error(create(api, reentry="sometimes"), 400, field="reentry")
    assert_error(create(api, exit_on="click"), 400, field="exit_on")


def test_structural_changes_need_a_pause(api):
    campaign = create(api).json()
    path = f"/api/v1/campaigns/{campaign['id']}"
    assert_error(api.patch(path, {"steps": STEPS[:1]}, format="json"), 409, code="campaign_active")
    texts = [dict(STEPS[0], subject="A new subject"), *STEPS[1:]]
    assert api.patch(path, {"steps": texts}, format="json").status_code == 200
    api.patch(path, {"status": "paused"}, format="json")
    assert api.patch(path, {"steps": STEPS[:1]}, format="json").status_code == 200


def test_report_entries_and_customer_messages(api, make_customer):
    # Quiet hours off: the offer step must go out an hour after the hello whatever the hour the
    # tests run (after 21:00 it would wait for the morning).
    ContactPolicy.objects.update_or_create(
        pk=ContactPolicy.SINGLETON_ID, defaults={"quiet_hours_start": dt.time(0), "quiet_hours_end": dt.time(0)}
    )
    now = timezone.now()
    customers = [
        make_customer(external_id=f"api-j-{i}", last_purchase_at=now - dt.timedelta(days=100)) for i in range(6)
    ]
    campaign = create(api).json()
    campaign_evaluate(campaign_id=campaign["id"], now=now)
    report = api.get(f"/api/v1/campaigns/{campaign['id']}/report").json()
    steps = {step["key"]: step for step in report["steps"]}
    assert list(steps) == ["hello", "pause", "offer"]
    assert steps["hello"]["entered"] == 6 and steps["pause"]["entered"] == 6
    assert steps["pause"]["waiting"] == 6
    assert [v["key"] for v in steps["offer"]["variants"]] == ["a", "b"]
    assert "winner" not in report

    entries = api.get(f"/api/v1/campaigns/{campaign['id']}/entries?state=active").json()
    assert entries["count"] == 6
    assert {row["step"] for row in entries["results"]} == {"pause"}
    one = api.get(f"/api/v1/campaigns/{campaign['id']}/entries?customer=api-j-0").json()
    assert [row["customer"] for row in one["results"]] == ["api-j-0"]
    assert_error(api.get(f"/api/v1/campaigns/{campaign['id']}/entries?state=lost"), 400, field="state")

    campaign_evaluate(campaign_id=campaign["id"], now=now + dt.timedelta(minutes=61))
    messages = api.get(f"/api/v1/customers/{customers[0].external_id}/messages").json()
    assert [m["step"] for m in messages["results"]] == ["offer", "hello"]
    assert messages["results"][0]["variant"] in {"a", "b"}
    assert messages["results"][0]["campaign_name"] == "Win back"
    assert_error(api.get("/api/v1/customers/nobody/messages"), 404)

    VariantWinner.objects.create(campaign_id=campaign["id"], step_key="offer", variant_key="b", figures={"x": 1})
    report = api.get(f"/api/v1/campaigns/{campaign['id']}/report").json()
    assert report["winner"]["offer"]["variant"] == "b"
    assert Message.objects.filter(campaign_id=campaign["id"]).count() == 12


def test_the_groups_that_see_messages_see_journey_entries_in_the_admin(client, make_customer):
    from django.contrib.auth.models import Group, User

    for name in ("marketer", "analyst", "support"):
        assert Group.objects.get(name=name).permissions.filter(codename="view_entry").exists(), name
    staff = User.objects.create_user("entries-viewer", password="x", is_staff=True)
    staff.groups.add(Group.objects.get(name="analyst"))
    client.force_login(staff)
    response = client.get("/admin/campaigns/entry/")
    assert response.status_code == 200
