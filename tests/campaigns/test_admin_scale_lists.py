"""The message, entry and attribution lists at millions of rows: counts capped, newest first by id,
searches exact on keys an index holds, and the customer's messages read in order off
(customer_id, created_at)."""

import datetime as dt
import re
from html import unescape

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from campaigns.models import Attribution, Entry, Message
from customers.models import Customer
from tests.factories import CustomerFactory, PurchaseFactory

pytestmark = pytest.mark.django_db


def text_of(response) -> str:
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", response.content.decode(), flags=re.S)
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def shown_pks(response) -> list[int]:
    return [row.pk for row in response.context["cl"].result_list]


def message(campaign, customer: Customer, key: str, **fields) -> Message:
    at = timezone.now() - dt.timedelta(days=1)
    return Message.objects.create(
        campaign=campaign, customer=customer, channel="email", dedupe_key=key, scheduled_at=at, send_at=at, **fields
    )


@pytest.fixture
def two_campaigns(make_campaign):
    return make_campaign(name="First"), make_campaign(name="Second")


def test_the_message_list_caps_its_count_and_lists_newest_first(admin_client, settings, two_campaigns):
    settings.LIST_COUNT_CAP = 2
    first, _ = two_campaigns
    customer = CustomerFactory()
    made = [message(first, customer, f"k{number}") for number in range(3)]
    response = admin_client.get(reverse("admin:campaigns_message_changelist"))
    assert "2+ messages" in text_of(response)
    newest_first = [made[2].pk, made[1].pk, made[0].pk]
    assert shown_pks(response) == newest_first
    # Each message above was made (and is due) a moment after the one before.
    send_at_column = response.context["cl"].list_display.index("send_at")
    sorted_by_send = admin_client.get(reverse("admin:campaigns_message_changelist"), {"o": str(send_at_column)})
    assert shown_pks(sorted_by_send) == newest_first  # no sort by a column without an index


def test_message_search_is_exact_on_uuid_customer_and_dedupe_key(admin_client, two_campaigns):
    first, second = two_campaigns
    ada, ada_two = CustomerFactory(external_id="ada"), CustomerFactory(external_id="ada-2")
    to_ada = message(first, ada, "cart:7")
    to_ada_two = message(second, ada_two, "cart:77")
    also_cart_seven = message(second, ada_two, "cart:7")
    url = reverse("admin:campaigns_message_changelist")

    def found(term: str) -> set[int]:
        response = admin_client.get(url, {"q": term})
        assert response.status_code == 200
        return set(shown_pks(response))

    assert found("ada") == {to_ada.pk}
    assert found("ada-2") == {to_ada_two.pk, also_cart_seven.pk}
    assert found("cart:7") == {to_ada.pk, also_cart_seven.pk}  # the key in every campaign
    assert found(str(to_ada_two.uuid)) == {to_ada_two.pk}
    assert found(str(to_ada_two.uuid).upper()) == {to_ada_two.pk}  # a UUID in any spelling
    assert found("cart") == set()  # no substring matching
    assert found(str(to_ada_two.uuid)[:8]) == set()
    assert found("not-a-uuid-%") == set()


def test_entry_search_is_exact_on_customer_and_dedupe_key(admin_client, two_campaigns):
    first, second = two_campaigns
    ada, bob = CustomerFactory(external_id="ada"), CustomerFactory(external_id="bob")
    now = timezone.now()
    one = Entry.objects.create(campaign=first, customer=ada, dedupe_key="visit:1", step_key="s", next_at=now)
    two = Entry.objects.create(campaign=second, customer=bob, dedupe_key="visit:1", step_key="s", next_at=now)
    three = Entry.objects.create(campaign=second, customer=ada, dedupe_key="visit:10", step_key="s", next_at=now)
    url = reverse("admin:campaigns_entry_changelist")

    def found(term: str) -> set[int]:
        return set(shown_pks(admin_client.get(url, {"q": term})))

    assert found("ada") == {one.pk, three.pk}
    assert found("visit:1") == {one.pk, two.pk}
    assert found("visit") == set()
    assert shown_pks(admin_client.get(url)) == [three.pk, two.pk, one.pk]


def test_attribution_search_is_exact_on_the_purchase_or_its_customer(admin_client, two_campaigns):
    first, _ = two_campaigns
    ada, bob = CustomerFactory(external_id="ada"), CustomerFactory(external_id="bob")
    credited = []
    for customer, order in ((ada, "order-1"), (ada, "order-2"), (bob, "order-10")):
        purchase = PurchaseFactory(external_id=order, customer=customer)
        touch = message(first, customer, order)
        credited.append(Attribution.objects.create(purchase=purchase, message=touch, campaign=first))
    url = reverse("admin:campaigns_attribution_changelist")

    def found(term: str) -> set[int]:
        return set(shown_pks(admin_client.get(url, {"q": term})))

    assert found("order-1") == {credited[0].pk}
    assert found("ada") == {credited[0].pk, credited[1].pk}
    assert found("bob") == {credited[2].pk}
    assert found("order") == set()
    assert shown_pks(admin_client.get(url)) == [row.pk for row in reversed(credited)]


_MESSAGES_SQL = """
    INSERT INTO campaigns_message (uuid, campaign_id, customer_id, channel, dedupe_key, step_key, variant_key,
        status, reason, data, created_at, scheduled_at, send_at, attempts, error, provider_message_id)
    SELECT gen_random_uuid(), %s, (%s::bigint[])[1 + n %% cardinality(%s::bigint[])], 'email', 'k-' || n,
        'message', '', 'suppressed', 'frequency_cap', '{}', now() - n * interval '1 minute', now(), now(), 0, '', ''
    FROM generate_series(1, 20000) AS n
"""


def test_the_customers_messages_are_read_in_order_off_their_index(two_campaigns):
    first, _ = two_campaigns
    customers = [customer.pk for customer in CustomerFactory.create_batch(100)]
    with connection.cursor() as cursor:
        cursor.execute(_MESSAGES_SQL, [first.pk, customers, customers])
        cursor.execute("ANALYZE campaigns_message")
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'campaigns_message'")
        definitions = [row[0] for row in cursor.fetchall()]
    page = Message.objects.filter(customer_id=customers[0]).order_by("-created_at", "-id")[:50]
    plan = page.explain()
    assert "message_customer_created_idx" in plan, plan
    assert len(list(page)) == 50
    # The foreign key's own index is gone: the new one's leading column does its work.
    assert not [definition for definition in definitions if definition.endswith("(customer_id)")], definitions
