"""Hostile input never answers 5xx and writes nothing (SPEC §8).

Lone surrogates and NUL characters in any text (also in path ids and object keys), JSON nested too
deep or repeating a key, dates far in the future, numbers spelled oddly: each a 4xx in the API's
error format, with every table's row count unchanged.
"""

import json

import pytest
from django.apps import apps
from rest_framework.test import APIClient

from customers.models import Customer, Purchase
from customers.services import PurchaseInput, customer_upsert, purchase_record
from retention_crm.api.keys import api_key_create
from retention_crm.api.models import Scope
from tests.api.conftest import assert_error

pytestmark = pytest.mark.django_db

CUSTOMERS = "/api/v1/customers"
PURCHASE = {"external_id": "order-new", "customer": "known", "placed_at": "2026-03-01T10:00:00Z", "total": "10.00"}
ITEM = {"sku": "MUG", "name": "Mug", "quantity": 1, "unit_price": "10.00"}
CAMPAIGN = {"name": "Hi", "trigger": "reactivation", "channel": "email", "subject": "Hi", "body": "Hello"}
SURROGATE, LOW_SURROGATE, NUL = "\ud800", "\udfff", "\x00"
FAR_FUTURE = "2199-01-01T00:00:00Z"


@pytest.fixture
def client(db) -> APIClient:
    """A key with every scope, so that each request reaches validation."""
    _, raw_key = api_key_create(name="hostile", scopes=list(Scope.values))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    return client


@pytest.fixture
def known(db) -> Customer:
    customer, _ = customer_upsert(external_id="known", data={"email": "known@example.com"})
    purchase_record(data=PurchaseInput.clean({**PURCHASE, "external_id": "order-1", "total": "500.00"}))
    return customer


def row_counts() -> dict[str, int]:
    models = [model for app in ("customers", "campaigns", "api") for model in apps.get_app_config(app).get_models()]
    return {model._meta.label: model.objects.count() for model in models}


def _call(client: APIClient, method: str, path: str, body: object = None, *, raw: str | bytes | None = None):
    data = raw if raw is not None else (json.dumps(body) if body is not None else None)
    return getattr(client, method)(path, data=data, content_type="application/json")


def assert_refused(response, status: int | None = None) -> dict:
    """A 4xx in the API's error shape (never a 5xx)."""
    assert 400 <= response.status_code < 500, (response.status_code, response.content[:300])
    return assert_error(response, status or response.status_code)


def _with(base: dict, **changes) -> dict:
    return {**base, **changes}


def _nested(depth: int, leaf: object = 1) -> object:
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


# (method, path, body): each a 400 that writes nothing.
TEXT_CASES = {
    # Lone surrogates, field by field.
    "customer first_name": ("put", f"{CUSTOMERS}/new", {"first_name": SURROGATE}),
    "customer last_name": ("put", f"{CUSTOMERS}/new", {"last_name": f"Ada{SURROGATE}"}),
    "customer email": ("put", f"{CUSTOMERS}/new", {"email": f"a{SURROGATE}@example.com"}),
    "customer phone": ("put", f"{CUSTOMERS}/new", {"phone": f"+44{SURROGATE}"}),
    "customer tags": ("put", f"{CUSTOMERS}/new", {"tags": ["ok", SURROGATE]}),
    "customer attributes value": ("put", f"{CUSTOMERS}/new", {"attributes": {"k": SURROGATE}}),
    "customer attributes key": ("put", f"{CUSTOMERS}/new", {"attributes": {LOW_SURROGATE: 1}}),
    "customer nested attributes key": ("put", f"{CUSTOMERS}/new", {"attributes": {"a": [{LOW_SURROGATE: 1}]}}),
    "customer timezone": ("put", f"{CUSTOMERS}/new", {"timezone": SURROGATE}),
    "customer referred_by": ("put", f"{CUSTOMERS}/new", {"referred_by": SURROGATE}),
    "customer created_at": ("put", f"{CUSTOMERS}/new", {"created_at": SURROGATE}),
    "customer consents channel": ("put", f"{CUSTOMERS}/new", {"consents": {SURROGATE: True}}),
    "customer unknown field": ("put", f"{CUSTOMERS}/new", {LOW_SURROGATE: "x"}),
    "purchase customer": ("post", "/api/v1/purchases", _with(PURCHASE, customer=f"new{SURROGATE}")),
    "purchase external_id": ("post", "/api/v1/purchases", _with(PURCHASE, external_id=SURROGATE)),
    "purchase item name": ("post", "/api/v1/purchases", _with(PURCHASE, items=[_with(ITEM, name=SURROGATE)])),
    "purchase item sku": ("post", "/api/v1/purchases", _with(PURCHASE, items=[_with(ITEM, sku=SURROGATE)])),
    "purchase item category": ("post", "/api/v1/purchases", _with(PURCHASE, items=[_with(ITEM, category=SURROGATE)])),
    "purchase cart_id": ("post", "/api/v1/purchases", _with(PURCHASE, cart_id=SURROGATE)),
    "purchase currency": ("post", "/api/v1/purchases", _with(PURCHASE, currency=SURROGATE)),
    "purchase status": ("post", "/api/v1/purchases", _with(PURCHASE, status=SURROGATE)),
    "purchase placed_at": ("post", "/api/v1/purchases", _with(PURCHASE, placed_at=SURROGATE)),
    "cart customer": ("put", "/api/v1/carts/cart-1", {"customer": SURROGATE, "items": []}),
    "cart item name": ("put", "/api/v1/carts/cart-1", {"customer": "new", "items": [_with(ITEM, name=SURROGATE)]}),
    "nps comment": ("post", "/api/v1/nps", {"customer": "known", "score": 9, "comment": SURROGATE}),
    "nps customer": ("post", "/api/v1/nps", {"customer": SURROGATE, "score": 9}),
    "adjust reason": (
        "post",
        f"{CUSTOMERS}/known/loyalty/adjust",
        {"points": 5, "reason": f"goodwill {SURROGATE}", "idempotency_key": "k1"},
    ),
    "adjust idempotency_key": (
        "post",
        f"{CUSTOMERS}/known/loyalty/adjust",
        {"points": 5, "reason": "goodwill", "idempotency_key": SURROGATE},
    ),
    "redeem idempotency_key": (
        "post",
        f"{CUSTOMERS}/known/loyalty/redeem",
        {"points": 5, "order_total": "50.00", "idempotency_key": SURROGATE},
    ),
    "redeem order_id": (
        "post",
        f"{CUSTOMERS}/known/loyalty/redeem",
        {"points": 5, "order_total": "50.00", "order_id": SURROGATE, "idempotency_key": "k2"},
    ),
    "consent channel": ("post", f"{CUSTOMERS}/known/consents", {"channel": SURROGATE, "granted": True}),
    "consent source": (
        "post",
        f"{CUSTOMERS}/known/consents",
        {"channel": "email", "granted": True, "source": SURROGATE},
    ),
    "campaign name": ("post", "/api/v1/campaigns", _with(CAMPAIGN, name=SURROGATE)),
    "campaign body": ("post", "/api/v1/campaigns", _with(CAMPAIGN, body=f"Hi {SURROGATE}")),
    # NUL characters.
    "customer first_name NUL": ("put", f"{CUSTOMERS}/new", {"first_name": f"a{NUL}b"}),
    "customer tags NUL": ("put", f"{CUSTOMERS}/new", {"tags": [NUL]}),
    "customer attributes key NUL": ("put", f"{CUSTOMERS}/new", {"attributes": {f"k{NUL}": 1}}),
    "purchase customer NUL": ("post", "/api/v1/purchases", _with(PURCHASE, customer=f"a{NUL}b")),
    "purchase item name NUL": ("post", "/api/v1/purchases", _with(PURCHASE, items=[_with(ITEM, name=NUL)])),
    "nps comment NUL": ("post", "/api/v1/nps", {"customer": "known", "score": 9, "comment": NUL}),
    "adjust reason NUL": (
        "post",
        f"{CUSTOMERS}/known/loyalty/adjust",
        {"points": 5, "reason": NUL, "idempotency_key": "k3"},
    ),
    # Dates more than 24 hours ahead.
    "customer created_at in 2199": ("put", f"{CUSTOMERS}/new", {"created_at": FAR_FUTURE}),
    "nps answered_at in 2199": ("post", "/api/v1/nps", {"customer": "known", "score": 9, "answered_at": FAR_FUTURE}),
    # Numbers spelled oddly.
    "total -0.00": ("post", "/api/v1/purchases", _with(PURCHASE, total="-0.00")),
    "total -0": ("post", "/api/v1/purchases", _with(PURCHASE, total="-0")),
    "total -0.0 as a number": ("post", "/api/v1/purchases", _with(PURCHASE, total=-0.0)),
    "total in Arabic-Indic digits": ("post", "/api/v1/purchases", _with(PURCHASE, total="\u0661\u0660.\u0660\u0660")),
    "total with an underscore": ("post", "/api/v1/purchases", _with(PURCHASE, total="1_000")),
    "total NaN": ("post", "/api/v1/purchases", _with(PURCHASE, total="NaN")),
    "total Infinity": ("post", "/api/v1/purchases", _with(PURCHASE, total="Infinity")),
    "quantity ٣": ("post", "/api/v1/purchases", _with(PURCHASE, items=[_with(ITEM, quantity="\u0663")])),
    "quantity with an underscore": ("post", "/api/v1/purchases", _with(PURCHASE, items=[_with(ITEM, quantity="1_0")])),
    "quantity 2.5": ("post", "/api/v1/purchases", _with(PURCHASE, items=[_with(ITEM, quantity=2.5)])),
    "unit_price -0.00": ("post", "/api/v1/purchases", _with(PURCHASE, items=[_with(ITEM, unit_price="-0.00")])),
    "points_redeemed ٣": ("post", "/api/v1/purchases", _with(PURCHASE, points_redeemed="\u0663")),
    "nps score ٩": ("post", "/api/v1/nps", {"customer": "known", "score": "\u0669"}),
    "adjust points ٣": (
        "post",
        f"{CUSTOMERS}/known/loyalty/adjust",
        {"points": "\u0663", "reason": "goodwill", "idempotency_key": "k4"},
    ),
    "redeem order_total -0.00": (
        "post",
        f"{CUSTOMERS}/known/loyalty/redeem",
        {"points": 5, "order_total": "-0.00", "idempotency_key": "k5"},
    ),
    # Deep values inside a body that is itself within the JSON limit.
    "attributes 20 deep": ("put", f"{CUSTOMERS}/new", {"attributes": _nested(20)}),
}


@pytest.mark.parametrize(("method", "path", "body"), TEXT_CASES.values(), ids=TEXT_CASES.keys())
def test_hostile_values_are_a_400_and_write_nothing(client, known, method, path, body):
    before = row_counts()
    assert_refused(_call(client, method, path, body), 400)
    assert row_counts() == before


def test_a_purchase_placed_more_than_a_day_ahead_is_a_400(client, known):
    before = row_counts()
    assert_refused(_call(client, "post", "/api/v1/purchases", _with(PURCHASE, placed_at=FAR_FUTURE)), 400)
    assert row_counts() == before


def test_times_less_than_a_day_ahead_pass(client, known):
    # Clocks drift: a sign-up an hour "ahead" of ours is taken.
    import datetime as dt

    from django.utils import timezone

    soon = (timezone.now() + dt.timedelta(hours=1)).isoformat()
    assert _call(client, "put", f"{CUSTOMERS}/soon", {"created_at": soon}).status_code == 201


PATH_IDS = ["a%00b", "%00", "a%01b", "a%1fb"]
PATH_ROUTES = [
    ("get", CUSTOMERS + "/{id}", None),
    ("put", CUSTOMERS + "/{id}", {"first_name": "Ada"}),
    ("post", CUSTOMERS + "/{id}/erase", None),
    ("post", CUSTOMERS + "/{id}/consents", {"channel": "email", "granted": True}),
    ("get", CUSTOMERS + "/{id}/loyalty", None),
    ("post", CUSTOMERS + "/{id}/loyalty/redeem", {"points": 1, "order_total": "10.00", "idempotency_key": "r"}),
    ("post", CUSTOMERS + "/{id}/loyalty/adjust", {"points": 1, "reason": "x", "idempotency_key": "a"}),
    ("post", "/api/v1/purchases/{id}/refund", None),
    ("put", "/api/v1/carts/{id}", {"customer": "known", "items": []}),
]


@pytest.mark.parametrize("path_id", PATH_IDS)
@pytest.mark.parametrize(("method", "route", "body"), PATH_ROUTES, ids=[f"{m} {r}" for m, r, _ in PATH_ROUTES])
def test_control_characters_in_path_ids_are_a_400(client, known, method, route, body, path_id):
    before = row_counts()
    error = assert_refused(_call(client, method, route.format(id=path_id), body), 400)
    assert "external_id" in error["fields"]
    assert row_counts() == before


def test_an_encoded_surrogate_in_a_path_id_is_refused(client, known):
    # Django re-quotes bytes that are not UTF-8, so the id never matches anything.
    assert_refused(client.get(f"{CUSTOMERS}/%ED%A0%80"), 404)


RAW_BODIES = {
    "nested 1,000 deep": "[" * 1000 + "]" * 1000,
    "objects nested 1,000 deep": '{"a":' * 1000 + "1" + "}" * 1000,
    "attributes 1,000 deep": '{"attributes": ' + '{"a":' * 1000 + "1" + "}" * 1000 + "}",
    "attributes 450 deep": '{"attributes": ' + '{"a":' * 450 + "1" + "}" * 450 + "}",
    "nested 33 deep": '{"attributes": ' + '{"a":' * 32 + "1" + "}" * 32 + "}",
    "100,000 open brackets": "[" * 100_000,
    "a repeated key": '{"first_name": "Ada", "first_name": "Bob"}',
    "a repeated key in attributes": '{"attributes": {"k": 1, "k": 2}}',
    "a repeated key that differs only in escaping": '{"first_name": "Ada", "first\\u005fname": "Bob"}',
    "NaN": '{"first_name": NaN}',
    "not UTF-8": b'{"first_name": "\xff\xfe"}',
    "a raw surrogate escape as a key": '{"\\udfff": 1}',
}


@pytest.mark.parametrize("raw", RAW_BODIES.values(), ids=RAW_BODIES.keys())
def test_malformed_json_is_a_400_and_writes_nothing(client, known, raw):
    before = row_counts()
    assert_refused(_call(client, "put", f"{CUSTOMERS}/new", raw=raw), 400)
    assert row_counts() == before


@pytest.mark.parametrize("depth", [450, 1000])
def test_deep_attributes_from_any_source_are_refused_without_recursion(depth):
    # The admin and the CSV import call the same validation without the API's JSON limit.
    from retention_crm import validation as v
    from retention_crm.errors import ApplicationError

    with pytest.raises(ApplicationError, match="nest deeper"):
        v.clean_attributes(_nested(depth))


def test_brackets_inside_strings_do_not_count_as_nesting(client, known):
    body = {"first_name": "[" * 140, "attributes": {"note": "{" * 500 + "]" * 500}}
    assert _call(client, "put", f"{CUSTOMERS}/new", body).status_code == 201


def test_32_levels_are_allowed(client, known):
    # The body is level 1 and attributes level 2: attributes may hold 14 more levels of their own.
    assert _call(client, "put", f"{CUSTOMERS}/new", {"attributes": _nested(15)}).status_code == 201


def test_error_messages_never_echo_a_lone_surrogate(client, known):
    response = _call(client, "put", f"{CUSTOMERS}/new", {LOW_SURROGATE: 1})
    error = assert_refused(response, 400)
    assert "\ufffd" in error["message"]


# --- Bulk: one bad item fails only itself and leaves nothing ----------------------------------------


def _bulk(client: APIClient, purchases: list[dict]):
    return _call(client, "post", "/api/v1/purchases/bulk", {"purchases": purchases})


def test_bulk_with_a_bad_item_fails_only_that_item_and_leaves_nothing_of_it(client, db):
    good = [
        _with(PURCHASE, external_id="b-1", customer="bulk-a"),
        _with(PURCHASE, external_id="b-2", customer="bulk-new", items=[_with(ITEM, name=SURROGATE)]),
        _with(PURCHASE, external_id="b-3", customer="bulk-c"),
    ]
    response = _bulk(client, good)
    assert response.status_code == 200, response.content[:300]
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["created", "error", "created"]
    assert results[1]["error"]["fields"] == {"items[0].name": ["must be valid Unicode text (no lone surrogates)"]}
    assert not Customer.objects.filter(external_id="bulk-new").exists()  # nor its welcome bonus
    assert set(Purchase.objects.values_list("external_id", flat=True)) == {"b-1", "b-3"}


BULK_BAD_ITEMS = {
    "surrogate customer": _with(PURCHASE, customer=f"x{SURROGATE}"),
    "surrogate key": {**PURCHASE, LOW_SURROGATE: 1},
    "surrogate external_id": _with(PURCHASE, external_id=SURROGATE),
    "NUL item name": _with(PURCHASE, items=[_with(ITEM, name=NUL)]),
    "total -0.00": _with(PURCHASE, total="-0.00"),
    "quantity ٣": _with(PURCHASE, items=[_with(ITEM, quantity="\u0663")]),
    "not an object": ["x"],
}


@pytest.mark.parametrize("bad", BULK_BAD_ITEMS.values(), ids=BULK_BAD_ITEMS.keys())
def test_bulk_bad_items_are_error_results_that_write_nothing(client, known, bad):
    before = row_counts()
    response = _bulk(client, [bad])
    assert response.status_code == 200, response.content[:300]
    [result] = response.json()["results"]
    assert result["status"] == "error"
    assert row_counts() == before


def test_bulk_an_item_failing_at_insert_fails_only_itself(client, db, monkeypatch):
    """Something validation let through and the driver refuses: the batch falls back item by item.

    (Its new customer was created up front in the batch's short customer transaction and stays, as
    docs/API.md says of items that fail only at insert.)
    """
    from customers.services import bulk

    def unencodable(*args, **kwargs):
        raise UnicodeEncodeError("utf-8", SURROGATE, 0, 1, "surrogates not allowed")

    original = bulk.purchase_record

    def record(*, data):
        if data.external_id == "b-2":
            unencodable()
        return original(data=data)

    monkeypatch.setattr(bulk, "_insert_set_based", unencodable)
    monkeypatch.setattr(bulk, "purchase_record", record)
    purchases = [_with(PURCHASE, external_id=f"b-{n}", customer=f"bulk-{n}") for n in (1, 2, 3)]
    response = _bulk(client, purchases)
    assert response.status_code == 200, response.content[:300]
    assert [r["status"] for r in response.json()["results"]] == ["created", "error", "created"]
    assert set(Purchase.objects.values_list("external_id", flat=True)) == {"b-1", "b-3"}
