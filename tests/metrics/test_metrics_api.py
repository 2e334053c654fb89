"""The metrics endpoints (SPEC §6): shapes, defaults, scope, and bad parameters as 400s."""

import datetime as dt

import pytest
from django.utils import timezone

from metrics.rfm import SEGMENTS
from metrics.rollup_fold import rollups_fold
from tests.api.conftest import assert_error
from tests.metrics.conftest import buy, noon
from tests.metrics.test_retention import textbook_shop

pytestmark = pytest.mark.django_db

RETENTION_FIELDS = {
    "start",
    "end",
    "window_days",
    "customers_start",
    "customers_end",
    "new_customers",
    "retained",
    "reactivated",
    "lost",
    "crr",
    "churn_rate",
}


def test_retention_answers_the_spec_fields(api):
    textbook_shop(at_start=30, new=8, lost=2)

    response = api.get("/api/v1/metrics/retention", {"start": "2026-03-01", "end": "2026-04-01"})

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == RETENTION_FIELDS
    assert (body["customers_start"], body["customers_end"], body["new_customers"], body["lost"]) == (30, 36, 8, 2)
    assert body["crr"] == pytest.approx(0.9333, abs=1e-4)
    assert body["churn_rate"] == pytest.approx(2 / 30)
    assert body["window_days"] == 90
    assert body["start"] == "2026-03-01T00:00:00Z"  # dates are midnight, store time (UTC here)


def test_retention_accepts_iso_datetimes_and_a_trailing_slash(api):
    response = api.get(
        "/api/v1/metrics/retention/",
        {"start": "2026-03-01T00:00:00+02:00", "end": "2026-04-01T12:00:00Z", "window_days": "30"},
    )
    assert response.status_code == 200, response.content
    assert response.json()["start"] == "2026-02-28T22:00:00Z"
    assert response.json()["window_days"] == 30
    assert response.json()["crr"] is None  # S = 0


def test_retention_defaults_to_the_last_30_days(api):
    buy("recent", noon(timezone.localdate() - dt.timedelta(days=3)))
    body = api.get("/api/v1/metrics/retention").json()
    start, end = dt.datetime.fromisoformat(body["start"]), dt.datetime.fromisoformat(body["end"])
    assert end - start == dt.timedelta(days=30)
    assert body["new_customers"] == 1


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start": "yesterday"}, "start"),
        ({"start": "2026-02-30"}, "start"),
        ({"end": "2026-13-01"}, "end"),
        ({"start": "2026-04-01", "end": "2026-03-01"}, "end"),
        ({"start": "2026-03-01", "end": "2026-03-01"}, "end"),
        ({"start": "1000-01-01", "end": "2026-03-01"}, "start"),
        ({"start": "2000-01-01", "end": "2026-03-01"}, "end"),  # longer than ten years
        ({"window_days": "0"}, "window_days"),
        ({"window_days": "3651"}, "window_days"),
        ({"window_days": "ninety"}, "window_days"),
        ({"window_days": "99999999999999999999999"}, "window_days"),
        ({"start": "2026-03-01T00:00:00+15:00"}, "start"),
        ({"start": "2026-03-01\x00"}, "start"),
    ],
)
def test_retention_refuses_bad_parameters(api, params, field):
    assert_error(api.get("/api/v1/metrics/retention", params), 400, "invalid", field)


def test_retention_restricted_to_a_campaigns_treated_and_control_groups(api):
    from campaigns.models import Message
    from campaigns.services import campaign_create
    from customers.models import Customer

    campaign = campaign_create(
        data={"name": "Come back", "trigger": "reactivation", "channel": "email", "subject": "Hi", "body": "Hi"}
    )
    for name, days in {"a": [10], "b": [10], "c": [10], "d": [10]}.items():
        for day in days:
            buy(name, noon(dt.date(2026, 2, day)))
    buy("a", noon(dt.date(2026, 3, 15)))  # treated, came back
    buy("c", noon(dt.date(2026, 3, 20)))  # control, came back
    sent_at = timezone.now()
    for name, status in (("a", "sent"), ("b", "sent"), ("c", "held_out")):
        Message.objects.create(
            campaign=campaign,
            customer=Customer.objects.get(external_id=name),
            channel="email",
            dedupe_key=name,
            status=status,
            scheduled_at=sent_at,
            send_at=sent_at,
            sent_at=sent_at if status == "sent" else None,
        )

    def table(**group) -> dict:
        params = {"start": "2026-03-01", "end": "2026-04-01", "window_days": "30", **group}
        response = api.get("/api/v1/metrics/retention", params)
        assert response.status_code == 200, response.content
        return response.json()

    treated = table(campaign=str(campaign.pk), group="treated")
    control = table(campaign=str(campaign.pk), group="control")
    everyone = table()
    assert (treated["customers_start"], treated["retained"], treated["lost"], treated["crr"]) == (2, 1, 1, 0.5)
    assert (control["customers_start"], control["retained"], control["crr"]) == (1, 1, 1.0)
    assert (everyone["customers_start"], everyone["retained"], everyone["lost"]) == (4, 2, 2)
    assert_error(api.get("/api/v1/metrics/retention", {"campaign": "999999", "group": "control"}), 404)
    assert_error(api.get("/api/v1/metrics/retention", {"group": "placebo"}), 400, "invalid", "group")


def test_summary(api):
    buy("ann", noon(dt.date(2026, 3, 2)), "30.00")
    buy("ann", noon(dt.date(2026, 3, 20)), "70.00")

    response = api.get("/api/v1/metrics/summary", {"start": "2026-03-01", "end": "2026-04-01"})

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["repeat_purchase_rate"] == 1.0
    assert body["purchase_frequency"] == 2.0
    assert (body["aov"], body["arpu"], body["clv"], body["revenue"]) == ("50.00", "100.00", "100.00", "100.00")
    assert body["nps"] is None and body["nps_answers"] == 0
    assert_error(api.get("/api/v1/metrics/summary", {"end": "soon"}), 400, "invalid", "end")


def test_cohorts(api):
    buy("jan", noon(dt.date(2026, 1, 10)))
    buy("jan", noon(dt.date(2026, 2, 10)))
    buy("feb", noon(dt.date(2026, 2, 11)))

    response = api.get("/api/v1/metrics/cohorts", {"start": "2026-01-01", "end": "2026-03-01"})

    assert response.status_code == 200, response.content
    assert response.json()["cohorts"] == [
        {"cohort": "2026-01", "size": 1, "retention": [1.0, 1.0], "active": [1, 1]},
        {"cohort": "2026-02", "size": 1, "retention": [1.0], "active": [1]},
    ]
    assert_error(api.get("/api/v1/metrics/cohorts", {"start": "2000-01-01", "end": "2026-03-01"}), 400, "invalid")


def test_cohorts_default_to_twelve_months(api):
    body = api.get("/api/v1/metrics/cohorts", {"end": "2026-03-15"}).json()
    assert body["start"] == "2025-04-01T00:00:00Z"
    assert body["cohorts"] == []


def test_rfm_counts_and_pages(api):
    for n in range(1, 8):
        buy(f"cust-{n}", noon(dt.date(2026, 5, n)), f"{10 * n}.00")

    response = api.get("/api/v1/metrics/rfm", {"as_of": "2026-06-01", "limit": 3, "offset": 2})

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["customers"] == body["count"] == 7
    assert set(body["segments"]) == set(SEGMENTS)
    assert [row["customer"] for row in body["results"]] == ["cust-3", "cust-4", "cust-5"]
    assert body["next"] and body["previous"]
    row = body["results"][0]
    assert set(row) == {
        "customer",
        "last_purchase_at",
        "recency_days",
        "frequency",
        "monetary",
        "r",
        "f",
        "m",
        "score",
        "segment",
    }
    assert row["monetary"] == "30.00"

    only = api.get("/api/v1/metrics/rfm", {"as_of": "2026-06-01", "segment": "Champions"}).json()
    assert only["count"] == body["segments"]["Champions"] == len(only["results"])
    assert_error(api.get("/api/v1/metrics/rfm", {"segment": "Whales"}), 400, "invalid", "segment")
    assert_error(api.get("/api/v1/metrics/rfm", {"as_of": "never"}), 400, "invalid", "as_of")


def test_metrics_need_the_metrics_scope(make_client):
    reader = make_client("read")
    for path in ("retention", "summary", "cohorts", "rfm"):
        assert_error(reader.get(f"/api/v1/metrics/{path}"), 403, "permission_denied")


def test_metrics_need_a_key(client):
    assert client.get("/api/v1/metrics/retention").status_code == 401


def test_each_endpoint_takes_a_fixed_number_of_queries(api, django_assert_max_num_queries):
    textbook_shop(at_start=5, new=2, lost=1)
    rollups_fold()  # the usual read: the writes' changes already folded by the task after commit
    # RFM before the first nightly refresh: the stored-scores check, whether the history is small
    # enough to score during the request (2), the counts and the page.
    budgets = {"retention": 2, "summary": 5, "cohorts": 2, "rfm": 5}
    for path, budget in budgets.items():
        # Plus the key lookup and its last-used update.
        with django_assert_max_num_queries(budget + 3):
            assert api.get(f"/api/v1/metrics/{path}", {"end": "2026-04-01"} if path != "rfm" else {}).status_code == 200
