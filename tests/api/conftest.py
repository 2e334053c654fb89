import pytest
from rest_framework.test import APIClient

from retention_crm.api.keys import api_key_create

ALL_SCOPES = ["read", "write", "loyalty", "loyalty_adjust", "campaigns", "metrics"]


@pytest.fixture
def make_client(db):
    """An API client holding a fresh key with the given scopes."""

    def make(*scopes: str) -> APIClient:
        _, raw_key = api_key_create(name=f"test {'+'.join(scopes)}", scopes=list(scopes))
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
        return client

    return make


@pytest.fixture
def api(make_client) -> APIClient:
    """A client with every scope."""
    return make_client(*ALL_SCOPES)


def assert_error(response, status: int, code: str | None = None, field: str | None = None) -> dict:
    """The response is the SPEC's JSON error with this status (and code / field)."""
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "fields"}, body
    assert body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
    if field is not None:
        assert field in body["error"]["fields"], body
    return body["error"]
