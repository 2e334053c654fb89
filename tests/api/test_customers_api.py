"""Contract tests: customers, consents and erasure (SPEC §6)."""

import datetime as dt

import pytest

from customers.models import AuditLog, ConsentEvent, Customer, NpsResponse
from customers.services import PurchaseInput, purchase_record
from tests.api.conftest import assert_error

pytestmark = pytest.mark.django_db

CUSTOMER_360_FIELDS = {
    "orders_count",
    "total_spent",
    "first_purchase_at",
    "last_purchase_at",
    "points_balance",
    "tier",
    "rfm_segment",
    "churn_risk",
    "consents",
}


def test_put_creates_201_then_updates_200_and_is_idempotent(api):
    body = {
        "email": "ada@example.com",
        "phone": "+442079460958",
        "first_name": "Ada",
        "birth_date": "1990-12-10",
        "tags": ["vip"],
        "attributes": {"source": "instagram"},
        "consents": {"email": True},
        "created_at": "2026-01-02T03:04:05Z",
    }
    first = api.put("/api/v1/customers/ada", body, format="json")
    assert first.status_code == 201
    data = first.json()
    assert set(data) >= CUSTOMER_360_FIELDS
    assert data["consents"] == {"email": True, "sms": False, "push": False, "webhook": False, "telegram": False}
    assert data["created_at"] == "2026-01-02T03:04:05Z"

    again = api.put("/api/v1/customers/ada", body, format="json")
    assert again.status_code == 200
    assert again.json() == data
    assert Customer.objects.count() == 1
    assert ConsentEvent.objects.count() == 1


def test_put_with_a_trailing_slash_answers_the_same(api):
    assert api.put("/api/v1/customers/ada/", {}, format="json").status_code == 201
    assert api.get("/api/v1/customers/ada/").json()["external_id"] == "ada"


def test_get_360_shows_stats(api):
    purchase_record(
        data=PurchaseInput.clean(
            {"external_id": "o-1", "customer": "ada", "placed_at": "2026-03-01T10:00:00Z", "total": "99.90"}
        )
    )
    data = api.get("/api/v1/customers/ada").json()
    assert data["orders_count"] == 1
    assert data["total_spent"] == "99.90"
    assert data["first_purchase_at"] == data["last_purchase_at"] == "2026-03-01T10:00:00Z"
    # Loyalty with the default program: welcome bonus 100 + floor(99.90 x 1 point per 1.00) = 99.
    assert data["points_balance"] == 199
    assert data["tier"] == "bronze"


def test_unknown_customer_is_404(api):
    assert_error(api.get("/api/v1/customers/nobody"), 404, "customer_not_found")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "nope"}, "email"),
        ({"phone": "12345"}, "phone"),
        ({"birth_date": "10/12/1990"}, "birth_date"),
        ({"timezone": "Nowhere/City"}, "timezone"),
        ({"tags": [1, 2]}, "tags"),
        ({"attributes": {"note\u0000": [{"x": "\u0000"}]}}, "attributes"),  # jsonb cannot hold U+0000
        ({"consents": {"email": "yes"}}, "consents"),
        ({"created_at": "2026-13-01"}, "created_at"),
        ({"favourite_colour": "blue"}, "favourite_colour"),
    ],
)
def test_bad_customer_fields_are_400_and_write_nothing(api, body, field):
    assert_error(api.put("/api/v1/customers/ada", body, format="json"), 400, field=field)
    assert not Customer.objects.exists()


def test_body_must_be_an_object(api):
    assert_error(api.put("/api/v1/customers/ada", [1, 2], format="json"), 400)
    assert_error(api.put("/api/v1/customers/ada", "text", format="json"), 400)


def test_external_id_too_long_is_400(api):
    assert_error(api.put(f"/api/v1/customers/{'x' * 65}", {}, format="json"), 400, field="external_id")


def test_list_filters_and_searches(api):
    api.put(
        "/api/v1/customers/a", {"email": "a@example.com", "tags": ["vip"], "consents": {"sms": True}}, format="json"
    )
    api.put("/api/v1/customers/b", {"email": "b@example.com", "first_name": "Berta"}, format="json")
    purchase_record(
        data=PurchaseInput.clean(
            {"external_id": "o-1", "customer": "b", "placed_at": "2026-03-01T10:00:00Z", "total": "5.00"}
        )
    )

    def ids(query: str) -> list[str]:
        response = api.get(f"/api/v1/customers?{query}")
        assert response.status_code == 200, response.content
        return [row["external_id"] for row in response.json()["results"]]

    assert ids("") == ["b", "a"]
    assert ids("tag=vip") == ["a"]
    assert ids("consent=sms") == ["a"]
    assert ids("email=B@EXAMPLE.COM") == ["b"]
    assert ids("q=bert") == ["b"]
    assert ids("has_purchased=true") == ["b"]
    assert ids("last_purchase_after=2026-02-01T00:00:00Z") == ["b"]
    assert ids("last_purchase_before=2026-02-01T00:00:00Z") == []
    assert ids("limit=1") == ["b"]
    assert api.get("/api/v1/customers?limit=1").json()["count"] == 2


def test_the_list_count_stops_at_the_cap_and_paging_goes_on(api, settings):
    settings.LIST_COUNT_CAP = 2
    for name in ("c1", "c2", "c3"):
        Customer.objects.create(external_id=name)
    page = api.get("/api/v1/customers?limit=2").json()
    assert (page["count"], page["count_capped"]) == (2, True)
    seen = [row["external_id"] for row in page["results"]]
    while page["next"]:
        page = api.get(page["next"]).json()
        seen += [row["external_id"] for row in page["results"]]
    assert sorted(seen) == ["c1", "c2", "c3"]
    assert api.get("/api/v1/customers?tag=none").json() | {"next": None} == {
        "count": 0,
        "count_capped": False,
        "next": None,
        "previous": None,
        "results": [],
    }


def test_list_rejects_bad_filter_values(api):
    assert_error(api.get("/api/v1/customers?consent=fax"), 400, field="consent")
    assert_error(api.get("/api/v1/customers?created_after=yesterday"), 400, field="created_after")


def test_list_takes_a_fixed_number_of_queries(api, django_assert_max_num_queries):
    for number in range(30):
        api.put(f"/api/v1/customers/c-{number}", {"consents": {"email": True}}, format="json")
    with django_assert_max_num_queries(8):
        response = api.get("/api/v1/customers?limit=30")
    assert len(response.json()["results"]) == 30


def test_consents_grant_and_revoke_with_history(api):
    api.put("/api/v1/customers/ada", {}, format="json")
    response = api.post("/api/v1/customers/ada/consents", {"channel": "sms", "granted": True}, format="json")
    assert response.status_code == 200
    assert response.json()["consents"]["sms"] is True
    api.post(
        "/api/v1/customers/ada/consents",
        {"channel": "sms", "granted": False, "source": "unsubscribe_link"},
        format="json",
    )
    assert list(ConsentEvent.objects.order_by("id").values_list("granted", "source")) == [
        (True, "api"),
        (False, "unsubscribe_link"),
    ]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"channel": "fax", "granted": True}, "channel"),
        ({"channel": "sms", "granted": "yes"}, "granted"),
        ({"channel": "sms", "granted": True, "source": "erasure"}, "source"),
        ({"channel": "sms", "granted": True, "extra": 1}, "extra"),
    ],
)
def test_bad_consent_is_400(api, body, field):
    api.put("/api/v1/customers/ada", {}, format="json")
    assert_error(api.post("/api/v1/customers/ada/consents", body, format="json"), 400, field=field)
    assert not ConsentEvent.objects.exists()


def test_erase_anonymises_keeps_aggregates_and_is_audited(api):
    api.put(
        "/api/v1/customers/ada",
        {
            "email": "ada@example.com",
            "phone": "+442079460958",
            "first_name": "Ada",
            "last_name": "Lovelace",
            "birth_date": "1990-12-10",
            "attributes": {"city": "London"},
            "consents": {"email": True, "sms": True},
        },
        format="json",
    )
    purchase_record(
        data=PurchaseInput.clean(
            {"external_id": "o-1", "customer": "ada", "placed_at": "2026-03-01T10:00:00Z", "total": "42.00"}
        )
    )
    api.post("/api/v1/nps", {"customer": "ada", "score": 3, "comment": "Ada here, parcel was late"}, format="json")

    response = api.post("/api/v1/customers/ada/erase")
    assert response.status_code == 200
    assert response.json()["erased"] is True

    customer = Customer.objects.get(external_id="ada")
    assert (customer.email, customer.phone, customer.first_name, customer.last_name) == ("", "", "", "")
    assert customer.birth_date is None and customer.attributes == {}
    assert (customer.orders_count, str(customer.total_spent)) == (1, "42.00")
    assert api.get("/api/v1/customers/ada").json()["consents"] == dict.fromkeys(
        ("email", "sms", "push", "webhook", "telegram"), False
    )
    assert NpsResponse.objects.get().comment == "" and NpsResponse.objects.get().score == 3
    audit = AuditLog.objects.get()
    assert (audit.action, audit.target) == ("customer.erase", "customer:ada")
    assert audit.actor.startswith("api-key:")

    # Irreversible: no personal data and no consent can come back.
    assert_error(api.put("/api/v1/customers/ada", {"email": "x@example.com"}, format="json"), 409, "erased")
    assert_error(api.post("/api/v1/customers/ada/consents", {"channel": "email", "granted": True}, format="json"), 409)
    assert api.post("/api/v1/customers/ada/erase").status_code == 200
    assert AuditLog.objects.count() == 1


def test_erase_unknown_customer_is_404(api):
    assert_error(api.post("/api/v1/customers/nobody/erase"), 404)


def test_nps_answer(api):
    api.put("/api/v1/customers/ada", {}, format="json")
    response = api.post(
        "/api/v1/nps",
        {"customer": "ada", "score": 10, "comment": "Great", "answered_at": "2026-04-01T12:00:00Z"},
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["score"] == 10
    assert NpsResponse.objects.get().answered_at == dt.datetime(2026, 4, 1, 12, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"customer": "ada", "score": 11}, 400, "score"),
        ({"customer": "ada", "score": -1}, 400, "score"),
        ({"customer": "ada", "score": "ten"}, 400, "score"),
        ({"customer": "ada"}, 400, "score"),
        ({"customer": "nobody", "score": 5}, 404, None),
    ],
)
def test_bad_nps_answers(api, body, status, field):
    api.put("/api/v1/customers/ada", {}, format="json")
    assert_error(api.post("/api/v1/nps", body, format="json"), status, field=field)
    assert not NpsResponse.objects.exists()


@pytest.mark.parametrize("method", ["get", "post", "put", "delete"])
def test_an_unknown_api_path_is_a_json_404_whatever_the_method(method):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)  # as a browser or a bare client would send it
    body = {} if method == "get" else {"data": "{}", "content_type": "application/json"}
    response = getattr(client, method)("/api/v1/no-such-thing", **body)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
