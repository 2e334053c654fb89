"""Topics (SPEC §4.2): every campaign has one; a customer out of a topic is left out at evaluation
and suppressed at send time; choices are kept with history; the preference centre (its server side
here, in a browser in tests/e2e) changes channels and topics; the one-click unsubscribe still
revokes the message's channel."""

import datetime as dt

import pytest
from django.test import Client

from campaigns.content.links import LinkMaker
from campaigns.content.models import Topic, TopicPreference, TopicPreferenceEvent
from campaigns.content.topics import topic_preference_set
from campaigns.models import Entry, Message
from campaigns.services import campaign_evaluate, messages_send_batch
from campaigns.tokens import unsubscribe_token
from customers.models import Consent, ConsentEvent
from customers.services import customer_erase

pytestmark = pytest.mark.django_db
LAPSED = dt.timedelta(days=100)


def topic(code: str) -> Topic:
    return Topic.objects.get(code=code)


def opt_out(customer, code: str) -> None:
    topic_preference_set(customer=customer, topic=topic(code), subscribed=False, source="api")


def test_the_four_topics_are_there_from_the_start():
    assert list(Topic.objects.values_list("code", flat=True)) == ["promotions", "reminders", "loyalty", "surveys"]


@pytest.mark.parametrize(
    ("trigger", "expected"),
    [
        ("abandoned_cart", "reminders"),
        ("reactivation", "promotions"),
        ("post_purchase", "surveys"),
        ("points_expiring", "loyalty"),
    ],
)
def test_a_campaign_gets_its_triggers_topic_unless_one_is_chosen(api, trigger, expected):
    data = {"name": "x", "trigger": trigger, "subject": "Hi", "body": "Hi"}
    assert api.post("/api/v1/campaigns", data, format="json").json()["topic"] == expected
    Topic.objects.create(code="vip", name="VIP news")
    chosen = api.post("/api/v1/campaigns", {**data, "topic": "vip"}, format="json")
    assert chosen.status_code == 201 and chosen.json()["topic"] == "vip"


def test_an_unknown_topic_is_a_400(api):
    data = {"name": "x", "trigger": "reactivation", "subject": "Hi", "body": "Hi", "topic": "nope"}
    response = api.post("/api/v1/campaigns", data, format="json")
    assert response.status_code == 400
    assert "topic" in response.json()["error"]["fields"]
    response = api.post("/api/v1/campaigns", {**data, "topic": 5}, format="json")
    assert response.status_code == 400


def test_evaluation_leaves_out_customers_out_of_the_campaigns_topic(make_customer, make_campaign, now):
    out = make_customer(last_purchase_at=now - LAPSED, external_id="out-of-promotions")
    other_topic = make_customer(last_purchase_at=now - LAPSED, external_id="out-of-reminders")
    plain = make_customer(last_purchase_at=now - LAPSED, external_id="plain")
    opt_out(out, "promotions")
    opt_out(other_topic, "reminders")
    campaign = make_campaign("reactivation")  # promotions
    result = campaign_evaluate(campaign_id=campaign.pk, now=now)
    assert result.queued == 2
    assert set(Message.objects.filter(campaign=campaign).values_list("customer_id", flat=True)) == {
        other_topic.pk,
        plain.pk,
    }
    assert not Entry.objects.filter(campaign=campaign, customer=out).exists()


def test_opting_back_in_lets_the_customer_in_again(make_customer, make_campaign, now):
    customer = make_customer(last_purchase_at=now - LAPSED)
    opt_out(customer, "promotions")
    topic_preference_set(customer=customer, topic=topic("promotions"), subscribed=True, source="api")
    campaign = make_campaign("reactivation")
    assert campaign_evaluate(campaign_id=campaign.pk, now=now).queued == 1


def test_opting_out_after_selection_suppresses_at_send_time(make_customer, make_campaign, now):
    leaves = make_customer(last_purchase_at=now - LAPSED, external_id="leaves")
    stays = make_customer(last_purchase_at=now - LAPSED, external_id="stays")
    campaign = make_campaign("reactivation")
    campaign_evaluate(campaign_id=campaign.pk, now=now)
    opt_out(leaves, "promotions")
    opt_out(stays, "surveys")  # another topic: no effect on this campaign
    result = messages_send_batch(campaign_id=campaign.pk, now=now)
    assert (result.sent, result.suppressed) == (1, 1)
    left = Message.objects.get(campaign=campaign, customer=leaves)
    assert (left.status, left.reason) == ("suppressed", "topic_opt_out")
    assert Message.objects.get(campaign=campaign, customer=stays).status == "sent"


def test_topic_choices_keep_their_history(make_customer):
    customer = make_customer()
    promotions = topic("promotions")
    topic_preference_set(customer=customer, topic=promotions, subscribed=True, source="api")
    assert not TopicPreferenceEvent.objects.exists()  # subscribed was already the state
    opt_out(customer, "promotions")
    opt_out(customer, "promotions")  # a repeat is no new history
    topic_preference_set(customer=customer, topic=promotions, subscribed=True, source="preference_centre")
    history = list(
        TopicPreferenceEvent.objects.filter(customer=customer).order_by("id").values_list("subscribed", "source")
    )
    assert history == [(False, "api"), (True, "preference_centre")]
    assert TopicPreference.objects.get(customer=customer, topic=promotions).subscribed is True


# --- The preference centre's server side ---------------------------------------------------------------


@pytest.fixture
def message(make_customer, make_campaign, now):
    make_customer(last_purchase_at=now - LAPSED, channels=("email", "sms"), phone="+442079460958")
    campaign = make_campaign("reactivation")
    campaign_evaluate(campaign_id=campaign.pk, now=now)
    messages_send_batch(campaign_id=campaign.pk, now=now)
    return Message.objects.select_related("customer").get(campaign=campaign)


def preferences_path(message) -> str:
    return LinkMaker().preferences_url(str(message.uuid)).removeprefix("http://127.0.0.1:8000")


def test_every_message_links_the_preference_centre(message):
    from django.core import mail

    (email,) = mail.outbox
    assert LinkMaker().preferences_url(str(message.uuid)) in email.body


def test_the_preference_centre_changes_channels_and_topics_with_history(client, message):
    path = preferences_path(message)
    page = client.get(path)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'value="email" id="channel-email" checked' in html and 'value="sms" id="channel-sms" checked' in html
    assert "***958" in html and message.customer.email not in html  # addresses masked
    assert 'value="promotions" id="topic-promotions" checked' in html
    response = client.post(path, {"channel": ["email"], "topic": ["reminders", "loyalty", "surveys"]})
    assert response.status_code == 302 and response["Location"].endswith("?saved=1")
    customer = message.customer
    sms = Consent.objects.get(customer=customer, channel="sms")
    assert (sms.granted, sms.source) == (False, "preference_centre")
    assert ConsentEvent.objects.filter(customer=customer, channel="sms", source="preference_centre").count() == 1
    assert Consent.objects.get(customer=customer, channel="email").granted is True
    assert TopicPreference.objects.get(customer=customer, topic=topic("promotions")).subscribed is False
    assert TopicPreferenceEvent.objects.filter(customer=customer, source="preference_centre").count() == 1
    # The same choices again write nothing new.
    client.post(path, {"channel": ["email"], "topic": ["reminders", "loyalty", "surveys"]})
    assert TopicPreferenceEvent.objects.filter(customer=customer).count() == 1
    assert ConsentEvent.objects.filter(customer=customer, source="preference_centre").count() == 1


def test_the_preference_centre_needs_its_form_token(message):
    browser = Client(enforce_csrf_checks=True)
    response = browser.post(preferences_path(message), {"channel": []})
    assert response.status_code == 403
    assert Consent.objects.get(customer=message.customer, channel="email").granted is True


def test_a_tampered_or_foreign_preferences_link_is_a_400(client, message):
    path = preferences_path(message)
    assert client.get(path[:-3] + "abc").status_code == 400
    assert client.post(path[:-3] + "abc", {"channel": []}).status_code == 400
    assert client.get(f"/preferences/{unsubscribe_token(message.uuid)}").status_code == 400
    assert client.post(path, {"channel": ["email\x00"]}).status_code == 400
    assert Consent.objects.get(customer=message.customer, channel="email").granted is True


def test_an_erased_customers_preferences_link_is_no_longer_valid(client, message):
    customer_erase(external_id=message.customer.external_id, actor="test")
    assert client.get(preferences_path(message)).status_code == 400


def test_one_click_unsubscribe_still_revokes_the_messages_channel_only(message):
    provider = Client(enforce_csrf_checks=True)
    response = provider.post(
        f"/unsubscribe/{unsubscribe_token(message.uuid)}",
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    assert Consent.objects.get(customer=message.customer, channel="email").granted is False
    assert Consent.objects.get(customer=message.customer, channel="sms").granted is True
    assert not TopicPreference.objects.filter(customer=message.customer).exists()


def test_the_editors_eligibility_names_a_topic_opt_out(make_customer, now):
    from campaigns.services.audience import Target, campaign_audience_estimate, customer_eligibility

    customer = make_customer(last_purchase_at=now - LAPSED)
    make_customer(last_purchase_at=now - LAPSED)
    opt_out(customer, "promotions")
    target = Target.clean(trigger="reactivation", params={}, channel="email", audience={})
    eligibility = customer_eligibility(target=target, customer_id=customer.pk, now=now)
    assert not eligibility.eligible
    assert "they opted out of the campaign's topic" in eligibility.reasons
    assert campaign_audience_estimate(target=target, now=now).eligible == 1
    # The same customer for a reminder: another topic, so in.
    reminders = Target.clean(
        trigger="reactivation", params={}, channel="email", audience={}, topic=str(topic("reminders").pk)
    )
    assert customer_eligibility(target=reminders, customer_id=customer.pk, now=now).eligible


def test_a_campaign_saved_without_a_topic_counts_as_its_triggers(make_customer, make_campaign, now):
    from campaigns.models import Campaign

    out = make_customer(last_purchase_at=now - LAPSED)
    make_customer(last_purchase_at=now - LAPSED)
    opt_out(out, "promotions")
    campaign = make_campaign("reactivation")
    Campaign.objects.filter(pk=campaign.pk).update(topic=None)  # e.g. written by hand
    assert campaign_evaluate(campaign_id=campaign.pk, now=now).queued == 1
    assert not Message.objects.filter(campaign=campaign, customer=out).exists()


def test_staff_see_topics_the_layout_and_the_history_of_choices(admin_client, make_customer):
    opt_out(make_customer(external_id="shop-ada"), "promotions")
    assert b"Promotions" in admin_client.get("/admin/campaigns/topic/").content
    history = admin_client.get("/admin/campaigns/topicpreferenceevent/")
    assert history.status_code == 200 and b"shop-ada" in history.content
    layout = admin_client.get("/admin/campaigns/emaillayout/")
    assert layout.status_code == 302 and layout["Location"].endswith("/admin/campaigns/emaillayout/1/change/")
    assert admin_client.get(layout["Location"]).status_code == 200
