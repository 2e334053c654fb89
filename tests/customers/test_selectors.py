"""The customer 360 and list selectors."""

import datetime as dt

import pytest
from django.utils import timezone

from customers import selectors
from customers.services import PurchaseInput, cart_upsert, customer_upsert, purchase_record
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def test_customer_360_reads_everything_in_a_fixed_number_of_queries(django_assert_max_num_queries):
    customer, _ = customer_upsert(external_id="c-1", data={"consents": {"email": True, "sms": False}})
    for number in range(12):
        purchase_record(
            data=PurchaseInput.clean(
                {
                    "external_id": f"o-{number}",
                    "customer": "c-1",
                    "placed_at": timezone.now() - dt.timedelta(days=number),
                    "total": "10.00",
                    "items": [{"sku": "A", "quantity": 1, "unit_price": "10.00"}],
                }
            )
        )
    cart_upsert(external_id="cart-1", customer="c-1", items=[{"sku": "B", "quantity": 1, "unit_price": "3"}])
    customer.refresh_from_db()

    with django_assert_max_num_queries(9):
        view = selectors.customer_360(customer=customer)
        items = [item.sku for purchase in view.purchases for item in purchase.items.all()]
        cart_items = [item.sku for cart in view.carts for item in cart.items.all()]

    assert view.consents == {"email": True, "sms": False, "push": False, "webhook": False, "telegram": False}
    assert view.purchases_total == 12
    assert view.purchases[0].external_id == "o-0"
    assert items == ["A"] * 12
    assert cart_items == ["B"]
    assert view.stats()["orders_count"] == 12


def test_search_by_id_email_phone_and_name():
    CustomerFactory(
        external_id="shop-77", email="ann@example.com", phone="+15550001111", first_name="Ann", last_name="Lee"
    )
    CustomerFactory(external_id="shop-88", email="bo@example.com", first_name="Bo", last_name="Ray")
    for query in ("shop-77", "ANN@", "+1555000", "lee", "Ann Lee"):
        found = list(selectors.customer_search(query=query).values_list("external_id", flat=True))
        assert found == ["shop-77"], query


def test_last_purchase_ranges():
    now = timezone.now()
    recent = CustomerFactory(last_purchase_at=now - dt.timedelta(days=10))
    lapsed = CustomerFactory(last_purchase_at=now - dt.timedelta(days=100))
    never = CustomerFactory(last_purchase_at=None)

    def ids(key):
        return set(selectors.customers_by_last_purchase(range_key=key, now=now).values_list("pk", flat=True))

    assert ids("30") == {recent.pk}
    assert ids("180") == {lapsed.pk}
    assert ids("never") == {never.pk}
