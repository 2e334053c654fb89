"""purchase_record, purchase_refund, purchase_cancel and cart_upsert: SPEC §2 rules."""

import datetime as dt
import threading
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from customers.models import Cart, Customer, PointsEntry, Product, Purchase, PurchaseItem
from customers.services import PurchaseInput, cart_upsert, purchase_cancel, purchase_record, purchase_refund
from retention_crm.errors import ApplicationError, Conflict, NotFound

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 5, 4, 12, 0, tzinfo=dt.UTC)


def order(external_id="o-1", customer="c-1", placed_at=T0, total="59.90", **extra):
    return {"external_id": external_id, "customer": customer, "placed_at": placed_at, "total": total, **extra}


def record(**kwargs):
    return purchase_record(data=PurchaseInput.clean(order(**kwargs)))


def test_records_purchase_items_products_and_creates_the_unknown_customer():
    purchase, created = record(
        items=[
            {"sku": "TEA", "name": "Green tea", "category": "tea", "quantity": 2, "unit_price": "19.95"},
            {"sku": "MUG", "quantity": 1, "unit_price": 20},
        ]
    )
    assert created
    assert purchase.customer.external_id == "c-1"
    assert purchase.total == Decimal("59.90")
    assert purchase.currency == "USD"
    assert list(PurchaseItem.objects.filter(purchase=purchase).values_list("sku", "quantity")) == [
        ("TEA", 2),
        ("MUG", 1),
    ]
    assert Product.objects.get(sku="TEA").category == "tea"


def test_stats_follow_every_purchase():
    record(external_id="o-1", placed_at=T0, total="10.00")
    record(external_id="o-2", placed_at=T0 - dt.timedelta(days=30), total="5.50")
    record(external_id="o-3", placed_at=T0 + dt.timedelta(days=1), total="1.00", status="cancelled")
    customer = Customer.objects.get(external_id="c-1")
    assert customer.orders_count == 2
    assert customer.total_spent == Decimal("15.50")
    assert customer.first_purchase_at == T0 - dt.timedelta(days=30)
    assert customer.last_purchase_at == T0


def test_same_content_again_returns_the_stored_purchase():
    first, _ = record(total="10.00", items=[{"sku": "A", "quantity": 1, "unit_price": "10"}])
    # The same content spelled differently: another offset for the same instant, 10 vs "10.00".
    again, created = purchase_record(
        data=PurchaseInput.clean(
            order(
                total=10,
                placed_at="2026-05-04T14:00:00+02:00",
                currency="usd",
                items=[{"sku": "A", "quantity": 1, "unit_price": "10.00"}],
            )
        )
    )
    assert not created
    assert again.pk == first.pk
    assert Purchase.objects.count() == 1
    assert Customer.objects.get().orders_count == 1


def test_same_external_id_with_other_content_is_a_conflict():
    record(total="10.00")
    with pytest.raises(Conflict) as error:
        record(total="10.01")
    assert error.value.status == 409
    assert Purchase.objects.get().total == Decimal("10.00")


def test_a_conflict_naming_a_new_customer_leaves_no_customer_behind():
    record(total="10.00")
    with pytest.raises(Conflict):
        record(total="10.00", customer="someone-new")
    assert list(Customer.objects.values_list("external_id", flat=True)) == ["c-1"]
    assert not PointsEntry.objects.filter(customer__external_id="someone-new").exists()


def test_the_purchase_returned_is_the_one_stored():
    cart_upsert(external_id="cart-9", customer="c-1", items=[{"sku": "A", "quantity": 1, "unit_price": 5}])
    returned, created = record(
        cart_id="cart-9", points_redeemed=0, items=[{"sku": "A", "quantity": 1, "unit_price": 5}]
    )
    stored = Purchase.objects.get()
    fields = ["pk", "external_id", "customer_id", "placed_at", "total", "currency", "status", "cart_id"]
    fields += ["cart_external_id", "points_redeemed", "content_digest", "created_at", "status_changed_at"]
    assert created
    assert [getattr(returned, name) for name in fields] == [getattr(stored, name) for name in fields]
    assert returned.cart_id == Cart.objects.get(external_id="cart-9").pk
    assert list(returned.items.values_list("sku", flat=True)) == ["A"]


def test_naive_placed_at_is_store_time(settings):
    settings.TIME_ZONE = "America/New_York"
    purchase, _ = record(placed_at="2026-01-15T09:00:00")
    assert purchase.placed_at == dt.datetime(2026, 1, 15, 14, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"total": "-1.00"}, "total"),
        ({"total": "1.001"}, "total"),
        ({"total": "NaN"}, "total"),
        ({"total": "1e40"}, "total"),
        ({"total": True}, "total"),
        ({"placed_at": "2026-02-30T10:00:00"}, "placed_at"),
        ({"placed_at": "0001-01-01T00:00:00"}, "placed_at"),
        ({"status": "shipped"}, "status"),
        ({"currency": "EUR"}, "currency"),
        ({"points_redeemed": -5}, "points_redeemed"),
        ({"items": [{"sku": "A", "quantity": 0, "unit_price": "1"}]}, "items[0].quantity"),
        ({"items": [{"sku": "A", "quantity": 1, "unit_price": "-1"}]}, "items[0].unit_price"),
        ({"items": [{"quantity": 1, "unit_price": "1"}]}, "items[0].sku"),
        ({"items": "TEA"}, "items"),
        ({"coupon": "X"}, "coupon"),
    ],
)
def test_bad_purchases_are_refused_before_anything_is_written(changes, field):
    with pytest.raises(ApplicationError) as error:
        record(**changes)
    assert field in error.value.fields
    assert not Purchase.objects.exists()
    assert not Customer.objects.exists()


def test_refund_removes_the_purchase_from_stats_and_repeats_change_nothing():
    record(external_id="o-1", placed_at=T0, total="10.00")
    record(external_id="o-2", placed_at=T0 + dt.timedelta(days=2), total="20.00")

    purchase, changed = purchase_refund(external_id="o-2")
    assert changed and purchase.status == "refunded"
    _, changed_again = purchase_refund(external_id="o-2")
    assert not changed_again

    customer = Customer.objects.get()
    assert (customer.orders_count, customer.total_spent, customer.last_purchase_at) == (1, Decimal("10.00"), T0)


def test_cancel_then_refund_is_refused():
    record()
    purchase_cancel(external_id="o-1")
    with pytest.raises(Conflict):
        purchase_refund(external_id="o-1")
    customer = Customer.objects.get()
    assert (customer.orders_count, customer.total_spent, customer.first_purchase_at) == (0, Decimal("0.00"), None)


def test_refund_of_unknown_purchase_is_not_found():
    with pytest.raises(NotFound):
        purchase_refund(external_id="nope")


def test_a_purchase_after_the_carts_last_update_converts_it():
    cart, _ = cart_upsert(
        external_id="cart-1", customer="c-1", items=[{"sku": "A", "quantity": 1, "unit_price": "5"}], updated_at=T0
    )
    record(placed_at=T0 - dt.timedelta(minutes=1))  # before the cart changed: still open
    cart.refresh_from_db()
    assert cart.status == "open"

    record(external_id="o-2", placed_at=T0 + dt.timedelta(minutes=1))
    cart.refresh_from_db()
    assert cart.status == "converted"
    assert cart.converted_at is not None


def test_a_purchase_naming_the_cart_converts_it_whenever_placed():
    cart_upsert(external_id="cart-1", customer="c-1", items=[{"sku": "A", "quantity": 1, "unit_price": "5"}])
    purchase, _ = record(placed_at=timezone.now() - dt.timedelta(days=1), cart_id="cart-1")
    assert purchase.cart.external_id == "cart-1"
    assert Cart.objects.get().status == "converted"


def test_refunded_or_cancelled_purchases_do_not_convert_carts():
    cart_upsert(
        external_id="cart-1", customer="c-1", items=[{"sku": "A", "quantity": 1, "unit_price": "5"}], updated_at=T0
    )
    record(placed_at=T0 + dt.timedelta(hours=1), status="cancelled", cart_id="cart-1")
    assert Cart.objects.get().status == "open"


def test_cart_upsert_replaces_items_and_reopens():
    cart_upsert(
        external_id="cart-1", customer="c-1", items=[{"sku": "A", "quantity": 1, "unit_price": "5"}], updated_at=T0
    )
    record(placed_at=T0 + dt.timedelta(hours=1))
    cart, created = cart_upsert(
        external_id="cart-1", customer="c-1", items=[{"sku": "B", "quantity": 3, "unit_price": "2.50"}]
    )
    assert not created
    assert cart.status == "open"
    assert list(cart.items.values_list("sku", "quantity")) == [("B", 3)]

    cart, _ = cart_upsert(external_id="cart-1", customer="c-1", items=[])
    assert cart.items.count() == 0


def test_bad_cart_items_write_nothing():
    with pytest.raises(ApplicationError):
        cart_upsert(external_id="cart-1", customer="c-1", items=[{"sku": "A", "quantity": -1, "unit_price": "5"}])
    assert not Cart.objects.exists()
    assert not Customer.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_repeats_store_one_purchase_and_count_it_once():
    """Eight requests with the same order at once: one purchase, stats counted once, no error."""
    barrier = threading.Barrier(8)
    outcomes: list[bool | Exception] = []

    def send() -> None:
        try:
            barrier.wait()
            _, created = record(external_id="race", total="42.00")
            outcomes.append(created)
        except Exception as error:  # collected and asserted below
            outcomes.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert all(isinstance(outcome, bool) for outcome in outcomes), outcomes
    assert (outcomes.count(True), outcomes.count(False)) == (1, 7)
    assert Purchase.objects.count() == 1
    customer = Customer.objects.get()
    assert (customer.orders_count, customer.total_spent) == (1, Decimal("42.00"))


@pytest.mark.django_db(transaction=True)
def test_concurrent_purchases_of_one_customer_all_count():
    barrier = threading.Barrier(6)
    errors: list[Exception] = []

    def send(number: int) -> None:
        try:
            barrier.wait()
            record(external_id=f"p-{number}", total="10.00", placed_at=T0 + dt.timedelta(minutes=number))
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    customer = Customer.objects.get()
    assert (customer.orders_count, customer.total_spent) == (6, Decimal("60.00"))
    assert customer.last_purchase_at == T0 + dt.timedelta(minutes=5)


def test_a_purchase_stored_with_the_long_digest_is_still_recognised():
    """Purchases stored before the 22-character digest keep the 64-character hex of the whole
    hash: the same content again is that purchase, other content a conflict, by single and bulk."""
    from customers.services import purchases_record_bulk

    first, _ = record(total="10.00")
    assert len(first.content_digest) == 22
    data = PurchaseInput.clean(order(total="10.00"))
    Purchase.objects.filter(pk=first.pk).update(content_digest=data._content_hash().hex())
    again, created = record(total="10.00")
    assert not created and again.pk == first.pk
    with pytest.raises(Conflict):
        record(total="10.01")
    answers = purchases_record_bulk(raw_purchases=[order(total="10.00"), order(total="10.01")])
    assert [answer.status for answer in answers] == ["exists", "error"]
    assert Purchase.objects.count() == 1
