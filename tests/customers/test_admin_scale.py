"""The customers admin at millions of rows: counts stop at a cap, lists page through an index,
searches go through indexes (the search table for customers, unique keys elsewhere), and the
has-purchased filter is the same set as before on an indexed condition."""

import datetime as dt
import re
from html import unescape

import pytest
from django.db import connection
from django.db.models import Q, QuerySet
from django.db.models.functions import Upper
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from rest_framework import generics, serializers
from rest_framework.test import APIRequestFactory

from customers import selectors
from customers.filters import CustomerFilter
from customers.models import ConsentEvent, Customer, CustomerSearch, Purchase
from customers.services import PurchaseInput, customer_erase, customer_upsert, purchase_record, purchase_refund
from retention_crm.pagination import CappedCountPagination, CappedCountPaginator, capped_count
from tests.factories import CustomerFactory, PurchaseFactory

pytestmark = pytest.mark.django_db

CAP = 3


@pytest.fixture
def small_cap(settings):
    settings.LIST_COUNT_CAP = CAP


def text_of(response) -> str:
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", response.content.decode(), flags=re.S)
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def shown(response) -> list[str]:
    return [str(row) for row in response.context["cl"].result_list]


def buy(customer: str, order: str, *, days_ago: int = 1) -> None:
    placed = timezone.now() - dt.timedelta(days=days_ago)
    purchase_record(
        data=PurchaseInput.clean({"external_id": order, "customer": customer, "placed_at": placed, "total": "10.00"})
    )


# --- Capped counts -------------------------------------------------------------------------------


def test_the_customer_list_counts_up_to_the_cap_and_says_more(admin_client, small_cap):
    url = reverse("admin:customers_customer_changelist")
    CustomerFactory.create_batch(CAP)
    assert f"{CAP} customers" in text_of(admin_client.get(url))

    CustomerFactory.create_batch(2)
    page = text_of(admin_client.get(url))
    assert f"{CAP}+ customers" in page
    assert f"{CAP + 2} customers" not in page


def test_the_default_cap_reads_ten_thousand_plus(settings):
    del settings.LIST_COUNT_CAP  # the default applies when the setting is absent
    CustomerFactory.create_batch(2)
    assert str(capped_count(Customer.objects.all())) == "2"
    assert str(capped_count(Customer.objects.all(), cap=1)) == "1+"
    assert f"{capped_count(Customer.objects.all(), cap=1_000)}" == "2"
    assert capped_count(Customer.objects.all()).cap == 10_000


def test_the_count_reads_at_most_cap_plus_one_rows_without_sorting(small_cap):
    CustomerFactory.create_batch(5)
    queryset = Customer.objects.order_by("-last_purchase_at").annotate(tier_upper=Upper("tier"))
    with CaptureQueriesContext(connection) as queries:
        count = capped_count(queryset)
    assert (int(count), count.is_capped) == (CAP + 1, True)
    (sql,) = [query["sql"] for query in queries.captured_queries]
    assert f"LIMIT {CAP + 1}" in sql
    assert "ORDER BY" not in sql


def test_the_capped_paginator_pages_up_to_the_cap(settings):
    settings.LIST_COUNT_CAP = 5
    CustomerFactory.create_batch(9)
    paginator = CappedCountPaginator(Customer.objects.order_by("id"), per_page=2)
    assert str(paginator.count) == "5+"
    assert paginator.num_pages == 3  # the first 5 rows: pages of 2, 2 and 1
    assert [len(paginator.page(number).object_list) for number in (1, 2, 3)] == [2, 2, 1]
    with pytest.raises(Exception, match="no results"):
        paginator.page(4)


def test_the_purchase_and_history_lists_cap_their_counts(admin_client, small_cap):
    customer = CustomerFactory()
    PurchaseFactory.create_batch(CAP + 1, customer=customer)
    assert f"{CAP}+ purchases" in text_of(admin_client.get(reverse("admin:customers_purchase_changelist")))
    for granted in (True, False, True, False):
        ConsentEvent.objects.create(customer=customer, channel="email", granted=granted, source="api")
    assert f"{CAP}+ consent events" in text_of(admin_client.get(reverse("admin:customers_consentevent_changelist")))


class _CustomerRow(serializers.ModelSerializer):
    class Meta:
        model = Customer
        fields = ["external_id"]


class _CappedCustomerList(generics.ListAPIView):
    authentication_classes: list = []
    permission_classes: list = []
    pagination_class = CappedCountPagination
    serializer_class = _CustomerRow

    def get_queryset(self) -> QuerySet[Customer]:
        return Customer.objects.order_by("external_id")


def test_the_api_page_caps_count_and_still_links_past_the_cap(small_cap):
    for number in range(5):
        CustomerFactory(external_id=f"c-{number}")

    def page(query: str) -> dict:
        response = _CappedCustomerList.as_view()(APIRequestFactory().get(f"/customers?{query}"))
        assert response.status_code == 200
        return response.data

    first = page("limit=2")
    assert (first["count"], first["count_capped"]) == (CAP, True)
    assert [row["external_id"] for row in first["results"]] == ["c-0", "c-1"]
    beyond = page("limit=2&offset=2")
    assert "offset=4" in beyond["next"]
    last = page("limit=2&offset=4")
    assert [row["external_id"] for row in last["results"]] == ["c-4"]
    assert last["next"] is None
    Customer.objects.filter(external_id__in=["c-3", "c-4"]).delete()
    exact = page("limit=2")
    assert (exact["count"], exact["count_capped"]) == (3, False)


# --- Purchases: order, date filter, exact search ---------------------------------------------------


def test_purchases_list_newest_first_over_every_status(admin_client):
    now = timezone.now()
    customer = CustomerFactory()
    PurchaseFactory(external_id="old", customer=customer, placed_at=now - dt.timedelta(days=9))
    PurchaseFactory(external_id="refunded", customer=customer, placed_at=now - dt.timedelta(days=2), status="refunded")
    PurchaseFactory(external_id="new", customer=customer, placed_at=now - dt.timedelta(hours=1))
    PurchaseFactory(
        external_id="cancelled", customer=customer, placed_at=now - dt.timedelta(days=5), status="cancelled"
    )
    response = admin_client.get(reverse("admin:customers_purchase_changelist"))
    assert shown(response) == ["new", "refunded", "cancelled", "old"]
    html = response.content.decode()
    assert 'class="toplinks"' not in html  # no date hierarchy
    assert "placed_at__gte" in html  # the date filter stays

    week = admin_client.get(
        reverse("admin:customers_purchase_changelist"),
        {"placed_at__gte": str(now - dt.timedelta(days=7))},
    )
    assert set(shown(week)) == {"new", "refunded", "cancelled"}


def test_a_hand_written_sort_on_an_unindexed_column_is_ignored(admin_client):
    now = timezone.now()
    customer = CustomerFactory()
    PurchaseFactory(external_id="cheap-new", customer=customer, placed_at=now, total="1.00")
    PurchaseFactory(external_id="dear-old", customer=customer, placed_at=now - dt.timedelta(days=1), total="99.00")
    url = reverse("admin:customers_purchase_changelist")
    columns = admin_client.get(url).context["cl"].list_display  # with the action checkbox first
    by_total = admin_client.get(url, {"o": f"-{columns.index('total_display')}"})
    assert shown(by_total) == ["cheap-new", "dear-old"]  # still newest first
    by_time = admin_client.get(url, {"o": f"{columns.index('placed_at')}"})
    assert shown(by_time) == ["dear-old", "cheap-new"]  # placed_at has its index: oldest first


def test_purchase_search_is_exact_on_its_id_or_the_customers(admin_client):
    ada, bob = CustomerFactory(external_id="ada"), CustomerFactory(external_id="ada-2")
    PurchaseFactory(external_id="order-1", customer=ada)
    PurchaseFactory(external_id="order-10", customer=bob)
    url = reverse("admin:customers_purchase_changelist")

    def found(term: str) -> set[str]:
        return set(shown(admin_client.get(url, {"q": term})))

    assert found("order-1") == {"order-1"}
    assert found(" order-10 ") == {"order-10"}
    assert found("ada") == {"order-1"}
    assert found("ada-2") == {"order-10"}
    assert found("order") == set()  # no prefix or substring matching
    assert found("ORDER-1") == set()  # the shop's keys are exact


# --- Customers: has purchased -----------------------------------------------------------------------


def test_has_purchased_is_the_same_set_as_orders_count(admin_client):
    buy("buyer", "o-1")
    buy("refunded", "o-2")
    purchase_refund(external_id="o-2")
    buy("mixed", "o-3")
    buy("mixed", "o-4", days_ago=3)
    purchase_refund(external_id="o-4")
    CustomerFactory(external_id="never")
    old = {
        True: set(Customer.objects.filter(orders_count__gt=0).values_list("external_id", flat=True)),
        False: set(Customer.objects.filter(orders_count=0).values_list("external_id", flat=True)),
    }
    assert old == {True: {"buyer", "mixed"}, False: {"refunded", "never"}}
    url = reverse("admin:customers_customer_changelist")
    for value, flag in (("yes", True), ("no", False)):
        assert set(shown(admin_client.get(url, {"has_purchased": value}))) == old[flag]
        api = CustomerFilter({"has_purchased": str(flag).lower()}, queryset=Customer.objects.all()).qs
        assert set(api.values_list("external_id", flat=True)) == old[flag]


# --- Customers: search -------------------------------------------------------------------------------


def old_search(query: str) -> set[str]:
    """The search as it was, on the customer's own columns: the reference."""
    query = query.strip()
    condition = (
        Q(external_id__istartswith=query)
        | Q(email__istartswith=query)
        | Q(phone__startswith=query.replace(" ", ""))
        | Q(first_name__icontains=query)
        | Q(last_name__icontains=query)
    )
    parts = query.split()
    if len(parts) == 2:
        condition |= Q(first_name__iexact=parts[0], last_name__iexact=parts[1])
    return set(Customer.objects.filter(condition).values_list("external_id", flat=True))


def new_search(query: str) -> set[str]:
    return set(selectors.customer_search(query=query).values_list("external_id", flat=True))


SEARCH_PEOPLE = [
    ("shop-77", "ann@example.com", "+15550001111", "Ann", "Lee"),
    ("shop-770", "ANNA.b@Example.com", "", "Anna", "Bell-Lee"),
    ("SHOP_7", "x%y@example.com", "+4915112345678", "Jörg", "Straße"),
    ("gdpr-1", "", "", "", ""),
    ("100%", "under_score@example.com", "+15550009999", "Mary Ann", "O'Neil"),
    ("back\\slash", "b@example.com", "", "Ünal", "İnce"),
]
SEARCH_QUERIES = [
    "shop-77",
    "SHOP-7",
    "shop_",
    "shop%",
    "ann",
    "ANN@",
    "anna.B",
    "+1555000",
    "+1 555 000",
    "lee",
    "Ann Lee",
    "mary ann",
    "n L",
    "jörg",
    "STRASSE",
    "straße",
    "100%",
    "%",
    "_",
    "\\",
    "back\\",
    "x%y",
    "o'neil",
    "ünal",
    "İNCE",
    "Ünal İnce",
    "nobody",
]


def test_search_finds_exactly_what_the_old_search_found():
    for external_id, email, phone, first, last in SEARCH_PEOPLE:
        CustomerFactory(external_id=external_id, email=email, phone=phone, first_name=first, last_name=last)
    assert new_search("Ann Lee") == {"shop-77"}
    assert new_search("ann") == {"shop-77", "shop-770", "100%"}
    assert new_search("100%") == {"100%"}  # wildcards in the query are literal
    assert new_search("nobody") == set()
    for query in SEARCH_QUERIES:
        assert new_search(query) == old_search(query), query


def test_the_admin_search_box_uses_the_search_table(admin_client):
    CustomerFactory(external_id="shop-ada", email="ada@example.com", first_name="Ada", last_name="Lovelace")
    CustomerFactory(external_id="shop-bob", email="bob@example.com", first_name="Bob", last_name="Ray")
    url = reverse("admin:customers_customer_changelist")
    for term, expected in (("lovelace", ["shop-ada"]), ("bob@ex", ["shop-bob"]), ("shop-", None), ("zed", [])):
        found = shown(admin_client.get(url, {"q": term}))
        assert sorted(found) == (expected if expected is not None else ["shop-ada", "shop-bob"]), term


def test_the_email_filter_matches_in_any_case():
    CustomerFactory(external_id="b", email="b@example.com")
    CustomerFactory(external_id="bb", email="bb@example.com")
    found = CustomerFilter({"email": "B@EXAMPLE.COM"}, queryset=Customer.objects.all()).qs
    assert list(found.values_list("external_id", flat=True)) == ["b"]


def search_row(customer: Customer) -> tuple:
    row = CustomerSearch.objects.get(customer=customer)
    return (row.external_id_upper, row.email_upper, row.phone, row.first_name_upper, row.last_name_upper)


def row_version(customer: Customer) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT ctid::text FROM customers_customersearch WHERE customer_id = %s", [customer.pk])
        return cursor.fetchone()[0]


def test_every_write_path_keeps_the_search_table_current():
    created = CustomerFactory(external_id="f-1", email="Fay@Example.com", phone="", first_name="Fay", last_name="Wu")
    assert search_row(created) == ("F-1", "FAY@EXAMPLE.COM", "", "FAY", "WU")
    Customer.objects.bulk_create([Customer(external_id="bulk-1"), Customer(external_id="f-1")], ignore_conflicts=True)
    assert search_row(Customer.objects.get(external_id="bulk-1")) == ("BULK-1", "", "", "", "")

    customer, _ = customer_upsert(external_id="f-1", data={"last_name": "Wong", "phone": "+4915112345678"})
    assert search_row(customer) == ("F-1", "FAY@EXAMPLE.COM", "+4915112345678", "FAY", "WONG")
    assert new_search("wong") == {"f-1"} and new_search("wu") == set()

    buy("new-buyer", "o-9")  # a purchase naming an unknown customer creates them
    assert new_search("new-buy") == {"new-buyer"}


def test_a_purchase_does_not_write_the_search_row():
    customer, _ = customer_upsert(external_id="p-1", data={"first_name": "Pia"})
    before = row_version(customer)
    buy("p-1", "o-1")
    buy("p-1", "o-2")
    purchase_refund(external_id="o-1")
    customer.refresh_from_db()
    assert customer.orders_count == 1  # the stats did change
    assert row_version(customer) == before


def test_erasure_blanks_the_search_row():
    customer, _ = customer_upsert(
        external_id="e-1",
        data={"email": "eve@example.com", "phone": "+15550001111", "first_name": "Eve", "last_name": "Adams"},
    )
    customer_erase(external_id="e-1", actor="test")
    assert search_row(customer) == ("E-1", "", "", "", "")
    for personal in ("eve@", "+1555", "eve", "adams", "Eve Adams"):
        assert new_search(personal) == set(), personal
    assert new_search("e-1") == {"e-1"}  # the shop's key stays, as on the customer


# --- Plans on tables with enough rows ---------------------------------------------------------------

_CUSTOMERS_SQL = """
    INSERT INTO customers_customer (external_id, email, phone, first_name, last_name, timezone, tags,
        attributes, created_at, updated_at, orders_count, total_spent, points_balance, tier)
    SELECT 'bulk-' || n, 'person' || n || '@example.com', '+4915' || lpad(n::text, 9, '0'),
        'First' || n, 'Last' || n, 'UTC', '[]', '{}', now(), now(), 0, 0, 0, 'bronze'
    FROM generate_series(1, %s) AS n
"""
_PURCHASES_SQL = """
    INSERT INTO customers_purchase (external_id, customer_id, placed_at, total, currency, status,
        cart_external_id, points_redeemed, content_digest, created_at)
    SELECT 'order-' || n, (SELECT min(id) FROM customers_customer) + n %% 1000,
        now() - n * interval '1 minute', 10, 'USD',
        CASE WHEN n %% 20 = 0 THEN 'refunded' ELSE 'completed' END, '', 0, 'x', now()
    FROM generate_series(1, %s) AS n
"""


SEARCH_INDEXES = (
    "customer_search_external_idx",
    "customer_search_email_idx",
    "customer_search_phone_idx",
    "customer_search_name_idx",
)


def fill(sql: str, rows: int, *tables: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, [rows])
        for table in tables:
            cursor.execute(f"ANALYZE {table}")


def test_customer_search_reads_the_search_indexes():
    # Enough rows that a scan of the search table costs the planner more than its indexes do.
    fill(_CUSTOMERS_SQL, 60_000, "customers_customer", "customers_customersearch")
    for query in ("bulk-1234", "person4321@", "+491500001234", "ast4321", "First77 Last77"):
        plan = selectors.customer_search(query=query).explain()
        assert "Seq Scan on customers_customersearch" not in plan, (query, plan)
        for index in SEARCH_INDEXES:
            assert index in plan, (query, index, plan)
    assert new_search("bulk-1234") == {f"bulk-1234{suffix}" for suffix in ("", *map(str, range(10)))}
    assert new_search("ast4321") == {f"bulk-4321{suffix}" for suffix in ("", *map(str, range(10)))}
    assert new_search("first77 LAST77") == {"bulk-77"}


def test_the_purchase_page_reads_the_placed_index_backwards():
    fill(_CUSTOMERS_SQL, 1_000, "customers_customer")
    fill(_PURCHASES_SQL, 30_000, "customers_purchase")
    page = Purchase.objects.select_related("customer").order_by("-placed_at", "-id")[:50]
    plan = page.explain()
    assert "Index Scan Backward using purchase_placed_idx" in plan, plan
    assert "Sort" not in plan, plan
    refunded = Purchase.objects.filter(status="refunded").order_by("-placed_at", "-id")[:50].explain()
    assert "purchase_placed_idx" in refunded, refunded
