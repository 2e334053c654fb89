"""Schemathesis against the schema the app serves: generated requests, valid and invalid, to
every endpoint. Whatever arrives, the answer is never a 5xx and always the documented JSON."""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from retention_crm.api.keys import api_key_create
from retention_crm.wsgi import application

EXAMPLES_PER_OPERATION = 150
MIN_CASES = 1000

schema = schemathesis.openapi.from_wsgi("/api/schema/", application)
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def keep_the_test_connection_open():
    """The WSGI app closes "old" connections after each request, as in production; inside a test
    transaction that would close the test's own connection. Django's test client does the same."""
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def api_key_header(db) -> dict[str, str]:
    _, raw_key = api_key_create(name="fuzz", scopes=["read", "write", "loyalty", "campaigns", "metrics"])
    return {"Authorization": f"Api-Key {raw_key}"}


def test_no_generated_request_makes_the_api_fail(api_key_header):
    """Every operation, up to EXAMPLES_PER_OPERATION generated cases each, valid and invalid."""
    cases_run: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def call(case) -> None:
            response = case.call_and_validate(
                headers=api_key_header,
                checks=[not_a_server_error, content_type_conformance, response_schema_conformance],
            )
            cases_run.append(f"{case.method} {case.path} {response.status_code}")

        call()
    assert len(cases_run) >= MIN_CASES, len(cases_run)
