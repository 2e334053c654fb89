"""Topics (SPEC §4.2): every campaign has one, and a customer out of a topic gets nothing of it.

A customer's choice per topic is kept like a channel consent: a current row (``TopicPreference``)
and an append-only history (``TopicPreferenceEvent``). No row means subscribed: topics only narrow
what the channel consent allows.
"""

import datetime as dt
from typing import Any

from django.db import transaction
from django.utils import timezone

from campaigns.content.models import Topic, TopicPreference, TopicPreferenceEvent, TopicSource
from campaigns.sql import Sql, value
from customers.models import Customer
from retention_crm import validation as v

# The topic a campaign of each trigger gets unless staff choose another.
TRIGGER_TOPICS = {
    "abandoned_cart": "reminders",
    "reactivation": "promotions",
    "birthday": "promotions",
    "welcome": "promotions",
    "post_purchase": "surveys",
    "points_expiring": "loyalty",
    "churn_risk": "promotions",
}
FALLBACK_TOPIC = "promotions"
# The four every shop starts with (seeded by migration 0009; put back here if the table was emptied).
DEFAULT_TOPICS = (
    ("promotions", "Promotions", "Offers, sales and news from the shop", 10),
    ("reminders", "Reminders", "Your cart, your orders and other reminders", 20),
    ("loyalty", "Loyalty", "Your points, tiers and expiring points", 30),
    ("surveys", "Surveys", "Questions about your experience", 40),
)


def topics_ensure() -> None:
    """The default topics exist (one cheap query when they do)."""
    if not Topic.objects.exists():
        Topic.objects.bulk_create(
            [
                Topic(code=code, name=name, description=description, position=position)
                for code, name, description, position in DEFAULT_TOPICS
            ],
            ignore_conflicts=True,
        )


def topic_default_for(trigger: str) -> Topic | None:
    code = TRIGGER_TOPICS.get(trigger, FALLBACK_TOPIC)
    topic = Topic.objects.filter(code=code).first()
    if topic is None:
        topics_ensure()
        topic = Topic.objects.filter(code=code).first()
    return topic


def topic_clean(raw: Any, *, trigger: str) -> Topic | None:
    """A campaign's topic from the API (its code) or the admin (a Topic); unset: the trigger's default."""
    if isinstance(raw, Topic):
        return raw
    if raw in (None, ""):
        return topic_default_for(trigger)
    if not isinstance(raw, str):
        raise v.invalid("topic", "must be a topic code")
    topic = Topic.objects.filter(code=raw).first()
    if topic is None:
        codes = ", ".join(Topic.objects.order_by("position", "code").values_list("code", flat=True))
        raise v.invalid("topic", f"unknown topic {raw!r}; use one of {codes}")
    return topic


def topic_allowed_sql(*, topic_id: int | None, customer: str, trigger: str = "") -> Sql:
    """``customer`` (a column) has not opted out of the topic: one anti-join on the opt-out index.

    Without a topic id (a campaign saved outside the services, an editor's draft), the
    ``trigger``'s default topic is looked up in the statement itself, so no statement needs a query
    of its own first; with neither, nothing is excluded.
    """
    if topic_id is not None:
        topic = value(topic_id, "bigint")
    elif trigger:
        code = value(TRIGGER_TOPICS.get(trigger, FALLBACK_TOPIC), "text")
        topic = Sql.format("(SELECT topic.id FROM campaigns_topic topic WHERE topic.code = {code})", code=code)
    else:
        return Sql("TRUE")
    return Sql.format(
        "NOT EXISTS (SELECT 1 FROM campaigns_topicpreference topic_out"
        f" WHERE topic_out.topic_id = {{topic}} AND topic_out.customer_id = {customer} AND NOT topic_out.subscribed)",
        topic=topic,
    )


@transaction.atomic
def topic_preference_set(
    *, customer: Customer, topic: Topic, subscribed: bool, source: str, at: dt.datetime | None = None
) -> TopicPreference:
    """Set one topic's choice; a change appends to the history, a repeat does not."""
    v.clean_choice(source, "source", TopicSource.values)
    if not isinstance(subscribed, bool):
        raise v.invalid("subscribed", "must be true or false")
    at = at or timezone.now()
    preference, created = TopicPreference.objects.select_for_update().get_or_create(
        customer=customer, topic=topic, defaults={"subscribed": subscribed, "source": source, "updated_at": at}
    )
    # A first row saying "subscribed" changes nothing (no row meant subscribed) and is not history.
    changed = (created and not subscribed) or (not created and preference.subscribed != subscribed)
    if not created and changed:
        preference.subscribed, preference.source, preference.updated_at = subscribed, source, at
        preference.save(update_fields=["subscribed", "source", "updated_at"])
    if changed:
        TopicPreferenceEvent.objects.create(
            customer=customer, topic=topic, subscribed=subscribed, source=source, recorded_at=at
        )
    return preference


def topics_subscribed(*, customer: Customer) -> dict[int, bool]:
    """Every topic's id and whether the customer gets it."""
    opted_out = set(
        TopicPreference.objects.filter(customer=customer, subscribed=False).values_list("topic_id", flat=True)
    )
    return {topic_id: topic_id not in opted_out for topic_id in Topic.objects.values_list("pk", flat=True)}
