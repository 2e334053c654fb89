"""seed_demo (the demo data set) and bench/generate.py (the benchmark loader), on PostgreSQL."""

import datetime as dt
import io
import re
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import Count, Exists, F, Max, Min, OuterRef, Q, Sum
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from bench.generate import LOADED_TABLES, LoadRefused, bench_load
from campaigns.models import SENT_STATUSES, Attribution, Campaign, CampaignStatus, Entry, Message, MessageStatus
from campaigns.selectors import campaign_steps_report
from customers.demo import DemoOptions, demo_seed
from customers.loyalty.services import loyalty_program_ensure, loyalty_program_get
from customers.loyalty.services.daily import tiers_recompute_all
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
from metrics.models import CustomerScore, DailySnapshot, RfmSegment
from metrics.periods import store_tz
from retention_crm.api.keys import api_key_create
from tests.factories import CustomerFactory

SMALL = 200
SHORT = 7  # days of campaign history and snapshots in the tests of the base data
DEMO_TRIGGERS = ("abandoned_cart", "reactivation", "birthday", "post_purchase")
STAGES = ("customers", "orders", "campaigns", "scores", "snapshots")


def seed(**options: Any) -> str:
    out = io.StringIO()
    call_command("seed_demo", stdout=out, **{"customers": SMALL, "days": SHORT, "snapshot_days": SHORT, **options})
    return out.getvalue()


def demo_tables_truncate() -> None:
    """Empty what a seed fills and restart the ids, so the control groups (a hash of campaign and
    customer ids) come out as on a fresh database. TRUNCATE: the points ledger refuses deletes."""
    tables = ", ".join(model._meta.db_table for model in (Customer, Product, Campaign, DailySnapshot))
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # run the deferred foreign-key checks first
        cursor.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")


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
    """Everything a seed decides, with times relative to each customer's sign-up."""
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
            NpsResponse.objects.order_by("customer__external_id", "answered_at").values_list(
                "customer__external_id", "score"
            )
        ),
        "messages": list(
            Message.objects.order_by("campaign__name", "dedupe_key").values_list(
                "campaign__name", "customer__external_id", "status", "reason"
            )
        ),
        "revenue": Purchase.objects.aggregate(total=Sum("total"))["total"],
    }


def stage_lines(output: str) -> dict[str, str]:
    """The command's line per stage, by stage name."""
    return dict(re.findall(r"^seed_demo: (\w+)\s+(.*\(\d+\.\d s\))$", output, flags=re.MULTILINE))


@pytest.mark.django_db
class TestSeedDemo:
    """The base data, seeded small and with a short campaign history."""

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
        lines = stage_lines(output)
        assert list(lines) == list(STAGES)
        assert lines["customers"].startswith(f"{SMALL} customers")
        orders = int(re.match(r"(\d+) orders", lines["orders"]).group(1))
        responses = int(re.search(r"(\d+) orders in response", lines["campaigns"]).group(1))
        assert orders + responses == Purchase.objects.count()
        assert "seed_demo: done in" in output
        # Loyalty as its rules leave it: points for the purchases still inside their expiry, exact ledgers.
        earned = PointsEntry.objects.filter(kind="earn")
        assert earned.exists()
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
        assert not Purchase.objects.filter(
            status__in=[PurchaseStatus.REFUNDED, PurchaseStatus.CANCELLED], status_changed_at__isnull=True
        ).exists()
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
        assert not Message.objects.filter(Q(created_at__gt=now) | Q(sent_at__gt=now)).exists()
        assert not NpsResponse.objects.filter(answered_at__gt=now).exists()
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
        now = timezone.now().replace(microsecond=0) - dt.timedelta(hours=1)
        options = DemoOptions(seed=7, customers=SMALL, days=SHORT * 2, snapshot_days=SHORT)
        demo_tables_truncate()
        demo_seed(options=options, now=now)
        first = snapshot()
        demo_tables_truncate()
        demo_seed(options=options, now=now)
        assert snapshot() == first

    def test_another_seed_gives_other_data(self):
        seed(seed=7)
        first = snapshot()
        demo_tables_truncate()
        seed(seed=8)
        assert snapshot()["purchases"] != first["purchases"]

    def test_if_empty_does_nothing_when_customers_exist(self):
        CustomerFactory()
        output = seed(if_empty=True)
        assert "nothing to do" in output
        assert Customer.objects.count() == 1
        assert not Purchase.objects.exists()
        assert not Campaign.objects.exists()

    def test_if_empty_seeds_an_empty_database(self):
        seed(if_empty=True)
        assert Customer.objects.count() == SMALL

    def test_a_second_run_refuses_clearly_and_changes_nothing(self):
        seed()
        purchases, messages = Purchase.objects.count(), Message.objects.count()
        with pytest.raises(CommandError, match=r"already exist.*--if-empty"):
            seed()
        assert (Customer.objects.count(), Purchase.objects.count(), Message.objects.count()) == (
            SMALL,
            purchases,
            messages,
        )

    def test_other_customers_do_not_block_a_seed(self):
        CustomerFactory(external_id="shop-1")
        seed()
        assert Customer.objects.count() == SMALL + 1

    @pytest.mark.parametrize(
        "option", [{"customers": 0}, {"years": 0}, {"days": 0}, {"days": 366}, {"snapshot_days": 0}]
    )
    def test_refuses_sizes_out_of_range(self, option):
        with pytest.raises(CommandError, match="must be"):
            seed(**option)
        assert not Customer.objects.exists()


@pytest.fixture(scope="class")
def demo(django_db_setup, django_db_blocker):
    """The demo exactly as ``make run`` seeds it (default options), once for the class: committed,
    then emptied again after the class."""
    with django_db_blocker.unblock():
        demo_tables_truncate()
        loyalty_program_ensure()  # a flushed test database lost the migrated program
        out = io.StringIO()
        call_command("seed_demo", "--if-empty", stdout=out)
        yield out.getvalue()
        demo_tables_truncate()


def demo_campaigns() -> dict[str, Campaign]:
    return {campaign.trigger: campaign for campaign in Campaign.objects.filter(status=CampaignStatus.ACTIVE)}


@pytest.mark.django_db
@pytest.mark.usefixtures("demo")
class TestTheDemoShowsTheWholeProduct:
    """SPEC §7: months of campaign history, scores, the trend's snapshots and NPS answers, at once."""

    def test_prints_a_line_per_stage_with_its_counts_and_time(self, demo):
        lines = stage_lines(demo)
        assert list(lines) == list(STAGES)
        assert lines["customers"].startswith(f"{DemoOptions().customers} customers")
        assert re.search(r"\d+ messages \(\d+ sent, \d+ held out, \d+ suppressed", lines["campaigns"])
        assert lines["snapshots"].startswith(f"{DemoOptions().snapshot_days} daily snapshots")

    def test_four_campaigns_with_sent_held_out_suppressed_and_converted_messages(self):
        campaigns = demo_campaigns()
        assert set(DEMO_TRIGGERS) <= set(campaigns)
        for trigger in DEMO_TRIGGERS:
            messages = Message.objects.filter(campaign=campaigns[trigger])
            sent = messages.filter(status__in=SENT_STATUSES).count()
            held_out = messages.filter(status=MessageStatus.HELD_OUT).count()
            assert sent + held_out >= 150, trigger  # a few hundred per campaign
            share = campaigns[trigger].holdout_percent / 100
            assert share - 0.1 < held_out / (sent + held_out) < share + 0.1, trigger  # the control group
            assert messages.filter(status=MessageStatus.SUPPRESSED).exists(), trigger
            converted = Attribution.objects.filter(campaign=campaigns[trigger])
            assert converted.filter(message__status__in=SENT_STATUSES).exists(), trigger
            assert converted.filter(message__status=MessageStatus.HELD_OUT).exists(), trigger

    def test_the_welcome_journey_walks_its_steps(self):
        journey = demo_campaigns()["welcome"]
        steps = {step["key"]: step for step in campaign_steps_report(campaign=journey)}
        assert steps["welcome"]["entered"] > 20
        assert 0 < steps["first-order"]["sent"] < steps["welcome"]["sent"]  # some bought, some still wait
        assert [v["key"] for v in steps["first-order"]["variants"]] == ["points", "named"]
        assert all(v["sent"] > 0 for v in steps["first-order"]["variants"])
        assert Entry.objects.filter(campaign=journey, state="active", step_key="three-days").exists()

    def test_the_history_spans_months_and_ends_now(self):
        now = timezone.now()
        span = Message.objects.aggregate(first=Min("created_at"), last=Max("created_at"))
        assert span["first"] <= now - dt.timedelta(days=DemoOptions().days - 1)
        assert span["last"] >= now - dt.timedelta(days=2)
        for trigger, campaign in demo_campaigns().items():
            if trigger in DEMO_TRIGGERS:
                assert campaign.created_at <= span["first"], trigger

    def test_every_campaign_report_shows_a_positive_uplift_with_its_confidence_interval(self):
        _, key = api_key_create(name="demo reports", scopes=["campaigns"])
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
        for trigger in DEMO_TRIGGERS:
            campaign = demo_campaigns()[trigger]
            response = client.get(f"/api/v1/campaigns/{campaign.pk}/report")
            assert response.status_code == 200, response.content
            report = response.json()
            assert report["counts"]["sent"] + report["counts"]["delivered"] > 0, trigger
            impact = report["impact"]
            assert impact["treated"]["conversion_rate"] > impact["control"]["conversion_rate"] > 0, trigger
            uplift = impact["uplift"]
            assert 0 < uplift["ci_low"] < uplift["absolute"] < uplift["ci_high"], (trigger, uplift)
            assert uplift["p_value"] < 0.05, (trigger, uplift)
            assert impact["treated"]["attributed_purchases"] > 0, trigger

    def test_attributed_purchases_are_completed_and_inside_their_message_window(self):
        attributions = Attribution.objects.select_related("purchase", "message", "campaign")
        assert attributions.count() >= 100
        for attribution in attributions:
            purchase, message = attribution.purchase, attribution.message
            assert purchase.status == PurchaseStatus.COMPLETED
            assert purchase.customer_id == message.customer_id
            window = dt.timedelta(days=attribution.campaign.attribution_days)
            assert message.touched_at <= purchase.placed_at < message.touched_at + window

    def test_suppressed_messages_belong_to_customers_who_revoked_consent(self):
        suppressed = Message.objects.filter(status=MessageStatus.SUPPRESSED)
        assert suppressed.exists()
        granted = Consent.objects.filter(customer=OuterRef("customer"), channel=OuterRef("channel"), granted=True)
        assert not suppressed.filter(reason="no_consent").filter(Exists(granted)).exists()
        # A journey's message not sent yet is also suppressed when the customer buys first ("goal").
        assert set(suppressed.values_list("reason", flat=True)) <= {"no_consent", "frequency_cap", "goal"}

    def test_the_sender_kept_quiet_hours_and_the_frequency_cap(self):
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM campaigns_message m JOIN customers_customer c ON c.id = m.customer_id"
                " WHERE m.sent_at IS NOT NULL AND NOT (extract(hour FROM m.sent_at AT TIME ZONE c.timezone)"
                " BETWEEN 9 AND 20)"
            )
            assert cursor.fetchone()[0] == 0  # default quiet hours 21:00-09:00, the customer's time
            cursor.execute(
                "SELECT count(*) FROM campaigns_message m WHERE m.sent_at IS NOT NULL AND ("
                " SELECT count(*) FROM campaigns_message o WHERE o.customer_id = m.customer_id"
                " AND o.sent_at > m.sent_at - interval '7 days' AND o.sent_at <= m.sent_at) > 3"
            )
            assert cursor.fetchone()[0] == 0  # at most 3 per rolling 7 days
        assert (
            Message.objects.filter(status__in=["delivered", "opened", "clicked"]).values("status").distinct().count()
            == 3
        )

    def test_scores_and_rfm_segments_are_computed_for_every_buyer(self):
        buyers = Customer.objects.filter(orders_count__gt=0).count()
        assert CustomerScore.objects.count() == buyers > 0
        segments = set(CustomerScore.objects.values_list("rfm_segment", flat=True))
        assert len(segments) >= 6 and segments <= set(RfmSegment.values)
        assert CustomerScore.objects.filter(churn_risk__gte=0.7).exists()
        assert CustomerScore.objects.filter(churn_risk__lte=0.3).exists()

    def test_snapshots_fill_the_90_days_up_to_yesterday(self):
        yesterday = timezone.now().astimezone(store_tz()).date() - dt.timedelta(days=1)
        days = list(DailySnapshot.objects.order_by("date").values_list("date", flat=True))
        assert days == [yesterday - dt.timedelta(days=n) for n in range(DemoOptions().snapshot_days - 1, -1, -1)]
        assert len(days) == 90
        assert not DailySnapshot.objects.filter(Q(crr__isnull=True) | Q(nps__isnull=True)).exists()

    def test_nps_answers_come_with_the_review_bonus(self):
        answers = NpsResponse.objects.all()
        recent = answers.filter(answered_at__gte=timezone.now() - dt.timedelta(days=DemoOptions().days))
        assert recent.count() >= 50
        assert answers.filter(score__gte=9).exists() and answers.filter(score__lte=6).exists()
        assert PointsEntry.objects.filter(idempotency_key__startswith="bonus:review:").exists()

    def test_the_dashboard_draws_the_trend_and_each_campaign_impact(self, admin_client):
        response = admin_client.get(reverse("admin:metrics_dashboard_changelist"))
        assert response.status_code == 200
        dashboard = response.context["dashboard"]
        assert dashboard.trend_chart
        assert {row.name for row in dashboard.campaign_impacts} >= {c.name for c in demo_campaigns().values()}

    def test_the_ledger_and_stats_are_exact(self):
        assert stats_mismatches(Customer.objects.all()) == []
        assert not open_carts_with_a_later_purchase().exists()
        call_command("loyalty_verify", stdout=io.StringIO())

    def test_if_empty_on_the_seeded_database_adds_nothing(self):
        tables = (Customer, Purchase, PointsEntry, Cart, Campaign, Message, Attribution, NpsResponse, DailySnapshot)
        before = {model: model.objects.count() for model in tables}
        out = io.StringIO()
        call_command("seed_demo", "--if-empty", stdout=out)
        assert "nothing to do" in out.getvalue()
        assert {model: model.objects.count() for model in tables} == before


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
