"""Contract tests: GET /customers/{id}/loyalty, POST .../loyalty/redeem, POST .../loyalty/adjust."""

import datetime as dt

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from customers.models import AuditLog, PointsEntry
from tests.api.conftest import ALL_SCOPES, assert_error
from tests.loyalty_support import assert_ledger_consistent, balance, buy, program_set

pytestmark = pytest.mark.django_db

LOYALTY = "/api/v1/customers/{}/loyalty"
REDEEM = "/api/v1/customers/{}/loyalty/redeem"
ADJUST = "/api/v1/customers/{}/loyalty/adjust"


@pytest.fixture(autouse=True)
def program():
    program_set(
        tiers=[("bronze", "Bronze", "0", "1"), ("silver", "Silver", "500", "1.25"), ("gold", "Gold", "2000", "1.5")]
    )


@pytest.fixture
def ada():
    now = timezone.now()
    buy("ada", "400.00", placed_at=now - dt.timedelta(days=355), external_id="ada-1")  # 400 pts, expire in 10 days
    buy("ada", "200.00", placed_at=now - dt.timedelta(days=5), external_id="ada-2")  # silver now: 250 pts
    return "ada"


def redeem_body(**changes) -> dict:
    return {"points": 100, "order_total": "50.00", "order_id": "next-1", "idempotency_key": "chk-1", **changes}


# --- GET loyalty --------------------------------------------------------------------------------


def test_get_loyalty_shows_balance_tier_progress_expiring_and_history(api, ada):
    response = api.get(LOYALTY.format(ada))
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["customer"] == "ada"
    assert data["balance"] == 650
    assert data["balance_value"] == "6.50"
    assert data["tier"] == {"code": "silver", "name": "Silver", "threshold": "500.00", "multiplier": "1.250"}
    assert data["next_tier"]["code"] == "gold"
    assert data["progress"] == {"trailing_spend": "600.00", "spend_to_next_tier": "1400.00", "share": 0.0667}
    assert data["expiring"]["days"] == 30 and data["expiring"]["points"] == 400
    assert data["expiring"]["earliest_expiry"]
    history = data["history"]
    assert history["count"] == 2 and history["next"] is None
    newest = history["results"][0]
    assert (newest["kind"], newest["points"], newest["balance_after"], newest["purchase"]) == (
        "earn",
        250,
        650,
        "ada-2",
    )
    assert set(newest) >= {"id", "created_at", "expires_at", "remaining", "uncovered", "reason", "order_id"}


def test_history_paginates_and_expiring_days_narrows_the_window(api, ada):
    for n in range(3):
        api.post(REDEEM.format(ada), redeem_body(points=10, idempotency_key=f"k-{n}"), format="json")
    page = api.get(LOYALTY.format(ada), {"limit": 2, "offset": 1, "expiring_days": 5}).json()
    assert page["history"]["count"] == 5
    assert len(page["history"]["results"]) == 2
    assert page["history"]["next"] and page["history"]["previous"]
    assert page["expiring"] == {"days": 5, "points": 0, "earliest_expiry": None}
    assert_error(api.get(LOYALTY.format(ada), {"expiring_days": "soon"}), 400, "invalid", "expiring_days")


def test_get_loyalty_of_an_unknown_customer_is_404(api):
    assert_error(api.get(LOYALTY.format("nobody")), 404, "customer_not_found")


# --- Redeem ---------------------------------------------------------------------------------------


def test_redeem_answers_redeemed_discount_balance_and_a_repeat_returns_the_first_answer(api, ada):
    first = api.post(REDEEM.format(ada), redeem_body(), format="json")
    assert first.status_code == 200, first.content
    assert first.json() == {"redeemed": 100, "discount": "1.00", "balance": 550, "order_id": "next-1"}
    buy("ada", "10.00")  # the balance moves on: the repeat still answers as the first time
    again = api.post(REDEEM.format(ada) + "/", redeem_body(), format="json")
    assert again.status_code == 200
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert PointsEntry.objects.filter(kind="redeem").count() == 1
    assert balance("ada") == 562
    assert_ledger_consistent("ada")


def test_a_different_request_under_the_same_key_is_409_and_changes_nothing(api, ada):
    api.post(REDEEM.format(ada), redeem_body(), format="json")
    for changes in ({"points": 101}, {"order_total": "60.00"}, {"order_id": "other"}):
        assert_error(api.post(REDEEM.format(ada), redeem_body(**changes), format="json"), 409, "idempotency_conflict")
    assert balance("ada") == 550


def test_insufficient_points_is_409_and_changes_nothing(api, ada):
    body = redeem_body(points=651, order_total="100000.00")
    error = assert_error(api.post(REDEEM.format(ada), body, format="json"), 409, "insufficient_points", "points")
    assert "650" in error["message"]
    assert balance("ada") == 650
    assert not PointsEntry.objects.filter(kind="redeem").exists()


def test_over_the_share_is_400_with_the_most_allowed(api, ada):
    # 30 % of 50.00 is 15.00: 1,500 points at 0.01 each would be fine, but 10.00 allows 300.
    error = assert_error(
        api.post(REDEEM.format(ada), redeem_body(points=301, order_total="10.00"), format="json"),
        400,
        "max_share_exceeded",
        "points",
    )
    assert "300" in error["message"]
    assert balance("ada") == 650
    ok = api.post(REDEEM.format(ada), redeem_body(points=300, order_total="10.00"), format="json")
    assert ok.json()["discount"] == "3.00"


def test_redeem_for_an_unknown_customer_is_404(api):
    assert_error(api.post(REDEEM.format("nobody"), redeem_body(), format="json"), 404, "customer_not_found")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"points": 0}, "points"),
        ({"points": -3}, "points"),
        ({"points": "many"}, "points"),
        ({"points": 2.5}, "points"),
        ({"points": True}, "points"),
        ({"points": 10**12}, "points"),
        ({"points": None}, "points"),
        ({"order_total": "-1.00"}, "order_total"),
        ({"order_total": "1.005"}, "order_total"),
        ({"order_total": "lots"}, "order_total"),
        ({"order_total": None}, "order_total"),
        ({"idempotency_key": ""}, "idempotency_key"),
        ({"idempotency_key": "x" * 101}, "idempotency_key"),
        ({"idempotency_key": 12}, "idempotency_key"),
        ({"order_id": "a" * 65}, "order_id"),
        ({"coupon": "FREE"}, "coupon"),
    ],
)
def test_bad_numbers_and_fields_are_400_and_change_nothing(api, ada, changes, field):
    assert_error(api.post(REDEEM.format(ada), redeem_body(**changes), format="json"), 400, field=field)
    assert balance("ada") == 650


def test_a_body_that_is_not_an_object_is_400(api, ada):
    assert_error(api.post(REDEEM.format(ada), [1, 2], format="json"), 400)
    assert_error(api.post(REDEEM.format(ada), "{", content_type="application/json"), 400)


# --- Adjust ---------------------------------------------------------------------------------------


def test_adjust_adds_or_takes_with_a_reason_and_is_idempotent(api, ada):
    body = {"points": -50, "reason": "Duplicate order", "idempotency_key": "ticket-1"}
    response = api.post(ADJUST.format(ada), body, format="json")
    assert response.status_code == 200, response.content
    assert response.json() == {"adjusted": -50, "balance": 600, "reason": "Duplicate order"}
    assert api.post(ADJUST.format(ada), body, format="json").json() == response.json()
    plus = api.post(ADJUST.format(ada), {"points": 25, "reason": "Goodwill", "idempotency_key": "t-2"}, format="json")
    assert plus.json()["balance"] == 625
    assert balance("ada") == 625
    audit = AuditLog.objects.filter(action="points.adjust").order_by("id").first()
    assert audit.target == "customer:ada" and audit.actor.startswith("api-key:")
    assert_ledger_consistent("ada")


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"points": 10, "idempotency_key": "k"}, 400, "reason"),
        ({"points": 10, "reason": "   ", "idempotency_key": "k"}, 400, "reason"),
        ({"points": 0, "reason": "x", "idempotency_key": "k"}, 400, "points"),
        ({"points": "ten", "reason": "x", "idempotency_key": "k"}, 400, "points"),
        ({"points": 10, "reason": "x"}, 400, "idempotency_key"),
        ({"points": -651, "reason": "x", "idempotency_key": "k"}, 409, "points"),
    ],
)
def test_adjust_refuses_bad_input_and_overdrafts(api, ada, body, status, field):
    assert_error(api.post(ADJUST.format(ada), body, format="json"), status, field=field)
    assert balance("ada") == 650


def test_adjust_for_an_unknown_customer_is_404(api):
    body = {"points": 10, "reason": "x", "idempotency_key": "k"}
    assert_error(api.post(ADJUST.format("nobody"), body, format="json"), 404, "customer_not_found")


# --- Scopes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "scope"),
    [
        ("get", LOYALTY, None, "loyalty"),
        ("post", REDEEM, {"points": 1, "order_total": "10.00", "idempotency_key": "k"}, "loyalty"),
        ("post", ADJUST, {"points": 1, "reason": "x", "idempotency_key": "k"}, "loyalty_adjust"),
    ],
)
def test_loyalty_endpoints_need_their_scope(make_client, ada, method, path, body, scope):
    def call(client: APIClient):
        url = path.format(ada)
        return getattr(client, method)(url, body, format="json") if body else getattr(client, method)(url)

    assert_error(call(APIClient()), 401, "not_authenticated")
    others = [other for other in ALL_SCOPES if other != scope]
    assert_error(call(make_client(*others)), 403, "permission_denied")
    assert call(make_client(scope)).status_code == 200


def test_the_loyalty_scope_cannot_mint_points(make_client, ada):
    checkout = make_client("loyalty")
    body = {"points": 2_147_483_647, "reason": "mint", "idempotency_key": "mint-1"}
    error = assert_error(checkout.post(ADJUST.format(ada), body, format="json"), 403, "permission_denied")
    assert "loyalty_adjust" in error["message"]
    assert balance("ada") == 650


# --- The adjustment cap and the audit of large grants -----------------------------------------------


@pytest.mark.parametrize("points", [10_001, -10_001, 2_147_483_647, "10001"])
def test_one_adjustment_is_capped_by_the_setting(api, ada, points):
    body = {"points": points, "reason": "too much", "idempotency_key": f"cap-{points}"}
    error = assert_error(api.post(ADJUST.format(ada), body, format="json"), 400, "invalid", field="points")
    assert "10000" in error["fields"]["points"][0]
    assert balance("ada") == 650
    assert not AuditLog.objects.filter(action__startswith="points.").exists()


def test_the_cap_follows_the_setting(api, ada, settings):
    settings.LOYALTY_ADJUST_MAX_POINTS = 100
    over = {"points": 101, "reason": "goodwill", "idempotency_key": "c-1"}
    assert_error(api.post(ADJUST.format(ada), over, format="json"), 400, field="points")
    at_cap = {"points": 100, "reason": "goodwill", "idempotency_key": "c-2"}
    assert api.post(ADJUST.format(ada), at_cap, format="json").json()["balance"] == 750


def test_a_large_grant_gets_its_own_audit_entry_once(api, ada, settings):
    settings.LOYALTY_ADJUST_AUDIT_POINTS = 1_000
    small = {"points": 999, "reason": "goodwill", "idempotency_key": "g-1"}
    large = {"points": 1_000, "reason": "goodwill", "idempotency_key": "g-2"}
    assert api.post(ADJUST.format(ada), small, format="json").status_code == 200
    assert not AuditLog.objects.filter(action="points.large_grant").exists()
    assert api.post(ADJUST.format(ada), large, format="json").status_code == 200
    assert api.post(ADJUST.format(ada), large, format="json").status_code == 200  # a replay: no second entry
    (entry,) = AuditLog.objects.filter(action="points.large_grant")
    assert entry.target == "customer:ada" and entry.actor.startswith("api-key:")
    assert entry.details["points"] == 1_000 and entry.details["threshold"] == 1_000
    assert balance("ada") == 650 + 999 + 1_000
