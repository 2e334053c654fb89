"""Segment flow between two dates (SPEC §5) and its endpoint (SPEC §6)."""

import datetime as dt

import pytest
from django.utils import timezone

from metrics import rfm
from metrics.periods import local_midnight
from metrics.rfm_flow import FROM_SEGMENTS, NONE, flow_cell_page, parse_flow_dates, segment_flow
from retention_crm.errors import ApplicationError
from tests.api.conftest import assert_error
from tests.metrics.conftest import buy, noon

pytestmark = pytest.mark.django_db

A = local_midnight(dt.date(2026, 3, 1))
B = local_midnight(dt.date(2026, 6, 1))


def quarter() -> None:
    """Ten customers before A (customer n bought n times, the last on day n of February, so n = 10
    is best), two of them buying again in the quarter, and three new in the quarter."""
    for n in range(1, 11):
        for k in range(n):
            buy(f"old-{n:02d}", noon(dt.date(2026, 2, n)) - dt.timedelta(days=20 * k), f"{10 * n}.00")
    buy("old-01", noon(dt.date(2026, 5, 20)), "900.00")  # the worst customer comes back big
    buy("old-05", noon(dt.date(2026, 4, 2)), "50.00")
    for name in ("new-a", "new-b", "new-c"):
        buy(name, noon(dt.date(2026, 5, 25)), "20.00")
    buy("after-b", noon(dt.date(2026, 6, 5)), "20.00")  # after B: in neither side


def test_rows_and_columns_sum_to_the_segment_counts_at_each_date():
    quarter()
    flow = segment_flow(start=A, end=B)

    at_a, at_b = rfm.segment_counts(as_of=A), rfm.segment_counts(as_of=B)
    rows = flow.row_totals()
    assert {segment: rows[segment] for segment in rfm.SEGMENTS} == at_a
    assert rows[NONE] == 3  # the three new customers; "after-b" is in neither
    assert flow.column_totals() == at_b
    assert flow.customers == sum(at_b.values()) == 13
    assert set(flow.flow) == set(FROM_SEGMENTS)
    assert all(set(cells) == set(rfm.SEGMENTS) for cells in flow.flow.values())


def test_each_customer_moves_from_their_segment_at_a_to_their_segment_at_b():
    quarter()
    before = {row.external_id: row.segment for row in rfm.scored_page(as_of=A, offset=0, limit=100)}
    after = {row.external_id: row.segment for row in rfm.scored_page(as_of=B, offset=0, limit=100)}
    expected: dict[tuple[str, str], int] = {}
    for name, segment in after.items():
        key = (before.get(name, NONE), segment)
        expected[key] = expected.get(key, 0) + 1

    flow = segment_flow(start=A, end=B).flow

    found = {(source, target): n for source, cells in flow.items() for target, n in cells.items() if n}
    assert found == expected
    assert before["old-01"] == "Lost" and after["old-01"] != "Lost"  # the comeback moved


def test_a_cell_lists_exactly_its_customers():
    quarter()
    flow = segment_flow(start=A, end=B).flow
    new_into = {target: n for target, n in flow[NONE].items() if n}

    listed = {
        target: [
            c.external_id
            for c in flow_cell_page(start=A, end=B, from_segment=NONE, to_segment=target, offset=0, limit=50)
        ]
        for target in new_into
    }

    assert {target: len(names) for target, names in listed.items()} == new_into
    assert sorted(name for names in listed.values() for name in names) == ["new-a", "new-b", "new-c"]
    with pytest.raises(ApplicationError):
        flow_cell_page(start=A, end=B, from_segment="Whales", to_segment="Lost", offset=0, limit=5)


def test_the_flow_is_one_statement_after_the_source_checks(django_assert_max_num_queries):
    quarter()
    with django_assert_max_num_queries(3):  # the two "anything after as_of?" checks, then the flow
        segment_flow(start=A, end=B)


def test_dates_are_checked():
    with pytest.raises(ApplicationError) as same:
        parse_flow_dates("2026-03-01", "2026-03-01")
    assert "from" in same.value.fields
    with pytest.raises(ApplicationError) as future:
        parse_flow_dates(None, (timezone.now() + dt.timedelta(days=2)).date().isoformat())
    assert "to" in future.value.fields
    with pytest.raises(ApplicationError):
        parse_flow_dates("last spring", None)
    default = parse_flow_dates(None, None)
    assert dt.timedelta(days=89) < default.end - default.start < dt.timedelta(days=91)


def test_the_endpoint_answers_the_spec_shape(api):
    quarter()

    response = api.get("/api/v1/metrics/rfm/flow", {"from": "2026-03-01", "to": "2026-06-01"})

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"from", "to", "flow"}
    assert (body["from"], body["to"]) == ("2026-03-01T00:00:00Z", "2026-06-01T00:00:00Z")
    assert body["flow"] == segment_flow(start=A, end=B).flow
    assert api.get("/api/v1/metrics/rfm/flow/", {"from": "2026-03-01", "to": "2026-06-01"}).json() == body


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-06-01", "to": "2026-03-01"}, "from"),
        ({"from": "2026-06-01", "to": "2026-06-01"}, "from"),
        ({"from": "2026-03-01", "to": "2199-01-01"}, "to"),
        ({"from": "yesterday", "to": "2026-06-01"}, "from"),
        ({"from": "2026-03-01", "to": "2026-13-01"}, "to"),
        ({"from": "0001-01-01"}, "from"),
    ],
)
def test_the_endpoint_refuses_bad_dates(api, params, field):
    assert_error(api.get("/api/v1/metrics/rfm/flow", params), 400, "invalid", field)


def test_the_endpoint_needs_the_metrics_scope(make_client, client):
    assert_error(make_client("read").get("/api/v1/metrics/rfm/flow"), 403, "permission_denied")
    assert client.get("/api/v1/metrics/rfm/flow").status_code == 401
