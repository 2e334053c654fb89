"""API keys: hashed storage, 401 without or with a bad key, 403 without the scope, staff sessions."""

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from retention_crm.api.keys import api_key_check, api_key_revoke
from retention_crm.api.models import ApiKey
from tests.api.conftest import assert_error

pytestmark = pytest.mark.django_db

# (method, path, body, scope it needs)
ENDPOINTS = [
    ("get", "/api/v1/customers", None, "read"),
    ("get", "/api/v1/customers/c-1", None, "read"),
    ("put", "/api/v1/customers/c-1", {"email": "a@example.com"}, "write"),
    ("post", "/api/v1/customers/c-1/consents", {"channel": "email", "granted": True}, "write"),
    ("post", "/api/v1/customers/c-1/erase", None, "write"),
    (
        "post",
        "/api/v1/purchases",
        {"external_id": "o-1", "customer": "c-1", "placed_at": "2026-01-01T10:00:00Z", "total": "1.00"},
        "write",
    ),
    ("post", "/api/v1/purchases/bulk", {"purchases": []}, "write"),
    ("post", "/api/v1/purchases/o-1/refund", None, "write"),
    ("put", "/api/v1/carts/cart-1", {"customer": "c-1", "items": []}, "write"),
    ("post", "/api/v1/nps", {"customer": "c-1", "score": 9}, "write"),
]


def call(client: APIClient, method: str, path: str, body):
    return getattr(client, method)(path, body, format="json") if body is not None else getattr(client, method)(path)


@pytest.mark.parametrize(("method", "path", "body", "scope"), ENDPOINTS)
def test_no_key_is_401(method, path, body, scope):
    response = call(APIClient(), method, path, body)
    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Api-Key"


@pytest.mark.parametrize(("method", "path", "body", "scope"), ENDPOINTS)
def test_wrong_key_is_401(method, path, body, scope):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Api-Key not-a-real-key")
    assert_error(call(client, method, path, body), 401, "not_authenticated")


@pytest.mark.parametrize(("method", "path", "body", "scope"), ENDPOINTS)
def test_key_without_the_scope_is_403_and_with_it_is_let_in(make_client, method, path, body, scope):
    others = [s for s in ("read", "write", "loyalty", "loyalty_adjust", "campaigns", "metrics") if s != scope]
    assert_error(call(make_client(*others), method, path, body), 403, "permission_denied")

    response = call(make_client(scope), method, path, body)
    assert response.status_code not in (401, 403), response.content


def test_revoked_key_is_401(make_client):
    client = make_client("read")
    key = ApiKey.objects.get()
    api_key_revoke(key=key)
    assert_error(client.get("/api/v1/customers"), 401)


def test_only_a_hash_and_prefix_are_stored_and_use_is_recorded(capsys):
    call_command("create_api_key", "shop backend", "--scopes", "read", "write")
    raw_key = capsys.readouterr().out.strip()
    key = ApiKey.objects.get()
    assert key.scopes == ["read", "write"]
    assert raw_key.startswith(key.prefix)
    assert raw_key not in (key.key_hash, key.prefix)
    assert key.last_used_at is None
    assert api_key_check(raw_key=raw_key) == key
    key.refresh_from_db()
    assert key.last_used_at is not None


def test_create_api_key_refuses_unknown_scopes():
    from django.core.management.base import CommandError

    with pytest.raises((CommandError, SystemExit)):
        call_command("create_api_key", "x", "--scopes", "admin")
    assert not ApiKey.objects.exists()


def test_other_authorization_schemes_are_not_keys():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer abc")
    assert_error(client.get("/api/v1/customers"), 401)


def test_staff_session_works_with_the_permission_and_non_staff_is_refused(django_user_model):
    from django.contrib.auth.models import Permission

    staff = django_user_model.objects.create_user("staff", password="pw-123456789", is_staff=True)
    bare_staff = django_user_model.objects.create_user("bare", password="pw-123456789", is_staff=True)
    shopper = django_user_model.objects.create_user("shopper", password="pw-123456789")
    view = Permission.objects.get(content_type__app_label="customers", codename="view_customer")
    staff.user_permissions.add(view)
    shopper.user_permissions.add(view)
    client = APIClient()
    client.force_login(staff)
    assert client.get("/api/v1/customers").status_code == 200
    client.force_login(bare_staff)  # is_staff alone opens nothing (SPEC §8)
    assert_error(client.get("/api/v1/customers"), 403, "permission_denied")
    client.force_login(shopper)
    assert_error(client.get("/api/v1/customers"), 403)


def test_method_not_served_is_405(api):
    assert_error(api.delete("/api/v1/carts/cart-1"), 405, "method_not_allowed")


def test_throttling_answers_429_with_the_error_shape(make_client, settings):
    from django.core.cache import cache

    from retention_crm.api.throttling import PerKeyRateThrottle

    cache.clear()
    original = PerKeyRateThrottle.THROTTLE_RATES
    PerKeyRateThrottle.THROTTLE_RATES = {"api_key": "3/min"}
    try:
        client = make_client("read")
        responses = [client.get("/api/v1/customers") for _ in range(4)]
    finally:
        PerKeyRateThrottle.THROTTLE_RATES = original
        cache.clear()
    assert [response.status_code for response in responses[:3]] == [200, 200, 200]
    assert_error(responses[3], 429, "throttled")
    assert int(responses[3]["Retry-After"]) > 0


def test_bad_keys_from_one_address_are_throttled_then_the_address_waits(make_client, settings):
    from django.core.cache import cache

    cache.clear()
    settings.API_AUTH_FAILURES_PER_MINUTE = 5
    good = make_client("read")
    guesser = APIClient()
    guesser.credentials(HTTP_AUTHORIZATION="Api-Key not-a-real-key")
    try:
        answers = [guesser.get("/api/v1/customers").status_code for _ in range(5)]
        throttled = guesser.get("/api/v1/customers")
        good_from_the_same_address = good.get("/api/v1/customers")
        elsewhere = good.get("/api/v1/customers", REMOTE_ADDR="203.0.113.9")
    finally:
        cache.clear()
    assert answers == [401] * 5
    assert_error(throttled, 429, "throttled")
    assert int(throttled["Retry-After"]) > 0
    # While the address is over its limit no key from it is looked at, a good one included.
    assert_error(good_from_the_same_address, 429, "throttled")
    assert elsewhere.status_code == 200


def test_a_forged_forwarded_for_header_does_not_dodge_the_limit(settings):
    from django.core.cache import cache

    cache.clear()
    settings.API_AUTH_FAILURES_PER_MINUTE = 3
    guesser = APIClient()
    guesser.credentials(HTTP_AUTHORIZATION="Api-Key not-a-real-key")
    try:
        answers = [
            guesser.get("/api/v1/customers", HTTP_X_FORWARDED_FOR=f"198.51.100.{n}").status_code for n in range(5)
        ]
    finally:
        cache.clear()
    assert answers == [401, 401, 401, 429, 429]


def test_create_api_key_offers_the_loyalty_adjust_scope(capsys):
    call_command("create_api_key", "support desk", "--scopes", "loyalty_adjust")
    assert ApiKey.objects.get().scopes == ["loyalty_adjust"]
