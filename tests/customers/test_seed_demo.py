"""seed_demo (the demo data set) and bench/generate.py (the benchmark loader), on PostgreSQL."""

import datetime as dt
import io
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import Count, Exists, F, Max, Min, OuterRef, Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from bench.generate import LOADED_TABLES, LoadRefused, bench_load
from customers.models import (
    Cart,
    CartItem,
    CartStatus,
    Consent,
    ConsentEvent,
    Customer,
    NpsResponse,
    PointsEntry,
    Product,
    Purchase,
    PurchaseItem,
    PurchaseStatus,
)
from customers.services import LineItemInput, PurchaseInput
from customers.services.loyalty import loyalty_program_ensure, loyalty_program_get
from customers.services.loyalty.daily import tiers_recompute_all
from tests.factories import CustomerFactory

SMALL = 200


def seed(**options: Any) -> str:
    out = io.StringIO()
    call_command("seed_demo", stdout=out, **{"customers": SMALL, **options})
    return out.getvalue()


def stats_mismatches(customers: Any) -> list[str]:
    """Customers whose stored stats differ from a fresh aggregate over their completed purchases."""
    completed = Q(purchases__status=PurchaseStatus.COMPLETED)
    fresh = customers.annotate(
        n=Count("purchases", filter=completed),
        spent=Coalesce(Sum("purchases__total", filter=completed), Decimal("0.00")),
        first=Min("purchases__placed_at", filter=completed),
        last=Max("purchases__placed_at", filter=completed),
    )
    return [
        c.external_id
        for c in fresh
        if (c.orders_count, c.total_spent, c.first_purchase_at, c.last_purchase_at) != (c.n, c.spent, c.first, c.last)
    ]


def open_carts_with_a_later_purchase() -> Any:
    later = Purchase.objects.filter(
        customer=OuterRef("customer"), status=PurchaseStatus.COMPLETED, placed_at__gt=OuterRef("updated_at")
    )
    return Cart.objects.filter(Exists(later), status=CartStatus.OPEN)


def snapshot() -> dict[str, Any]:
    """Everything a seed decides, with times relative to each customer's sign-up (runs differ in `now`)."""
    return {
        "customers": list(
            Customer.objects.order_by("external_id").values_list(
                "external_id", "email", "phone", "birth_date", "timezone", "orders_count", "total_spent", "tags"
            )
        ),
        "purchases": [
            (
                p.external_id,
                p.customer.external_id,
                p.total,
                p.status,
                p.cart_external_id,
                p.placed_at - p.customer.created_at,
            )
            for p in Purchase.objects.select_related("customer").order_by("external_id")
        ],
        "items": list(PurchaseItem.objects.order_by("purchase__external_id", "sku").values_list("sku", "quantity")),
        "carts": list(
            Cart.objects.order_by("external_id").values_list("external_id", "customer__external_id", "status")
        ),
        "consents": list(
            Consent.objects.order_by("customer__external_id", "channel").values_list("channel", "granted")
        ),
        "nps": list(
            NpsResponse.objects.order_by("customer__external_id").values_list("customer__external_id", "score")
        ),
        "revenue": Purchase.objects.aggregate(total=Sum("total"))["total"],
    }


def delete_everything() -> None:
    """Empty what a seed fills. TRUNCATE, since the points ledger refuses deletes by design."""
    tables = ", ".join(model._meta.db_table for model in (Customer, Product))
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # run the deferred foreign-key checks first
        cursor.execute(f"TRUNCATE {tables} CASCADE")


@pytest.mark.django_db
class TestSeedDemo:
    def test_creates_customers_purchases_carts_consents_nps_and_a_catalogue(self):
        output = seed()

        assert Customer.objects.count() == SMALL
        assert Purchase.objects.count() > SMALL
        assert PurchaseItem.objects.count() >= Purchase.objects.count()
        assert Cart.objects.filter(status=CartStatus.OPEN).exists()
        assert Cart.objects.filter(status=CartStatus.CONVERTED).exists()
        assert CartItem.objects.count() >= Cart.objects.count()
        assert NpsResponse.objects.exists()
        assert Product.objects.count() == 40
        assert Product.objects.values("category").distinct().count() == 8
        assert Product.objects.filter(replenishment_days__isnull=False).exists()
        assert f"{SMALL} customers" in output
        assert f"{Purchase.objects.count()} purchases" in output
        # Loyalty as its rules leave it: points for the purchases still inside their expiry, exact ledgers.
        earned = PointsEntry.objects.filter(kind="earn")
        assert earned.exists()
        assert f"{earned.count()} points earnings" in output
        expired_before = timezone.now() - dt.timedelta(days=loyalty_program_get().expiry_days)
        assert not earned.filter(purchase__placed_at__lte=expired_before).exists()
        assert tiers_recompute_all() == 0
        call_command("loyalty_verify", stdout=io.StringIO())

    def test_has_the_rhythms_the_demo_needs(self):
        seed(customers=600)
        now = timezone.now()
        customers = Customer.objects.all()

        assert customers.filter(orders_count=0, created_at__gte=now - dt.timedelta(days=14)).exists()
        assert customers.filter(orders_count=1).exists()
        assert customers.filter(orders_count__gte=10, last_purchase_at__gte=now - dt.timedelta(days=60)).exists()
        assert customers.filter(orders_count__gte=2, last_purchase_at__lt=now - dt.timedelta(days=180)).exists()
        assert Purchase.objects.filter(status=PurchaseStatus.REFUNDED).exists()
        assert Purchase.objects.filter(status=PurchaseStatus.CANCELLED).exists()
        open_carts = Cart.objects.filter(status=CartStatus.OPEN)
        assert open_carts.filter(updated_at__lte=now - dt.timedelta(hours=1)).exists()  # abandoned by now
        assert customers.filter(birth_date__month=2, birth_date__day=29).exists()
        assert customers.values("birth_date__month").distinct().count() == 13  # 12 months and no birthday
        assert customers.exclude(timezone=settings.TIME_ZONE).exists()
        email = Consent.objects.filter(channel="email", granted=True).count()
        sms = Consent.objects.filter(channel="sms", granted=True).count()
        assert email > customers.count() / 2 > sms > 0

    def test_times_are_aware_and_in_the_past_and_money_has_two_places(self):
        seed(years=1)
        now = timezone.now()
        purchases = Purchase.objects.all()

        assert not purchases.filter(placed_at__gt=now).exists()
        assert not purchases.filter(placed_at__lt=now - dt.timedelta(days=366)).exists()
        assert set(purchases.values_list("currency", flat=True)) == {settings.STORE_CURRENCY}
        for purchase in purchases.prefetch_related("items"):
            assert timezone.is_aware(purchase.placed_at)
            assert purchase.total.as_tuple().exponent == -2
            assert purchase.total == sum(item.unit_price * item.quantity for item in purchase.items.all())

    def test_content_digest_matches_what_the_api_would_compute(self):
        seed()
        purchase = Purchase.objects.select_related("customer").prefetch_related("items").first()
        data = PurchaseInput(
            external_id=purchase.external_id,
            customer=purchase.customer.external_id,
            placed_at=purchase.placed_at,
            total=purchase.total,
            currency=purchase.currency,
            status=purchase.status,
            items=tuple(
                LineItemInput(sku=i.sku, quantity=i.quantity, unit_price=i.unit_price, name=i.name, category=i.category)
                for i in purchase.items.order_by("id")
            ),
            cart_id=purchase.cart_external_id,
        )
        assert purchase.content_digest == data.digest()

    def test_customer_stats_equal_a_fresh_aggregate_of_completed_purchases(self):
        seed()
        assert Customer.objects.filter(orders_count__gt=0).exists()
        assert stats_mismatches(Customer.objects.all()) == []

    def test_carts_follow_the_conversion_rule(self):
        """SPEC §2: any completed purchase after a cart's last update converts it."""
        seed()
        assert not open_carts_with_a_later_purchase().exists()
        converted = Cart.objects.filter(status=CartStatus.CONVERTED)
        assert converted.exists()
        assert not converted.filter(Q(converted_at__isnull=True) | Q(converted_at__lte=F("updated_at"))).exists()

    def test_referrals_point_at_earlier_customers(self):
        seed(customers=600)
        referred = Customer.objects.filter(referred_by__isnull=False)
        assert referred.exists()
        assert not referred.filter(referred_by__created_at__gt=F("created_at")).exists()

    def test_the_same_seed_gives_the_same_data(self):
        seed(seed=7)
        first = snapshot()
        delete_everything()
        seed(seed=7)
        assert snapshot() == first

    def test_another_seed_gives_other_data(self):
        seed(seed=7)
        first = snapshot()
        delete_everything()
        seed(seed=8)
        assert snapshot()["purchases"] != first["purchases"]

    def test_if_empty_does_nothing_when_customers_exist(self):
        CustomerFactory()
        output = seed(if_empty=True)
        assert "nothing to do" in output
        assert Customer.objects.count() == 1
        assert not Purchase.objects.exists()

    def test_if_empty_seeds_an_empty_database(self):
        seed(if_empty=True)
        assert Customer.objects.count() == SMALL

    def test_a_second_run_refuses_clearly_and_changes_nothing(self):
        seed()
        purchases = Purchase.objects.count()
        with pytest.raises(CommandError, match=r"already exist.*--if-empty"):
            seed()
        assert (Customer.objects.count(), Purchase.objects.count()) == (SMALL, purchases)

    def test_other_customers_do_not_block_a_seed(self):
        CustomerFactory(external_id="shop-1")
        seed()
        assert Customer.objects.count() == SMALL + 1


# --- bench/generate.py ------------------------------------------------------------------------

BENCH_CUSTOMERS, BENCH_PURCHASES = 300, 2000


def index_names() -> set[str]:
    """Names of the indexes and constraints of the tables the loader touches."""
    tables = list(LOADED_TABLES)
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = ANY(%s)", [tables])
        indexes = {row[0] for row in cursor.fetchall()}
        cursor.execute("SELECT conname FROM pg_constraint WHERE conrelid::regclass::text = ANY(%s)", [tables])
        return indexes | {row[0] for row in cursor.fetchall()}


def load(**options: Any) -> None:
    loyalty_program_ensure()  # the tiers the loader reads (a flushed test database lost the migrated ones)
    connection.ensure_connection()
    bench_load(
        connection.connection,
        customers=BENCH_CUSTOMERS,
        purchases=BENCH_PURCHASES,
        currency=settings.STORE_CURRENCY,
        out=io.StringIO(),
        **options,
    )


@pytest.mark.django_db(transaction=True)
class TestBenchGenerate:
    def test_loads_the_asked_sizes_with_exact_stats_and_keeps_the_schema(self):
        schema = index_names()
        load(seed=3)

        assert Customer.objects.count() == BENCH_CUSTOMERS
        assert Purchase.objects.count() == BENCH_PURCHASES
        assert Consent.objects.count() == ConsentEvent.objects.count() > 0
        assert stats_mismatches(Customer.objects.all()) == []
        assert Customer.objects.filter(orders_count=0).exists()
        assert Customer.objects.filter(orders_count=1).exists()
        assert Customer.objects.aggregate(Max("orders_count"))["orders_count__max"] >= 20  # the heavy tail
        assert Purchase.objects.exclude(status=PurchaseStatus.COMPLETED).exists()
        assert not Purchase.objects.filter(placed_at__lt=F("customer__created_at")).exists()
        assert not Purchase.objects.filter(placed_at__gt=timezone.now()).exists()
        assert not open_carts_with_a_later_purchase().exists()
        assert index_names() == schema  # every index and constraint is back
        # Tiers are loaded as the nightly recompute leaves them, and some customers are above bronze.
        assert Customer.objects.exclude(tier="bronze").exists()
        assert tiers_recompute_all() == 0

    def test_the_app_can_add_rows_after_a_load(self):
        load()
        customer = Customer.objects.create(external_id="after-load")  # identity moved past the loaded ids
        assert customer.pk == BENCH_CUSTOMERS + 1

    def test_refuses_a_non_empty_database_unless_dropping(self):
        load(seed=1)
        first = list(Purchase.objects.order_by("id").values_list("customer_id", "total", "status"))
        with pytest.raises(LoadRefused, match="--drop"):
            load()
        load(seed=1, drop=True)

        assert Customer.objects.count() == BENCH_CUSTOMERS
        assert list(Purchase.objects.order_by("id").values_list("customer_id", "total", "status")) == first
