"""Staff sessions get exactly what the admin gives the same user (SPEC §8): each endpoint checks the
Django permission of its action, group by group, never just ``is_staff``."""

import pytest
from django.contrib.auth.models import Group, Permission
from rest_framework.test import APIClient, APIRequestFactory, force_authenticate
from rest_framework.views import APIView

from campaigns.api import CAMPAIGN_EXAMPLE
from campaigns.models import Campaign
from customers.models import AuditLog, Customer
from customers.services import customer_upsert
from retention_crm.api.permissions import ScopePermission
from tests.api.conftest import assert_error
from tests.loyalty_support import balance, buy

pytestmark = pytest.mark.django_db

ANALYST, MARKETER, SUPPORT = "analyst", "marketer", "support"
EVERYONE = {ANALYST, MARKETER, SUPPORT}
NOBODY: set[str] = set()  # only a superuser, or a user given the permission by hand

# (method, path, body, the groups whose members may do it)
ENDPOINTS = [
    ("get", "/api/v1/customers", None, EVERYONE),
    ("get", "/api/v1/customers/c-1", None, EVERYONE),
    ("put", "/api/v1/customers/c-1", {"first_name": "Ada"}, {SUPPORT}),
    ("post", "/api/v1/customers/c-1/consents", {"channel": "email", "granted": False}, {SUPPORT}),
    ("post", "/api/v1/customers/c-1/erase", None, {SUPPORT}),
    (
        "post",
        "/api/v1/purchases",
        {"external_id": "o-9", "customer": "c-1", "placed_at": "2026-01-01T10:00:00Z", "total": "1.00"},
        NOBODY,
    ),
    ("post", "/api/v1/purchases/bulk", {"purchases": []}, NOBODY),
    ("post", "/api/v1/purchases/o-1/refund", None, {SUPPORT}),
    ("put", "/api/v1/carts/cart-1", {"customer": "c-1", "items": []}, NOBODY),
    ("post", "/api/v1/nps", {"customer": "c-1", "score": 9}, NOBODY),
    ("get", "/api/v1/customers/c-1/loyalty", None, EVERYONE),
    (
        "post",
        "/api/v1/customers/c-1/loyalty/redeem",
        {"points": 1, "order_total": "10.00", "idempotency_key": "r-1"},
        {SUPPORT},
    ),
    ("post", "/api/v1/customers/c-1/loyalty/adjust", {"points": 5, "reason": "x", "idempotency_key": "a"}, {SUPPORT}),
    ("get", "/api/v1/campaigns", None, EVERYONE),
    ("post", "/api/v1/campaigns", {**CAMPAIGN_EXAMPLE, "name": "Another"}, {MARKETER}),
    ("get", "/api/v1/campaigns/{campaign}", None, EVERYONE),
    ("patch", "/api/v1/campaigns/{campaign}", {"status": "paused"}, {MARKETER}),
    ("post", "/api/v1/campaigns/{campaign}/run", None, {MARKETER}),
    ("get", "/api/v1/campaigns/{campaign}/report", None, EVERYONE),
    ("get", "/api/v1/metrics/retention", None, {ANALYST, MARKETER}),
    ("get", "/api/v1/metrics/summary", None, {ANALYST, MARKETER}),
    ("get", "/api/v1/metrics/cohorts", None, {ANALYST, MARKETER}),
    ("get", "/api/v1/metrics/rfm", None, {ANALYST, MARKETER}),
]


@pytest.fixture
def shop(api) -> dict[str, int]:
    """A customer with points and an order, and a campaign, made through the API with a key."""
    buy("c-1", "100.00", external_id="o-1")
    customer_upsert(external_id="c-1", data={"email": "c1@example.com", "consents": {"email": True}})
    created = api.post("/api/v1/campaigns", CAMPAIGN_EXAMPLE, format="json")
    assert created.status_code == 201, created.content
    return {"campaign": created.json()["id"]}


def staff_client(django_user_model, *groups: str, **flags) -> APIClient:
    user = django_user_model.objects.create_user("-".join(groups) or "plain", password="pw-123456789", **flags)
    user.groups.add(*Group.objects.filter(name__in=groups))
    client = APIClient()
    client.force_login(user)
    return client


def call(client: APIClient, method: str, path: str, body, ids: dict[str, int]):
    url = path.format(**ids)
    return getattr(client, method)(url, body, format="json") if body is not None else getattr(client, method)(url)


@pytest.mark.parametrize("group", [ANALYST, MARKETER, SUPPORT])
@pytest.mark.parametrize(("method", "path", "body", "allowed"), ENDPOINTS, ids=[f"{e[0]} {e[1]}" for e in ENDPOINTS])
def test_each_group_gets_what_the_admin_gives_it(django_user_model, shop, group, method, path, body, allowed):
    client = staff_client(django_user_model, group, is_staff=True)
    response = call(client, method, path, body, shop)
    if group in allowed:
        assert response.status_code not in (401, 403), response.content
    else:
        error = assert_error(response, 403, "permission_denied")
        assert "permission" in error["message"]


@pytest.mark.parametrize(("method", "path", "body", "allowed"), ENDPOINTS, ids=[f"{e[0]} {e[1]}" for e in ENDPOINTS])
def test_a_superuser_may_do_everything(django_user_model, shop, method, path, body, allowed):
    client = staff_client(django_user_model, is_staff=True, is_superuser=True)
    response = call(client, method, path, body, shop)
    assert response.status_code not in (401, 403), response.content


@pytest.mark.parametrize(("method", "path", "body", "allowed"), ENDPOINTS, ids=[f"{e[0]} {e[1]}" for e in ENDPOINTS])
def test_staff_without_a_group_gets_nothing(django_user_model, shop, method, path, body, allowed):
    client = staff_client(django_user_model, is_staff=True)
    assert_error(call(client, method, path, body, shop), 403, "permission_denied")


def test_permissions_without_staff_status_open_nothing(django_user_model, shop):
    # The admin lets no one in without is_staff; neither does the API's session.
    client = staff_client(django_user_model, SUPPORT)
    assert_error(client.get("/api/v1/customers"), 403, "permission_denied")


def test_the_read_only_analyst_cannot_adjust_erase_or_create(django_user_model, shop):
    analyst = staff_client(django_user_model, ANALYST, is_staff=True)
    before = balance("c-1")

    adjust = {"points": 5000, "reason": "free points", "idempotency_key": "k-1"}
    assert_error(analyst.post("/api/v1/customers/c-1/loyalty/adjust", adjust, format="json"), 403, "permission_denied")
    assert_error(analyst.post("/api/v1/customers/c-1/erase"), 403, "permission_denied")
    campaign = {**CAMPAIGN_EXAMPLE, "name": "Analyst's own"}
    assert_error(analyst.post("/api/v1/campaigns", campaign, format="json"), 403, "permission_denied")

    assert balance("c-1") == before
    assert Customer.objects.get(external_id="c-1").erased_at is None
    assert not Campaign.objects.filter(name="Analyst's own").exists()
    assert not AuditLog.objects.filter(action__in=["points.adjust", "customer.erase"]).exists()


def test_support_adjusts_points_as_in_the_admin(django_user_model, shop):
    support = staff_client(django_user_model, SUPPORT, is_staff=True)
    before = balance("c-1")
    body = {"points": 25, "reason": "Parcel late", "idempotency_key": "t-1"}
    response = support.post("/api/v1/customers/c-1/loyalty/adjust", body, format="json")
    assert response.status_code == 200, response.content
    assert balance("c-1") == before + 25


def test_a_marketer_cannot_touch_points_or_personal_data(django_user_model, shop):
    marketer = staff_client(django_user_model, MARKETER, is_staff=True)
    adjust = {"points": 5000, "reason": "free points", "idempotency_key": "k-2"}
    assert_error(marketer.post("/api/v1/customers/c-1/loyalty/adjust", adjust, format="json"), 403)
    assert_error(marketer.put("/api/v1/customers/c-1", {"email": "x@example.com"}, format="json"), 403)
    assert_error(marketer.post("/api/v1/customers/c-1/erase"), 403)


def test_erasing_needs_the_erase_customer_permission(django_user_model, shop):
    permission = Permission.objects.get(content_type__app_label="customers", codename="erase_customer")
    user = django_user_model.objects.create_user("eraser", password="pw-123456789", is_staff=True)
    user.user_permissions.add(permission)
    client = APIClient()
    client.force_login(user)
    response = client.post("/api/v1/customers/c-1/erase")
    assert response.status_code == 200, response.content


class Undeclared(APIView):
    required_scopes = {"GET": "read"}  # no required_permissions

    def get(self, request):  # pragma: no cover - never reached
        raise AssertionError


def test_a_view_that_declares_no_permission_refuses_every_session(django_user_model):
    superuser = django_user_model.objects.create_user("root", is_staff=True, is_superuser=True)
    request = APIRequestFactory().get("/")
    force_authenticate(request, user=superuser)
    response = Undeclared.as_view(permission_classes=[ScopePermission])(request)
    assert response.status_code == 403
