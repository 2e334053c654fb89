"""The campaign editor's server side (the browser flow is tests/e2e/test_campaign_editor.py): read-only
views for analysts and archived campaigns, permissions on run / preview / send test, form errors."""

import pytest
from django.contrib.auth.models import Group, User

pytestmark = pytest.mark.django_db


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


def test_analysts_see_a_campaign_read_only_and_may_not_run_preview_or_test_it(analyst_client, make_campaign):
    campaign = make_campaign("reactivation", params={"inactive_days": 60})
    page = analyst_client.get(f"/admin/campaigns/campaign/{campaign.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "inactive_days" in html and 'id="campaign-run"' not in html and 'id="preview-customer"' not in html
    assert analyst_client.post(f"/admin/campaigns/campaign/{campaign.pk}/run/").status_code == 403
    assert analyst_client.post("/admin/campaigns/campaign/preview/", {"body": "x"}).status_code == 403
    assert (
        analyst_client.post(f"/admin/campaigns/campaign/{campaign.pk}/send-test/", {"to": "a@b.c"}).status_code == 403
    )
    assert analyst_client.post(f"/admin/campaigns/campaign/{campaign.pk}/status/paused/").status_code == 403


def test_an_archived_campaign_is_read_only(admin_client, make_campaign):
    campaign = make_campaign("birthday", status="draft")
    admin_client.post(f"/admin/campaigns/campaign/{campaign.pk}/status/archived/")
    campaign.refresh_from_db()
    assert campaign.status == "archived"
    page = admin_client.get(f"/admin/campaigns/campaign/{campaign.pk}/change/")
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
    from campaigns.models import Campaign

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
    assert answer == {"subject": "Hi Lin", "body": "75 points", "customer": "shop-lin"}
    unknown = marketer_client.post("/admin/campaigns/campaign/preview/", {"body": "x", "preview_customer": "nobody"})
    assert unknown.status_code == 404
    broken = marketer_client.post("/admin/campaigns/campaign/preview/", {"body": "{% for %}"})
    assert broken.status_code == 400 and "body" in broken.json()["error"]["fields"]
