"""The journey editor's server side (the browser flow is tests/e2e/test_journey_editor.py): a journey
saved through the campaign form, its errors named per step, structural changes refused while the
campaign is active (a form error, never a 500) and allowed while paused, preview and test send per
step and variant, and the drawn flow with each step's counts."""

import json
import re
from html import unescape

import pytest
from django.core import mail
from django.utils import timezone

from campaigns.flow_svg import journey_flow_svg
from campaigns.journey import journey_of
from campaigns.models import Campaign, Entry, Message, StepCount, VariantWinner

pytestmark = pytest.mark.django_db

ADD = "/admin/campaigns/campaign/add/"
CHANGE = "/admin/campaigns/campaign/{}/change/"
PREVIEW = "/admin/campaigns/campaign/preview/"

JOURNEY = [
    {"key": "hello", "type": "message", "subject": "Hello {{ customer.first_name }}", "body": "Welcome back."},
    {"key": "pause", "type": "wait", "minutes": 2880},
    {"key": "bought", "type": "split", "condition": {"purchased_since_entry": True}, "yes": "exit", "no": "nudge"},
    {
        "key": "nudge",
        "type": "message",
        "subject": "Still thinking?",
        "body": "Default body",
        "variants": [
            {"key": "a", "weight": 1, "subject": "A: come back, {{ customer.first_name }}", "body": "Variant A."},
            {"key": "b", "weight": 1, "subject": "B: 100 points for you, {{ customer.first_name }}", "body": "B!"},
        ],
        "auto_winner": {"min_per_variant": 50},
    },
    {"key": "mark", "type": "tag", "add": ["nudged"]},
]


def form_data(**overrides):
    data = {
        "name": "Come back journey",
        "trigger": "reactivation",
        "channel": "email",
        "status": "draft",
        "subject": "",
        "body": "",
        "holdout_percent": "10",
        "attribution_days": "7",
        "param__reactivation__inactive_days": "60",
        "steps_json": json.dumps(JOURNEY),
        "exit_on": "purchase",
        "reentry_mode": "never",
        "reentry_days": "",
    }
    return {**data, **overrides}


def change_data(campaign: Campaign, **overrides):
    """The change form as the page posts it, for a saved campaign (no status field there)."""
    data = form_data(
        name=campaign.name,
        steps_json=json.dumps(campaign.steps),
        exit_on=campaign.exit_on,
        reentry_mode="never" if campaign.reentry_after_days is None else "after_days",
        reentry_days="" if campaign.reentry_after_days is None else str(campaign.reentry_after_days),
    )
    data.pop("status")
    return {**data, **overrides}


def text_of(html: str) -> str:
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


def step_errors(html: str) -> dict:
    """The errors the page hands journey.js, by the services' names (``steps[3].variants[1].body``)."""
    found = re.search(r'data-errors="([^"]*)"', html)
    return json.loads(unescape(found.group(1))) if found else {}


@pytest.fixture
def journey(make_campaign):
    return make_campaign("reactivation", status="paused", steps=JOURNEY, params={"inactive_days": 60})


# --- Saving a journey through the form ------------------------------------------------------------


def test_a_journey_saved_through_the_form_is_stored_in_the_api_shape(admin_client):
    response = admin_client.post(
        ADD, form_data(exit_on="none", reentry_mode="after_days", reentry_days="30", _continue="1")
    )
    assert response.status_code == 302, text_of(response.content.decode())[:2000]
    campaign = Campaign.objects.get()
    assert [step["key"] for step in campaign.steps] == ["hello", "pause", "bought", "nudge", "mark"]
    assert campaign.steps[3]["variants"][1]["subject"].startswith("B: 100 points")
    assert campaign.steps[3]["auto_winner"] == {"min_per_variant": 50}
    assert (campaign.exit_on, campaign.reentry_after_days) == ("none", 30)

    # The change page carries the stored steps back into the editor's JSON, and the settings.
    page = admin_client.get(CHANGE.format(campaign.pk)).content.decode()
    textarea = re.search(r'<textarea name="steps_json"[^>]*>(.*?)</textarea>', page, re.S)
    shown = json.loads(unescape(textarea.group(1)))
    assert shown == campaign.steps
    assert [list(step)[:2] for step in shown] == [["key", "type"]] * 5  # readable: key and kind first
    assert list(shown[3]["variants"][0]) == ["key", "weight", "subject", "body"]
    assert re.search(r'<option value="after_days" selected>', page)
    assert 'name="reentry_days" value="30"' in page
    assert 'data-locked="false"' in page


def test_a_campaign_without_steps_keeps_its_single_message_and_reentry(admin_client, make_campaign):
    campaign = make_campaign("reactivation", status="draft", params={"inactive_days": 60})
    assert campaign.reentry_after_days == 0  # a new entry at every occasion, as a single-message campaign has
    data = change_data(campaign, subject="New subject {{ customer.first_name }}", body="New body", steps_json="")
    assert admin_client.post(CHANGE.format(campaign.pk), data).status_code == 302
    campaign.refresh_from_db()
    assert (campaign.steps, campaign.subject, campaign.reentry_after_days) == ([], data["subject"], 0)


def test_errors_come_back_named_by_step_and_field(admin_client):
    broken = json.loads(json.dumps(JOURNEY))
    broken[3]["variants"][1]["body"] = "{% if %}oops"
    page = admin_client.post(ADD, form_data(steps_json=json.dumps(broken)))
    assert page.status_code == 200
    html = page.content.decode()
    errors = step_errors(html)
    assert list(errors) == ["steps[3].variants[1].body"]
    assert "template error" in errors["steps[3].variants[1].body"][0]
    # Without the script too: the error list above the steps names the step and field.
    assert "steps[3].variants[1].body: template error" in text_of(html)
    assert not Campaign.objects.exists()

    unknown_target = json.loads(json.dumps(JOURNEY))
    unknown_target[2]["no"] = "nowhere"
    errors = step_errors(admin_client.post(ADD, form_data(steps_json=json.dumps(unknown_target))).content.decode())
    assert errors == {"steps[2].no": ["no step with key 'nowhere'"]}

    bad_wait = json.loads(json.dumps(JOURNEY))
    bad_wait[1]["minutes"] = 0
    errors = step_errors(admin_client.post(ADD, form_data(steps_json=json.dumps(bad_wait))).content.decode())
    assert list(errors) == ["steps[1].minutes"]

    not_json = admin_client.post(ADD, form_data(steps_json="[{"))
    assert not_json.status_code == 200 and "not valid JSON" in text_of(not_json.content.decode())
    assert "steps" in step_errors(not_json.content.decode())
    assert not Campaign.objects.exists()


def test_reentry_after_days_needs_its_number(admin_client):
    page = admin_client.post(ADD, form_data(reentry_mode="after_days", reentry_days=""))
    assert page.status_code == 200 and not Campaign.objects.exists()
    assert re.search(r'class="errorlist[^"]*"[^>]*id="id_reentry_days_error"', page.content.decode())


# --- Structure only while paused -----------------------------------------------------------------


def test_structure_changes_are_refused_while_active_and_allowed_while_paused(admin_client, journey):
    admin_client.post(f"/admin/campaigns/campaign/{journey.pk}/status/active/")
    journey.refresh_from_db()
    assert journey.status == "active"
    page = admin_client.get(CHANGE.format(journey.pk)).content.decode()
    assert 'data-locked="true"' in page
    assert "Pause the campaign to add, remove or reorder steps; texts can change now." in page

    # Reordering while active: the form again, with the refusal on it; nothing changed.
    reordered = [journey.steps[1], journey.steps[0], *journey.steps[2:]]
    refused = admin_client.post(CHANGE.format(journey.pk), change_data(journey, steps_json=json.dumps(reordered)))
    assert refused.status_code == 200
    html = refused.content.decode()
    assert "needs the campaign paused" in text_of(html)
    assert step_errors(html) == {"steps": ["pause the campaign to change its steps"]}
    assert json.loads(unescape(re.search(r'<textarea name="steps_json"[^>]*>(.*?)</textarea>', html, re.S)[1])) == (
        reordered  # the staff member's edit is still there
    )
    journey.refresh_from_db()
    assert [step["key"] for step in journey.steps] == ["hello", "pause", "bought", "nudge", "mark"]
    # Removing a step, too.
    removed = admin_client.post(CHANGE.format(journey.pk), change_data(journey, steps_json=json.dumps(JOURNEY[:4])))
    assert removed.status_code == 200 and "needs the campaign paused" in text_of(removed.content.decode())

    # Texts may change while active.
    retexted = json.loads(json.dumps(journey.steps))
    retexted[0]["body"] = "Welcome back, truly."
    saved = admin_client.post(CHANGE.format(journey.pk), change_data(journey, steps_json=json.dumps(retexted)))
    assert saved.status_code == 302
    journey.refresh_from_db()
    assert journey.steps[0]["body"] == "Welcome back, truly."

    # Paused: the reorder goes through.
    admin_client.post(f"/admin/campaigns/campaign/{journey.pk}/status/paused/")
    journey.refresh_from_db()
    assert 'data-locked="false"' in admin_client.get(CHANGE.format(journey.pk)).content.decode()
    reordered = [journey.steps[1], journey.steps[0], *journey.steps[2:]]
    saved = admin_client.post(CHANGE.format(journey.pk), change_data(journey, steps_json=json.dumps(reordered)))
    assert saved.status_code == 302
    journey.refresh_from_db()
    assert [step["key"] for step in journey.steps] == ["pause", "hello", "bought", "nudge", "mark"]


# --- Preview and send test per step and variant -----------------------------------------------------


def test_the_preview_renders_the_chosen_step_and_variant(admin_client, make_customer):
    make_customer(external_id="shop-ann", first_name="Ann")
    posted = {"trigger": "reactivation", "channel": "email", "steps_json": json.dumps(JOURNEY)}

    first = admin_client.post(PREVIEW, {**posted, "preview_customer": "shop-ann"}).json()
    assert (first["step"], first["variant"], first["subject"]) == ("hello", "", "Hello Ann")

    b = admin_client.post(
        PREVIEW, {**posted, "preview_customer": "shop-ann", "preview_step": "nudge", "preview_variant": "b"}
    ).json()
    assert (b["step"], b["variant"], b["subject"], b["body"]) == ("nudge", "b", "B: 100 points for you, Ann", "B!")
    a = admin_client.post(PREVIEW, {**posted, "preview_step": "nudge"}).json()
    assert (a["variant"], a["subject"]) == ("a", "A: come back, Ada")  # the first variant, the sample customer

    unknown = admin_client.post(PREVIEW, {**posted, "preview_step": "nudge", "preview_variant": "z"})
    assert unknown.status_code == 400 and "preview_variant" in unknown.json()["error"]["fields"]
    not_a_message = admin_client.post(PREVIEW, {**posted, "preview_step": "pause"})
    assert not_a_message.status_code == 400 and "preview_step" in not_a_message.json()["error"]["fields"]

    # A broken template elsewhere does not stop this step's preview; a broken one here is named.
    broken = json.loads(json.dumps(JOURNEY))
    broken[0]["body"] = "{% if %}"
    fine = admin_client.post(PREVIEW, {**posted, "steps_json": json.dumps(broken), "preview_step": "nudge"})
    assert fine.status_code == 200
    named = admin_client.post(PREVIEW, {**posted, "steps_json": json.dumps(broken), "preview_step": "hello"})
    assert named.status_code == 400 and list(named.json()["error"]["fields"]) == ["steps[0].body"]

    # Without steps: the campaign's own message, step "message", as before.
    single = admin_client.post(PREVIEW, {"trigger": "welcome", "subject": "Hi {{ customer.first_name }}", "body": "x"})
    assert (single.json()["step"], single.json()["subject"]) == ("message", "Hi Ada")


def test_send_test_sends_the_chosen_step_and_variant(admin_client, admin_user, journey, make_customer, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    make_customer(external_id="shop-ann", first_name="Ann")
    url = f"/admin/campaigns/campaign/{journey.pk}/send-test/"
    posted = {"to": admin_user.email, "preview_customer": "shop-ann", "preview_step": "nudge", "preview_variant": "b"}
    response = admin_client.post(url, posted, follow=True)
    assert "Test of step nudge, variant b sent to" in text_of(response.content.decode())
    assert [m.subject for m in mail.outbox] == ["[TEST] B: 100 points for you, Ann"]
    assert mail.outbox[0].body.startswith("B!")
    # The page comes back with the same step and variant chosen.
    assert response.redirect_chain[-1][0].endswith("preview_customer=shop-ann&preview_step=nudge&preview_variant=b")
    assert 'data-initial="nudge"' in response.content.decode()

    admin_client.post(url, {"to": admin_user.email})
    assert mail.outbox[-1].subject == "[TEST] Hello Ada"  # by default the first message step
    refused = admin_client.post(url, {"to": admin_user.email, "preview_step": "pause"}, follow=True)
    assert "Test not sent: preview_step: no message step with key 'pause'" in text_of(refused.content.decode())
    assert len(mail.outbox) == 2


# --- The drawn flow ---------------------------------------------------------------------------------


def _counts(campaign, make_customer):
    """Entries at steps, messages sent, a goal exit and a winner: the figures the flow carries."""
    now = timezone.now()
    StepCount.objects.bulk_create(
        [
            StepCount(campaign=campaign, step_key=key, entered=entered)
            for key, entered in (("hello", 7), ("pause", 6), ("bought", 4), ("nudge", 3), ("mark", 1))
        ]
    )
    customers = [make_customer(external_id=f"shop-{n}") for n in range(5)]
    for number, customer in enumerate(customers[:2]):  # two waiting at "pause"
        Entry.objects.create(
            campaign=campaign, customer=customer, dedupe_key=f"w{number}", step_key="pause", next_at=now
        )
    Entry.objects.create(
        campaign=campaign,
        customer=customers[2],
        dedupe_key="g",
        step_key="pause",
        state="exited",
        exit_reason="goal",
        ended_at=now,
        next_at=None,
    )
    for number, customer in enumerate(customers[:3]):
        Message.objects.create(
            campaign=campaign,
            customer=customer,
            channel="email",
            dedupe_key=f"m{number}",
            status="sent",
            step_key="hello",
            scheduled_at=now,
            send_at=now,
            sent_at=now,
            touched_at=now,
        )
    for number, (customer, variant) in enumerate(zip(customers[3:], ("a", "b"), strict=True)):
        Message.objects.create(
            campaign=campaign,
            customer=customer,
            channel="email",
            dedupe_key=f"n{number}",
            status="sent",
            step_key="nudge",
            variant_key=variant,
            scheduled_at=now,
            send_at=now,
            sent_at=now,
            touched_at=now,
        )
    VariantWinner.objects.create(campaign=campaign, step_key="nudge", variant_key="b", figures={})


def test_the_change_page_draws_the_flow_with_each_steps_counts(admin_client, journey, make_customer):
    _counts(journey, make_customer)
    html = admin_client.get(CHANGE.format(journey.pk)).content.decode()
    svg = re.search(r"<svg [^>]*journey-flow-svg.*?</svg>", html, re.S).group(0)
    steps = dict(re.findall(r'<g class="flow-step flow-\w+" data-step="([^"]+)">(.*?)</g>', svg, re.S))
    assert list(steps) == ["hello", "pause", "bought", "nudge", "mark"]
    assert "entered 7 · waiting 0 · sent 3 · exited 0" in text_of(steps["hello"])
    assert "entered 6 · waiting 2 · exited 1" in text_of(steps["pause"])
    assert "★ winner b" in text_of(steps["nudge"]) and "★ winner" not in text_of(steps["hello"])
    assert "wait 2 days" in text_of(steps["pause"])
    assert "purchased since entering?" in text_of(steps["bought"])
    # The split's yes goes to an Exit end node, its no to the next step; the last step completes.
    assert text_of(svg).count("Exit") == 1 and "Completed" in text_of(svg)
    assert ">no</text>" in svg and ">yes</text>" in svg
    assert "a: sent 1 · b ★: sent 1" in text_of(steps["nudge"])
    # The report by step and variant shows the winner too.
    assert re.search(r'data-step="nudge">\s*<th scope="row">nudge <span class="winner-mark">★ winner b', html)
    variants = re.findall(r'<tr class="variant-row( is-winner)?" data-variant="(\w)">(.*?)</tr>', html, re.S)
    assert [(key, bool(winner)) for winner, key, _ in variants] == [("a", False), ("b", True)]
    assert "baseline" in text_of(variants[0][2])

    # The message list says which step and variant each message is.
    listing = text_of(admin_client.get("/admin/campaigns/message/").content.decode())
    assert "nudge/b" in listing and "hello" in listing


def test_the_flow_escapes_every_text_and_routes_branches_to_other_steps(make_campaign):
    steps = [
        {"key": "first", "type": "message", "subject": "<script>alert(1)</script> & co", "body": "x"},
        {"key": "later", "type": "wait", "until": "10:00"},
        {"key": "again", "type": "split", "condition": {"has_tag": "vip"}, "yes": "later", "no": "first"},
    ]
    campaign = make_campaign("reactivation", status="draft", steps=steps)
    svg = str(journey_flow_svg(journey=journey_of(campaign), report=[], winners=None))
    assert "<script>" not in svg and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in svg
    # Both branches go back up to other steps: one lane on each side, no Exit and no Completed node.
    assert len(re.findall(r'class="flow-arrow flow-branch flow-branch-(?:yes|no)"', svg)) == 2
    assert "Exit" not in svg and "Completed" not in svg
    assert "wait until 10:00" in svg and "has tag vip?" in svg


def test_a_campaign_without_steps_draws_its_one_message(admin_client, make_campaign):
    campaign = make_campaign("welcome", status="draft")
    html = admin_client.get(CHANGE.format(campaign.pk)).content.decode()
    svg = re.search(r"<svg [^>]*journey-flow-svg.*?</svg>", html, re.S).group(0)
    assert 'data-step="message"' in svg and "Completed" in svg
    assert 'id="steps-report"' not in html  # the per-step table is for journeys


def test_analysts_see_the_flow_but_no_editor(client, journey, django_user_model):
    from django.contrib.auth.models import Group

    user = django_user_model.objects.create_user("analyst", "analyst@example.com", "pw", is_staff=True)
    user.groups.add(Group.objects.get(name="analyst"))
    client.force_login(user)
    html = client.get(CHANGE.format(journey.pk)).content.decode()
    assert 'id="journey-flow"' in html and 'id="journey-editor"' not in html
