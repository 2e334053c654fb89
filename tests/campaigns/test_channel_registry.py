"""The channel registry is the one definition of each channel: the model's choices, the address
checks of evaluation and sending, the masking on the unsubscribe page and the admin's consent
checkboxes all come from it."""

import pytest
from django.db import connection

from campaigns.channels import backend_for
from campaigns.channels.registry import (
    CHANNELS,
    addressed_case_sql,
    channel_definition,
    personal_address_fields,
)
from campaigns.models import Message
from campaigns.services.events import unsubscribe_target
from campaigns.services.sending import MESSAGE_FIELDS
from campaigns.tokens import unsubscribe_token
from customers.admin import CustomerAdmin, CustomerForm
from customers.models import Channel, Customer
from tests.factories import CustomerFactory


def test_the_model_choices_are_the_registry():
    assert [(d.key, d.label) for d in CHANNELS.values()] == list(Channel.choices)


def test_every_address_field_is_a_customer_column_the_sender_loads():
    columns = {field.name for field in Customer._meta.get_fields()}
    for definition in CHANNELS.values():
        assert definition.address_field in columns
        assert f"customer__{definition.address_field}" in MESSAGE_FIELDS


def test_every_channel_has_a_backend_by_default(settings):
    settings.CAMPAIGN_CHANNELS = {}
    settings.TELEGRAM_BOT_TOKEN = "123:abc"
    for channel in CHANNELS:
        assert backend_for(channel) is not None


@pytest.mark.parametrize(
    ("channel", "customer", "expected"),
    [
        ("email", {"email": "ada@example.com"}, "ada@example.com"),
        ("sms", {"phone": "+442079460958"}, "+442079460958"),
        ("push", {"external_id": "shop-7", "phone": "+442079460958"}, "shop-7"),
        ("webhook", {"external_id": "shop-7"}, "shop-7"),
        ("telegram", {"telegram_chat_id": "123456789"}, "123456789"),
    ],
)
def test_each_channel_addresses_its_own_column(channel, customer, expected):
    assert channel_definition(channel).address_of(customer) == expected


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("channel", "shown"),
    [("email", "a***@example.com"), ("sms", "***958"), ("push", "***-42"), ("telegram", "***789")],
)
def test_the_unsubscribe_page_masks_the_address_the_channel_uses(make_campaign, now, channel, shown):
    # Push addresses the customer by external id: its page shows that, not the phone number.
    customer = CustomerFactory(
        external_id="shop-42", email="ada@example.com", phone="+442079460958", telegram_chat_id="123456789"
    )
    campaign = make_campaign("welcome", channel=channel, subject="Hi" if channel == "email" else "")
    message = Message.objects.create(
        campaign=campaign,
        customer=customer,
        channel=channel,
        dedupe_key=f"k-{channel}",
        status="sent",
        scheduled_at=now,
        send_at=now,
        sent_at=now,
    )
    assert unsubscribe_target(token=unsubscribe_token(message.uuid)).address == shown


@pytest.mark.django_db
def test_the_addressed_case_follows_each_channels_column():
    customer = CustomerFactory(email="", phone="+442079460958", telegram_chat_id="")
    case = addressed_case_sql(channel_column="ch.name", customer="c")
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT ch.name, {case} FROM customers_customer c"
            " CROSS JOIN unnest(%s::text[]) AS ch(name) WHERE c.id = %s ORDER BY ch.name",
            [list(CHANNELS), customer.pk],
        )
        addressed = dict(cursor.fetchall())
    assert addressed == {"email": False, "sms": True, "push": True, "webhook": True, "telegram": False}


def test_the_admin_has_one_consent_checkbox_per_channel():
    form_fields = {name for name in CustomerForm.base_fields if name.startswith("consent_")}
    assert form_fields == {definition.consent_field for definition in CHANNELS.values()}
    consent_fieldset = dict(CustomerAdmin.fieldsets)["Consents"]["fields"]
    assert list(consent_fieldset) == [definition.consent_field for definition in CHANNELS.values()]


def test_erasure_clears_every_personal_address_but_keeps_the_external_id():
    assert set(personal_address_fields()) == {"email", "phone", "telegram_chat_id"}
