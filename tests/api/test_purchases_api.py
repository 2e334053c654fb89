"""Contract tests: purchases (single, bulk, refund), carts, and bad input of every kind."""

import json

import pytest

from customers.models import Cart, Customer, Purchase, PurchaseItem
from tests.api.conftest import assert_error

pytestmark = pytest.mark.django_db


def order(external_id: str = "o-1", **changes) -> dict:
    return {
        "external_id": external_id,
        "customer": "c-1",
        "placed_at": "2026-05-04T12:00:00Z",
        "total": "59.90",
        "items": [{"sku": "TEA", "name": "Tea", "category": "tea", "quantity": 2, "unit_price": "29.95"}],
        **changes,
    }


def test_post_purchase_201_then_same_content_200_then_other_content_409(api):
    created = api.post("/api/v1/purchases", order(), format="json")
    assert created.status_code == 201
    body = created.json()
    assert body["external_id"] == "o-1" and body["customer"] == "c-1" and body["total"] == "59.90"
    assert body["status"] == "completed" and body["currency"] == "USD"
    assert body["items"][0]["sku"] == "TEA"

    again = api.post("/api/v1/purchases/", order(total=59.9), format="json")
    assert again.status_code == 200
    assert again.json()["external_id"] == "o-1"

    assert_error(api.post("/api/v1/purchases", order(total="60.00"), format="json"), 409, "purchase_conflict")
    assert Purchase.objects.count() == 1
    assert Customer.objects.get().orders_count == 1


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"total": "-5"}, "total"),
        ({"total": "abc"}, "total"),
        ({"total": 1e308}, "total"),
        ({"total": None}, "total"),
        ({"placed_at": "not a date"}, "placed_at"),
        ({"placed_at": "99999-01-01T00:00:00"}, "placed_at"),
        ({"placed_at": 12345}, "placed_at"),
        ({"currency": "JPY"}, "currency"),
        ({"status": "pending"}, "status"),
        ({"customer": ""}, "customer"),
        ({"customer": {"id": 1}}, "customer"),
        ({"external_id": "x" * 65}, "external_id"),
        ({"items": [{"sku": "A", "quantity": 1.5, "unit_price": "1"}]}, "items[0].quantity"),
        ({"items": [{"sku": "A", "quantity": 10**12, "unit_price": "1"}]}, "items[0].quantity"),
        ({"items": [{"sku": "A", "quantity": 1, "unit_price": "1", "colour": "red"}]}, "items[0]"),
        ({"items": [None]}, "items[0]"),
        ({"points_redeemed": "many"}, "points_redeemed"),
        ({"surprise": True}, "surprise"),
    ],
)
def test_bad_purchases_are_400_and_write_nothing(api, changes, field):
    assert_error(api.post("/api/v1/purchases", order(**changes), format="json"), 400, field=field)
    assert not Purchase.objects.exists()
    assert not Customer.objects.exists()


def test_malformed_json_non_object_and_wrong_media_type(api):
    assert_error(api.post("/api/v1/purchases", "{nope", content_type="application/json"), 400, "malformed_request")
    assert_error(api.post("/api/v1/purchases", "[]", content_type="application/json"), 400)
    assert_error(api.post("/api/v1/purchases", "null", content_type="application/json"), 400)
    assert_error(api.post("/api/v1/purchases", "a=b", content_type="text/plain"), 415, "unsupported_media_type")
    assert not Purchase.objects.exists()


def test_oversized_body_is_413(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    big = order(items=[{"sku": f"S{i}", "quantity": 1, "unit_price": "1.00"} for i in range(400)])
    assert_error(api.post("/api/v1/purchases", big, format="json"), 413, "too_large")
    assert not Purchase.objects.exists()


def test_unknown_api_path_is_a_json_404(api):
    assert_error(api.get("/api/v1/orders"), 404, "not_found")


def test_bulk_answers_one_result_per_item_in_order_and_bad_items_fail_alone(api):
    api.post("/api/v1/purchases", order("o-existing"), format="json")
    batch = [
        order("o-a"),
        order("o-bad", total="-1"),
        order("o-existing"),
        order("o-b", customer="c-2"),
        order("o-existing", total="1.00"),
        "not an object",
        order("o-a"),
    ]
    response = api.post("/api/v1/purchases/bulk", {"purchases": batch}, format="json")
    assert response.status_code == 200
    results = response.json()["results"]
    assert [(r["external_id"], r["status"]) for r in results] == [
        ("o-a", "created"),
        ("o-bad", "error"),
        ("o-existing", "exists"),
        ("o-b", "created"),
        ("o-existing", "error"),
        (None, "error"),
        ("o-a", "exists"),
    ]
    assert results[0]["error"] is None
    assert "total" in results[1]["error"]["fields"]
    assert results[4]["error"]["code"] == "purchase_conflict"
    assert set(Purchase.objects.values_list("external_id", flat=True)) == {"o-existing", "o-a", "o-b"}
    assert Customer.objects.get(external_id="c-1").orders_count == 2


def test_bulk_limit_is_1000(api):
    batch = [order(f"o-{n}") for n in range(1001)]
    assert_error(api.post("/api/v1/purchases/bulk", {"purchases": batch}, format="json"), 400, field="purchases")
    assert not Purchase.objects.exists()


@pytest.mark.parametrize("body", [{}, {"purchases": "x"}, {"purchases": [], "more": 1}, []])
def test_bulk_shape_errors(api, body):
    assert_error(api.post("/api/v1/purchases/bulk", body, format="json"), 400)


def test_bulk_of_1000_in_one_request(api):
    batch = [order(f"o-{n}", customer=f"c-{n % 50}") for n in range(1000)]
    response = api.post("/api/v1/purchases/bulk", {"purchases": batch}, format="json")
    assert [r["status"] for r in response.json()["results"]] == ["created"] * 1000
    assert Purchase.objects.count() == 1000
    assert PurchaseItem.objects.count() == 1000
    assert set(Customer.objects.values_list("orders_count", flat=True)) == {20}


def test_refund(api):
    api.post("/api/v1/purchases", order(), format="json")
    response = api.post("/api/v1/purchases/o-1/refund")
    assert response.status_code == 200
    assert response.json()["status"] == "refunded"
    assert api.post("/api/v1/purchases/o-1/refund").status_code == 200  # a repeat changes nothing
    customer = api.get("/api/v1/customers/c-1").json()
    assert (customer["orders_count"], customer["total_spent"]) == (0, "0.00")
    assert_error(api.post("/api/v1/purchases/nope/refund"), 404, "purchase_not_found")


def test_refund_of_a_cancelled_purchase_is_409(api):
    api.post("/api/v1/purchases", order(status="cancelled"), format="json")
    assert_error(api.post("/api/v1/purchases/o-1/refund"), 409, "invalid_status")


def test_cart_put_creates_replaces_and_empties(api):
    items = [{"sku": "MUG", "name": "Mug", "quantity": 2, "unit_price": "9.90"}]
    created = api.put("/api/v1/carts/cart-1", {"customer": "c-1", "items": items}, format="json")
    assert created.status_code == 201
    assert created.json()["status"] == "open"
    assert created.json()["items"][0]["unit_price"] == "9.90"

    replaced = api.put("/api/v1/carts/cart-1/", {"customer": "c-1", "items": []}, format="json")
    assert replaced.status_code == 200
    assert replaced.json()["items"] == []
    assert Cart.objects.count() == 1


def test_purchase_naming_the_cart_converts_it(api):
    api.put(
        "/api/v1/carts/cart-1",
        {"customer": "c-1", "items": [{"sku": "MUG", "quantity": 1, "unit_price": "5"}]},
        format="json",
    )
    api.post("/api/v1/purchases", order(cart_id="cart-1"), format="json")
    assert Cart.objects.get().status == "converted"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"items": []}, "customer"),
        ({"customer": "c-1"}, "items"),
        ({"customer": "c-1", "items": {"sku": "A"}}, "items"),
        ({"customer": "c-1", "items": [{"sku": "A", "quantity": 0, "unit_price": "1"}]}, "items[0].quantity"),
        ({"customer": "c-1", "items": [], "note": "x"}, "note"),
    ],
)
def test_bad_carts_are_400(api, body, field):
    assert_error(api.put("/api/v1/carts/cart-1", body, format="json"), 400, field=field)
    assert not Cart.objects.exists()


def test_unicode_survives_the_round_trip(api):
    body = order(items=[{"sku": "ÄPFEL-🍎", "name": "Äpfel 苹果", "quantity": 1, "unit_price": "59.90"}])
    response = api.post(
        "/api/v1/purchases", json.dumps(body, ensure_ascii=False).encode(), content_type="application/json"
    )
    assert response.status_code == 201
    assert response.json()["items"][0]["name"] == "Äpfel 苹果"
