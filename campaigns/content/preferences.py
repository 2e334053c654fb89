"""The preference centre (SPEC §4.2): a signed page, linked from every message, where a customer
sees and changes each channel's consent and each topic.

Channel changes go through ``consent_set`` (history kept, journeys on a revoked channel end) and
topic changes through ``topic_preference_set`` (history kept); both with source
``preference_centre``.
"""

from dataclasses import dataclass

from django.db import transaction

from campaigns.channels.registry import CHANNELS
from campaigns.content.links import InvalidLink, preferences_read
from campaigns.content.models import Topic, TopicSource
from campaigns.content.topics import topic_preference_set, topics_ensure, topics_subscribed
from campaigns.models import Message
from customers.models import Consent, ConsentSource, Customer
from customers.services import consent_set
from retention_crm.errors import ApplicationError


@dataclass(frozen=True)
class ChannelChoice:
    key: str
    label: str
    address: str  # masked
    granted: bool


@dataclass(frozen=True)
class TopicChoice:
    id: int
    code: str
    name: str
    description: str
    subscribed: bool


@dataclass(frozen=True)
class Preferences:
    customer: Customer
    channels: list[ChannelChoice]
    topics: list[TopicChoice]


def _invalid() -> ApplicationError:
    return ApplicationError("This preferences link is not valid.", code="invalid_token")


def preferences_customer(*, token: str) -> Customer:
    """The customer a preferences link belongs to; ApplicationError (400) for a tampered or unknown
    link, or an erased customer (nothing of theirs is left to choose)."""
    try:
        message_uuid = preferences_read(token)
    except InvalidLink:
        raise _invalid() from None
    message = Message.objects.select_related("customer").filter(uuid=message_uuid).first()
    if message is None or message.customer.erased_at is not None:
        raise _invalid()
    return message.customer


def preferences_get(*, customer: Customer) -> Preferences:
    topics_ensure()
    granted = dict(Consent.objects.filter(customer=customer).values_list("channel", "granted"))
    channels = [
        ChannelChoice(
            key=definition.key,
            label=definition.label,
            address=definition.masked_address_of(customer),
            granted=granted.get(definition.key, False),
        )
        for definition in CHANNELS.values()
        # A channel the customer can be reached on, or one they once answered about.
        if definition.key in granted or (definition.address_of(customer) and not definition.always_addressed)
    ]
    subscribed = topics_subscribed(customer=customer)
    topics = [
        TopicChoice(
            id=topic.pk,
            code=topic.code,
            name=topic.name,
            description=topic.description,
            subscribed=subscribed[topic.pk],
        )
        for topic in Topic.objects.all()
    ]
    return Preferences(customer=customer, channels=channels, topics=topics)


@transaction.atomic
def preferences_save(*, customer: Customer, channels: set[str], topic_codes: set[str]) -> Preferences:
    """Make the customer's choices the ticked ones: each shown channel granted if ticked, revoked if
    not; each topic subscribed if ticked. Unchanged choices write no history."""
    current = preferences_get(customer=customer)
    for channel in current.channels:
        wanted = channel.key in channels
        if wanted != channel.granted:
            consent_set(customer=customer, channel=channel.key, granted=wanted, source=ConsentSource.PREFERENCE_CENTRE)
    topics = {topic.pk: topic for topic in Topic.objects.all()}
    for choice in current.topics:
        wanted = choice.code in topic_codes
        if wanted != choice.subscribed:
            topic_preference_set(
                customer=customer, topic=topics[choice.id], subscribed=wanted, source=TopicSource.PREFERENCE_CENTRE
            )
    return preferences_get(customer=customer)
