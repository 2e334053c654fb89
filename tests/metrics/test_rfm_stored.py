"""RFM counts and pages served from the nightly scores (metrics/rfm_stored.py) against the live
computation as of the scores' moment, over generated histories, with segment filters and offsets.

Each generated example runs inside a savepoint that is rolled back.
"""

import datetime as dt
import importlib
import itertools
from decimal import Decimal

import pytest
from django.conf import settings
from django.db import connection, transaction
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from customers.models import Customer, Purchase
from customers.services import customer_stats_refresh
from metrics import rfm
from metrics.churn_risk import customer_scores_refresh
from metrics.models import CustomerScore, RfmPagePosition, RfmSegmentCount
from metrics.periods import local_midnight
from metrics.rfm import SEGMENTS
from metrics.rfm_stored import stored_counts, stored_rfm
from metrics.selectors import stored_segment_sizes
from metrics.serializers import RfmRowSerializer
from tests.metrics.conftest import buy, noon

pytestmark = pytest.mark.django_db

BASE = dt.date(2026, 1, 1)
AS_OF = local_midnight(dt.date(2026, 6, 1))
# Mixed case, digits and punctuation: the pages follow the database's collation, as the live page does.
NAMES = ["amy", "Bob", "carl", "d-1", "d_2", "Eve", "zed", "Z9", "mo", "ñu", "10", "9"]
PROPERTY_SETTINGS = hypothesis_settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True, database=None
)
_orders = itertools.count(1)

# A purchase: customer, day offset from BASE, total in cents, completed or not.
purchase = st.tuples(
    st.sampled_from(NAMES),
    st.integers(0, 200),
    st.sampled_from([100, 2500, 2500, 9999, 100000]),
    st.sampled_from(["completed", "completed", "completed", "refunded"]),
)


def write(history: list[tuple[str, int, int, str]], order: list[str] = NAMES) -> None:
    """Many purchases in one INSERT, then the customers' stats (which the live page may read).
    Customers are created in ``order``: their ids need not follow their external ids."""
    drawn = {name for name, *_ in history}
    names = [name for name in order if name in drawn]
    Customer.objects.bulk_create([Customer(external_id=name) for name in names], ignore_conflicts=True)
    ids = dict(Customer.objects.filter(external_id__in=names).values_list("external_id", "pk"))
    Purchase.objects.bulk_create(
        [
            Purchase(
                external_id=f"stored-{next(_orders):08d}",
                customer_id=ids[name],
                placed_at=noon(BASE + dt.timedelta(days=day)),
                total=Decimal(cents) / 100,
                currency=settings.STORE_CURRENCY,
                status=status,
                content_digest="test",
            )
            for name, day, cents, status in history
        ]
    )
    customer_stats_refresh(customer_ids=ids.values())


def assert_store_equals_live(*, offsets: list[int], limit: int) -> None:
    """Counts and pages (all, and each segment) from the store = the live computation as of the scores."""
    stored = stored_rfm(offset=0, limit=1)
    assert stored is not None
    as_of = stored.as_of
    assert stored.counts == rfm.segment_counts(as_of=as_of)
    assert sum(stored.counts.values()) == CustomerScore.objects.count() == RfmPagePosition.objects.count()
    for segment in [None, *SEGMENTS]:
        for offset in [0, *offsets]:
            size = 100 if offset == 0 else limit  # the whole list once, then the drawn pages
            page = stored_rfm(offset=offset, limit=size, segment=segment)
            live = rfm.scored_page(as_of=as_of, offset=offset, limit=size, segment=segment)
            assert page is not None and page.as_of == as_of
            assert page.rows == live, (segment, offset)


@PROPERTY_SETTINGS
@given(
    order=st.permutations(NAMES),
    first=st.lists(purchase, max_size=30),
    later=st.lists(purchase, max_size=15),
    refunds=st.lists(st.integers(0, 1000), max_size=4),
    as_of_days=st.tuples(st.integers(0, 200), st.integers(-60, 60)),
    offsets=st.lists(st.integers(0, 12), min_size=1, max_size=3),
    limit=st.integers(1, 5),
)
def test_the_stored_counts_and_pages_equal_the_live_ones_as_of_the_scores(
    order, first, later, refunds, as_of_days, offsets, limit
):
    with transaction.atomic():
        write(first, order)
        first_as_of = local_midnight(BASE + dt.timedelta(days=as_of_days[0]))
        customer_scores_refresh(as_of=first_as_of)  # purchases after it too: the live page re-reads history
        assert_store_equals_live(offsets=offsets, limit=limit)

        # Another run: new purchases, refunds, another moment (earlier too): customers come and go.
        write(later, order)
        purchases = list(Purchase.objects.order_by("pk").values_list("pk", flat=True))
        for n in refunds:
            if purchases:
                Purchase.objects.filter(pk=purchases[n % len(purchases)]).update(status="refunded")
        customer_stats_refresh(customer_ids=Customer.objects.values_list("pk", flat=True))
        customer_scores_refresh(as_of=first_as_of + dt.timedelta(days=as_of_days[1], hours=7))
        assert_store_equals_live(offsets=offsets, limit=limit)
        transaction.set_rollback(True)


def ladder(count: int = 10) -> None:
    """Customer n bought n times, for 10 * n each, last on day n of May (as tests/metrics/test_rfm.py);
    the best first, so the customers' ids run against their external ids."""
    for n in range(count, 0, -1):
        for k in range(n):
            buy(f"cust-{n:02d}", noon(dt.date(2026, 5, n)) - dt.timedelta(days=30 * k), f"{10 * n}.00")


def test_before_the_first_refresh_nothing_is_stored_and_the_api_computes_live(api):
    # "Before the first refresh" is this test's premise, so it is made sure of: once in a CI run a
    # browser test's refresh left its counts behind, committed after that test's database flush.
    RfmSegmentCount.objects.all().delete()
    ladder(4)
    assert stored_rfm(offset=0, limit=10) is None
    assert stored_segment_sizes().computed_at is None

    body = api.get("/api/v1/metrics/rfm").json()

    assert body["customers"] == 4  # live, as of now
    assert [row["customer"] for row in body["results"]] == ["cust-01", "cust-02", "cust-03", "cust-04"]


def test_the_api_serves_the_scores_moment_and_a_later_purchase_changes_nothing(api):
    ladder()
    customer_scores_refresh(as_of=AS_OF)
    before = api.get("/api/v1/metrics/rfm", {"limit": 3, "offset": 7}).json()

    # Recorded after the refresh: one after its moment, one backdated before it.
    buy("cust-10", noon(dt.date(2026, 6, 20)), "999.00")
    buy("cust-09", noon(dt.date(2026, 5, 30)), "999.00")
    buy("newcomer", noon(dt.date(2026, 5, 31)), "5.00")
    after = api.get("/api/v1/metrics/rfm", {"limit": 3, "offset": 7}).json()

    assert after == before
    assert after["as_of"] == "2026-06-01T00:00:00Z" and after["customers"] == 10
    rows = {row["customer"]: row for row in after["results"]}
    assert list(rows) == ["cust-08", "cust-09", "cust-10"]
    # The last completed purchase before the scores' moment, not the newer one.
    assert rows["cust-10"]["last_purchase_at"] == "2026-05-10T12:00:00Z"
    assert (rows["cust-10"]["frequency"], rows["cust-10"]["monetary"]) == (10, "1000.00")
    assert rows["cust-09"]["last_purchase_at"] == "2026-05-09T12:00:00Z"
    assert rows["cust-10"]["recency_days"] == 22
    # The scores' own moment, given explicitly, is served from the store too; any other is live.
    explicit = api.get("/api/v1/metrics/rfm", {"as_of": "2026-06-01", "limit": 3, "offset": 7}).json()
    assert {**explicit, "previous": None} == {**after, "previous": None}
    live = api.get("/api/v1/metrics/rfm", {"as_of": "2026-06-01T00:00:00.000001Z", "limit": 3, "offset": 7}).json()
    assert live["customers"] == 11 and live["as_of"] == "2026-06-01T00:00:00.000001Z"
    assert {row["customer"]: row["last_purchase_at"] for row in live["results"]}["cust-09"] == "2026-05-30T12:00:00Z"


def test_the_response_keeps_its_shape_and_matches_the_live_one(api):
    ladder()
    live = api.get("/api/v1/metrics/rfm", {"as_of": "2026-06-01", "limit": 4, "offset": 2}).json()
    customer_scores_refresh(as_of=AS_OF)

    stored = api.get("/api/v1/metrics/rfm", {"limit": 4, "offset": 2}).json()

    assert set(stored) == set(live) == {"as_of", "customers", "segments", "count", "next", "previous", "results"}
    assert {key: stored[key] for key in ("as_of", "customers", "segments", "count", "results")} == {
        key: live[key] for key in ("as_of", "customers", "segments", "count", "results")
    }
    assert list(stored["segments"]) == list(SEGMENTS)
    assert stored["next"].endswith("limit=4&offset=6") and stored["previous"].endswith("limit=4")
    expected = RfmRowSerializer(
        [row.as_dict() for row in rfm.scored_page(as_of=AS_OF, offset=2, limit=4)], many=True
    ).data
    assert stored["results"] == [dict(row) for row in expected]

    champions = api.get("/api/v1/metrics/rfm", {"segment": "Champions"}).json()
    assert champions["count"] == stored["segments"]["Champions"] == 2
    assert [row["customer"] for row in champions["results"]] == ["cust-09", "cust-10"]
    beyond = api.get("/api/v1/metrics/rfm", {"segment": "Champions", "offset": 5}).json()
    assert (beyond["count"], beyond["results"]) == (2, [])


def test_a_stored_read_is_one_query(api, django_assert_num_queries, django_assert_max_num_queries):
    ladder(8)
    customer_scores_refresh(as_of=AS_OF)
    with django_assert_num_queries(1):
        assert len(stored_rfm(offset=2, limit=3, segment=None).rows) == 3
    with django_assert_num_queries(1):
        stored_rfm(offset=0, limit=50, segment="Lost", as_of=AS_OF)
    with django_assert_num_queries(1):
        assert stored_rfm(offset=0, limit=50, as_of=AS_OF + dt.timedelta(days=1)) is None
    with django_assert_num_queries(1):
        stored_segment_sizes()
    # Plus the key lookup and its last-used update.
    with django_assert_max_num_queries(1 + 3):
        assert api.get("/api/v1/metrics/rfm", {"segment": "Champions", "offset": 1}).status_code == 200


def test_counts_sum_to_the_scored_customers_and_the_dashboard_reads_them():
    ladder(7)
    Customer.objects.create(external_id="never-bought")
    result = customer_scores_refresh(as_of=AS_OF)

    sizes = stored_segment_sizes()
    assert sizes.computed_at == AS_OF
    assert sum(sizes.counts.values()) == result.customers == CustomerScore.objects.count() == 7
    assert sizes.counts == rfm.segment_counts(as_of=AS_OF)
    assert RfmSegmentCount.objects.count() == len(SEGMENTS)  # zeros are stored too
    # The stored counts, not a count of the score rows: a score removed by hand leaves them as stored.
    CustomerScore.objects.filter(customer__external_id="cust-07").delete()
    assert stored_segment_sizes().counts == sizes.counts


def test_a_refresh_replaces_the_pages_and_drops_customers_without_purchases():
    ladder(6)
    customer_scores_refresh(as_of=AS_OF)
    Purchase.objects.filter(customer__external_id="cust-01").update(status="refunded")
    customer_stats_refresh(customer_ids=Customer.objects.values_list("pk", flat=True))

    customer_scores_refresh(as_of=AS_OF + dt.timedelta(days=1))

    assert not RfmPagePosition.objects.filter(customer__external_id="cust-01").exists()
    stored = stored_rfm(offset=0, limit=10)
    assert stored is not None and stored.as_of == AS_OF + dt.timedelta(days=1)
    assert [row.external_id for row in stored.rows] == [f"cust-{n:02d}" for n in range(2, 7)]
    assert sorted(RfmPagePosition.objects.values_list("position", flat=True)) == [1, 2, 3, 4, 5]


def test_the_migration_fills_the_store_from_scores_already_there():
    ladder(9)
    customer_scores_refresh(as_of=AS_OF)
    expected = {segment: stored_rfm(offset=0, limit=50, segment=segment) for segment in [None, *SEGMENTS]}
    RfmPagePosition.objects.all().delete()
    RfmSegmentCount.objects.all().delete()
    assert stored_counts() is None

    migration = importlib.import_module("metrics.migrations.0006_rfm_pages")
    with connection.schema_editor(atomic=False) as editor:
        migration.fill(None, editor)

    assert {segment: stored_rfm(offset=0, limit=50, segment=segment) for segment in expected} == expected
