"""Loyalty services (SPEC §3): earning, tiers, FIFO spending, expiry, refunds, bonuses, idempotency."""

import datetime as dt
import zoneinfo
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from customers.loyalty.selectors import customer_loyalty, points_expiring_within
from customers.loyalty.services import (
    BonusGrant,
    InsufficientPoints,
    loyalty_after_purchases,
    points_adjust,
    points_bonus_grant,
    points_earn_for_purchases,
    points_redeem,
)
from customers.loyalty.services.daily import points_birthday_bonuses, points_expire_due, tiers_recompute_all
from customers.models import AppendOnlyError, Customer, LoyaltyProgram, LoyaltyTier, PointsEntry, TierChange
from customers.services import customer_upsert, nps_record, purchase_cancel, purchase_refund
from retention_crm.errors import ApplicationError, Conflict, NotFound
from tests.factories import CustomerFactory, PurchaseFactory
from tests.loyalty_support import assert_ledger_consistent, balance, buy, program_set

pytestmark = pytest.mark.django_db

NOW = timezone.now()


@pytest.fixture(autouse=True)
def plain_program():
    # One tier (multiplier 1) unless a test sets tiers: the arithmetic stays about the rule under test.
    return program_set(tiers=[("bronze", "Bronze", "0", "1")])


def lots(external_id: str) -> list[tuple[str, int, int]]:
    """(kind, points, remaining) of the customer's lots, oldest expiry first."""
    return list(
        PointsEntry.objects.filter(customer__external_id=external_id, remaining__isnull=False)
        .order_by("expires_at", "id")
        .values_list("kind", "points", "remaining")
    )


def redeem(customer: str, points: int, key: str, order_total: str = "100000.00", **extra):
    return points_redeem(customer=customer, points=points, order_total=order_total, idempotency_key=key, **extra)


# --- Earning --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "earn_rate", "expected"),
    [
        ("99.99", "1", 99),  # floor, never rounded up
        ("0.99", "1", 0),  # nothing to earn: no entry
        ("5000.00", "1", 5000),
        ("59.90", "0.1", 5),
        ("10.00", "0.0333", 0),  # 0.333 floors to 0
        ("100.00", "0.0333", 3),
    ],
)
def test_earning_is_the_floor_of_total_times_rate(total, earn_rate, expected):
    # One tier, multiplier 1, so only the rate and the floor are at play.
    program_set(earn_rate=Decimal(earn_rate), tiers=[("base", "Base", "0", "1")])
    purchase = buy("ada", total)
    assert balance("ada") == expected
    entries = PointsEntry.objects.filter(purchase=purchase, kind="earn")
    assert [e.points for e in entries] == ([expected] if expected else [])


def test_tier_multiplier_applies_and_rounding_is_floor_after_multiplying():
    program_set(tiers=[("bronze", "Bronze", "0", "1"), ("silver", "Silver", "100", "1.25")])
    buy("ada", "50.00")  # bronze: 50
    assert balance("ada") == 50
    # This purchase lifts trailing spend to 150.99: silver, and it earns at silver: floor(100.99 * 1.25) = 126.
    buy("ada", "100.99")
    assert Customer.objects.get(external_id="ada").tier == "silver"
    assert balance("ada") == 50 + 126
    buy("ada", "0.79")  # floor(0.9875) = 0
    assert balance("ada") == 176


def test_default_program_makes_a_5000_purchase_earn_points():
    LoyaltyTier.objects.all().delete()
    LoyaltyProgram.objects.all().delete()  # back to the shipped defaults, created on first use
    buy("big", "5000.00")
    # 1 point per 1.00, and 5,000 of spend reaches Gold (from 2,000) whose multiplier is 1.5.
    assert PointsEntry.objects.get(kind="earn").points == 7500
    assert Customer.objects.get(external_id="big").tier == "gold"


def test_completed_purchases_only_and_each_purchase_earns_once():
    refunded = buy("ada", "40.00", status="refunded")
    purchase = buy("ada", "60.00")
    assert balance("ada") == 60
    points_earn_for_purchases(purchase_ids=[purchase.pk, purchase.pk, refunded.pk])
    loyalty_after_purchases(purchase_ids=[purchase.pk])
    assert balance("ada") == 60
    assert PointsEntry.objects.filter(kind="earn").count() == 1


def test_purchase_reported_after_its_points_would_have_expired_earns_nothing():
    buy("ada", "80.00", placed_at=NOW - dt.timedelta(days=366))
    buy("ada", "20.00", placed_at=NOW - dt.timedelta(days=364))
    assert balance("ada") == 20
    lot = PointsEntry.objects.get(kind="earn")
    assert lot.expires_at == lot.purchase.placed_at + dt.timedelta(days=365)


def test_earning_for_a_thousand_purchases_is_a_few_statements(django_assert_max_num_queries):
    program_set(tiers=[("base", "Base", "0", "1")])
    customers = CustomerFactory.create_batch(50)
    purchases = [
        PurchaseFactory(customer=customers[i % 50], total=Decimal("10.00") + i, placed_at=NOW) for i in range(1000)
    ]
    with django_assert_max_num_queries(13):
        outcome = loyalty_after_purchases(purchase_ids=[p.pk for p in purchases])
    assert outcome.earned == sum(10 + i for i in range(1000))
    assert PointsEntry.objects.filter(kind="earn").count() == 1000
    for customer in customers[:3]:
        assert_ledger_consistent(customer.external_id)
    # Idempotent: again, nothing changes.
    loyalty_after_purchases(purchase_ids=[p.pk for p in purchases])
    assert PointsEntry.objects.filter(kind="earn").count() == 1000


# --- Tiers ----------------------------------------------------------------------------------------


def test_tiers_follow_trailing_365_day_spend_up_and_down_with_history():
    program_set(
        tiers=[("bronze", "Bronze", "0", "1"), ("silver", "Silver", "500", "1.25"), ("gold", "Gold", "2000", "1.5")]
    )
    buy("ada", "600.00", placed_at=NOW - dt.timedelta(days=300))
    assert Customer.objects.get(external_id="ada").tier == "silver"
    buy("ada", "1500.00", placed_at=NOW - dt.timedelta(days=10))
    assert Customer.objects.get(external_id="ada").tier == "gold"
    # 70 days on, the first purchase has left the window: 1500 is silver again.
    assert tiers_recompute_all(now=NOW + dt.timedelta(days=70)) == 1
    assert Customer.objects.get(external_id="ada").tier == "silver"
    assert tiers_recompute_all(now=NOW + dt.timedelta(days=70)) == 0  # nothing left to move
    history = list(TierChange.objects.order_by("changed_at", "id").values_list("from_tier", "to_tier", "cause"))
    assert history == [("bronze", "silver", "purchase"), ("silver", "gold", "purchase"), ("gold", "silver", "daily")]


def test_refund_recomputes_the_tier():
    program_set(tiers=[("bronze", "Bronze", "0", "1"), ("silver", "Silver", "500", "1.25")])
    purchase = buy("ada", "600.00")
    purchase_refund(external_id=purchase.external_id)
    assert Customer.objects.get(external_id="ada").tier == "bronze"
    assert TierChange.objects.filter(cause="refund").count() == 1


# --- Spending: FIFO and the share limit -----------------------------------------------------------


def test_spending_consumes_the_oldest_lots_first_across_several_lots():
    buy("ada", "30.00", placed_at=NOW - dt.timedelta(days=200))
    buy("ada", "50.00", placed_at=NOW - dt.timedelta(days=100))
    buy("ada", "40.00", placed_at=NOW - dt.timedelta(days=10))
    redeem("ada", 60, "k1")
    assert lots("ada") == [("earn", 30, 0), ("earn", 50, 20), ("earn", 40, 40)]
    redeem("ada", 45, "k2")
    assert lots("ada") == [("earn", 30, 0), ("earn", 50, 0), ("earn", 40, 15)]
    assert balance("ada") == 15
    assert_ledger_consistent("ada")


def test_redeem_answers_discount_and_balance_and_respects_the_share():
    buy("ada", "1000.00")
    result = redeem("ada", 300, "k1", order_total="100.00", order_id="next-order")
    assert (result.redeemed, result.discount, result.balance) == (300, Decimal("3.00"), 700)
    entry = result.entry
    assert (entry.kind, entry.points, entry.order_id, entry.order_total) == (
        "redeem",
        -300,
        "next-order",
        Decimal("100"),
    )
    # 30 % of 10.00 is 3.00 = 300 points at 0.01: 301 is over the share.
    with pytest.raises(ApplicationError) as refused:
        redeem("ada", 301, "k2", order_total="10.00")
    assert refused.value.code == "max_share_exceeded" and refused.value.status == 400
    with pytest.raises(InsufficientPoints) as short:
        redeem("ada", 701, "k3")
    assert short.value.status == 409
    assert balance("ada") == 700
    assert_ledger_consistent("ada")


@pytest.mark.parametrize(
    ("field", "value"),
    [("points", 0), ("points", -5), ("points", "ten"), ("points", 1.5), ("points", True), ("order_total", "-1")],
)
def test_redeem_refuses_bad_numbers(field, value):
    buy("ada", "100.00")
    args = {"customer": "ada", "points": 10, "order_total": "100.00", "idempotency_key": "k", field: value}
    with pytest.raises(ApplicationError) as refused:
        points_redeem(**args)
    assert field in refused.value.fields
    assert balance("ada") == 100


def test_redeem_for_an_unknown_customer_is_not_found_and_creates_nothing():
    with pytest.raises(NotFound):
        redeem("nobody", 1, "k")
    assert not Customer.objects.exists()


def test_same_idempotency_key_returns_the_first_result_and_changes_nothing():
    buy("ada", "100.00")
    first = redeem("ada", 10, "checkout-1", order_id="o-9")
    buy("ada", "50.00")  # the balance moves on
    again = redeem("ada", 10, "checkout-1", order_id="o-9")
    assert again.replayed
    assert (again.redeemed, again.discount, again.balance) == (first.redeemed, first.discount, first.balance)
    assert PointsEntry.objects.filter(kind="redeem").count() == 1
    assert balance("ada") == 140
    with pytest.raises(Conflict) as conflict:
        redeem("ada", 11, "checkout-1", order_id="o-9")
    assert conflict.value.code == "idempotency_conflict"
    with pytest.raises(Conflict):
        points_adjust(customer="ada", points=5, reason="x", idempotency_key="checkout-1", actor="t")


def test_the_same_client_key_for_two_customers_is_two_requests():
    buy("ada", "100.00")
    buy("bob", "100.00")
    redeem("ada", 10, "k")
    redeem("bob", 10, "k")
    assert balance("ada") == balance("bob") == 90


# --- Expiry ---------------------------------------------------------------------------------------


def test_expiry_at_the_boundary():
    placed = NOW - dt.timedelta(days=100)
    buy("ada", "70.00", placed_at=placed)
    expires_at = placed + dt.timedelta(days=365)
    assert points_expire_due(now=expires_at - dt.timedelta(microseconds=1)).lots == 0
    assert balance("ada") == 70
    result = points_expire_due(now=expires_at)
    assert (result.customers, result.lots, result.points) == (1, 1, 70)
    assert balance("ada") == 0
    expire = PointsEntry.objects.get(kind="expire")
    assert (expire.points, expire.balance_after, expire.related_entry.kind) == (-70, 0, "earn")
    assert points_expire_due(now=expires_at + dt.timedelta(days=1)).lots == 0  # once only
    assert_ledger_consistent("ada")


def test_expiry_takes_only_what_is_left_of_old_lots():
    buy("ada", "30.00", placed_at=NOW - dt.timedelta(days=300))
    buy("ada", "50.00", placed_at=NOW - dt.timedelta(days=10))
    redeem("ada", 20, "k")  # from the old lot: 10 of it left
    points_expire_due(now=NOW + dt.timedelta(days=65))
    assert lots("ada") == [("earn", 30, 0), ("earn", 50, 50)]
    assert balance("ada") == 50
    assert PointsEntry.objects.get(kind="expire").points == -10
    assert_ledger_consistent("ada")


def test_expiry_pass_walks_every_customer_in_batches():
    for n in range(7):
        buy(f"c{n}", "10.00", placed_at=NOW - dt.timedelta(days=364))
    buy("keeps", "10.00")
    result = points_expire_due(now=NOW + dt.timedelta(days=2), batch_size=3)
    assert (result.customers, result.lots, result.points) == (7, 7, 70)
    assert balance("keeps") == 10
    assert all(balance(f"c{n}") == 0 for n in range(7))


def test_points_expiring_within_is_a_set_based_queryset_with_the_boundary_included():
    buy("ada", "10.00", placed_at=NOW - dt.timedelta(days=355))  # expires in 10 days
    buy("ada", "20.00", placed_at=NOW - dt.timedelta(days=350))  # in 15 days
    buy("bob", "5.00", placed_at=NOW - dt.timedelta(days=300))  # in 65 days
    rows = {row["customer_id"]: row for row in points_expiring_within(days=15, now=NOW)}
    ada = Customer.objects.get(external_id="ada")
    assert set(rows) == {ada.pk}
    assert rows[ada.pk]["points"] == 30
    assert rows[ada.pk]["earliest_expiry"] == NOW - dt.timedelta(days=355) + dt.timedelta(days=365)
    # Usable inside another statement, e.g. by the points_expiring trigger.
    assert list(
        Customer.objects.filter(pk__in=points_expiring_within(days=14, now=NOW).values("customer_id")).values_list(
            "external_id", flat=True
        )
    ) == ["ada"]
    assert points_expiring_within(days=15, now=NOW).filter(customer_id=ada.pk).first()["points"] == 30
    summary = customer_loyalty(customer=ada, expiring_days=12, now=NOW)
    assert summary.expiring.points == 10


# --- Refunds --------------------------------------------------------------------------------------


def test_refund_after_partial_spending_takes_back_what_is_left_and_records_the_rest():
    buy("ada", "100.00", placed_at=NOW - dt.timedelta(days=20), external_id="old")
    refunded = buy("ada", "80.00", placed_at=NOW - dt.timedelta(days=5), external_id="o-80")
    redeem("ada", 150, "k")  # 100 from "old", 50 from "o-80": 30 of o-80's lot left
    purchase_refund(external_id=refunded.external_id)
    reversal = PointsEntry.objects.get(kind="reversal")
    assert (reversal.points, reversal.uncovered, reversal.balance_after) == (-30, 50, 0)
    assert reversal.related_entry.purchase == refunded
    assert balance("ada") == 0
    assert_ledger_consistent("ada")
    purchase_refund(external_id=refunded.external_id)  # a repeat changes nothing
    assert PointsEntry.objects.filter(kind="reversal").count() == 1


def test_refund_takes_the_purchase_own_lot_first_then_the_oldest():
    buy("ada", "40.00", placed_at=NOW - dt.timedelta(days=30))
    refunded = buy("ada", "50.00", placed_at=NOW - dt.timedelta(days=5))
    redeem("ada", 20, "k")  # from the old lot
    purchase_cancel(external_id=refunded.external_id)
    assert lots("ada") == [("earn", 40, 20), ("earn", 50, 0)]
    assert balance("ada") == 20
    assert PointsEntry.objects.get(kind="reversal").uncovered == 0


def test_refund_returns_the_points_redeemed_for_the_order_then_reverses_its_earning():
    buy("ada", "100.00", placed_at=NOW - dt.timedelta(days=3))
    redeem("ada", 60, "k", order_id="o-2", order_total="200.00")
    purchase = buy("ada", "200.00", external_id="o-2")  # earns 200; balance 40 + 200
    assert balance("ada") == 240
    purchase_refund(external_id=purchase.external_id)
    # Back to where the customer was before the order: 100 earned before it.
    assert balance("ada") == 100
    returned = PointsEntry.objects.get(kind="reversal", points__gt=0)
    assert returned.points == 60 and returned.remaining == 60 and returned.related_entry.kind == "redeem"
    assert_ledger_consistent("ada")


def test_refund_does_not_take_back_points_that_already_expired():
    purchase = buy("ada", "30.00", placed_at=NOW - dt.timedelta(days=364))
    buy("ada", "50.00")
    points_expire_due(now=NOW + dt.timedelta(days=2))
    purchase_refund(external_id=purchase.external_id)
    assert balance("ada") == 50
    assert not PointsEntry.objects.filter(kind="reversal").exists()


def test_refund_when_everything_was_spent_records_the_whole_rest_as_uncovered():
    purchase = buy("ada", "100.00")
    redeem("ada", 100, "k")
    purchase_refund(external_id=purchase.external_id)
    reversal = PointsEntry.objects.get(kind="reversal")
    assert (reversal.points, reversal.uncovered) == (0, 100)
    assert balance("ada") == 0


# --- Adjustments ----------------------------------------------------------------------------------


def test_adjust_adds_a_lot_or_takes_oldest_first_with_a_reason_and_an_audit_row():
    from customers.models import AuditLog

    buy("ada", "50.00")
    added = points_adjust(customer="ada", points=25, reason="late parcel", idempotency_key="t-1", actor="support")
    assert (added.points, added.balance) == (25, 75)
    taken = points_adjust(customer="ada", points=-60, reason="duplicate order", idempotency_key="t-2", actor="s")
    assert (taken.points, taken.balance) == (-60, 15)
    assert lots("ada") == [("earn", 50, 0), ("adjust", 25, 15)]
    with pytest.raises(InsufficientPoints):
        points_adjust(customer="ada", points=-16, reason="too much", idempotency_key="t-3", actor="s")
    with pytest.raises(ApplicationError) as no_reason:
        points_adjust(customer="ada", points=5, reason="  ", idempotency_key="t-4", actor="s")
    assert "reason" in no_reason.value.fields
    assert AuditLog.objects.filter(action="points.adjust").count() == 2
    again = points_adjust(customer="ada", points=25, reason="late parcel", idempotency_key="t-1", actor="support")
    assert again.replayed and again.balance == 75
    assert balance("ada") == 15


# --- Bonuses --------------------------------------------------------------------------------------


def test_welcome_bonus_once_on_creation_and_not_for_an_imported_old_customer():
    program_set(welcome_bonus=100)
    customer_upsert(external_id="new", data={"email": "new@example.com"})
    customer_upsert(external_id="new", data={"first_name": "Nina"})
    buy("new", "10.00")
    buy("guest", "10.00")  # created by the purchase: welcome too
    customer_upsert(external_id="imported", data={"created_at": "2020-01-01T00:00:00Z"})
    assert (balance("new"), balance("guest"), balance("imported")) == (110, 110, 0)
    assert PointsEntry.objects.filter(idempotency_key__startswith="bonus:welcome:").count() == 2


def test_zero_disables_a_bonus():
    program_set(welcome_bonus=0, referral_bonus=0, review_bonus=0)
    customer_upsert(external_id="a", data={})
    customer_upsert(external_id="b", data={"referred_by": "a"})
    buy("b", "10.00")
    nps_record(customer="b", score=10)
    assert not PointsEntry.objects.filter(kind="bonus").exists()


def test_referral_bonus_when_the_referred_customer_completes_a_first_purchase():
    program_set(referral_bonus=500)
    customer_upsert(external_id="ref", data={})
    customer_upsert(external_id="friend", data={"referred_by": "ref"})
    buy("friend", "10.00", status="cancelled")
    assert balance("ref") == 0
    buy("friend", "20.00")
    buy("friend", "30.00")
    assert balance("ref") == 500
    # Claiming a referrer after buying earns nothing: it was not the first purchase.
    customer_upsert(external_id="late", data={})
    buy("late", "10.00")
    customer_upsert(external_id="late", data={"referred_by": "ref"})
    buy("late", "10.00")
    assert balance("ref") == 500


def test_review_bonus_once_per_purchase():
    program_set(review_bonus=50)
    customer_upsert(external_id="ada", data={})
    nps_record(customer="ada", score=9)  # nothing bought yet: nothing to review
    assert balance("ada") == 0
    buy("ada", "10.00", placed_at=NOW - dt.timedelta(days=2))
    nps_record(customer="ada", score=9)
    nps_record(customer="ada", score=3, comment="changed my mind")
    assert balance("ada") == 10 + 50
    buy("ada", "10.00", placed_at=NOW - dt.timedelta(days=1))
    nps_record(customer="ada", score=10)
    assert balance("ada") == 20 + 100


def test_birthday_bonus_once_a_year_in_the_customer_time_zone():
    program_set(birthday_bonus=200)
    # 23:30 UTC on 9 March: already 10 March in Tokyo, still 9 March in New York.
    now = dt.datetime(2027, 3, 9, 23, 30, tzinfo=dt.UTC)
    assert now.astimezone(zoneinfo.ZoneInfo("Asia/Tokyo")).day == 10
    assert now.astimezone(zoneinfo.ZoneInfo("America/New_York")).day == 9
    customer_upsert(external_id="tokyo", data={"birth_date": "1990-03-10", "timezone": "Asia/Tokyo"})
    customer_upsert(external_id="nyc", data={"birth_date": "1990-03-10", "timezone": "America/New_York"})
    assert points_birthday_bonuses(now=now) == 1
    assert (balance("tokyo"), balance("nyc")) == (200, 0)
    assert points_birthday_bonuses(now=now + dt.timedelta(hours=1)) == 0  # once a year
    assert points_birthday_bonuses(now=now + dt.timedelta(hours=10)) == 1  # New York's turn
    assert points_birthday_bonuses(now=dt.datetime(2028, 3, 10, 12, tzinfo=dt.UTC)) == 2  # next year, both
    key = PointsEntry.objects.filter(customer__external_id="tokyo").order_by("id").first().idempotency_key
    assert key.endswith(":2027")


def test_a_29_february_birthday_counts_on_28_february_in_other_years():
    program_set(birthday_bonus=200)
    customer_upsert(external_id="leap", data={"birth_date": "2000-02-29", "timezone": "UTC"})
    assert points_birthday_bonuses(now=dt.datetime(2027, 2, 28, 12, tzinfo=dt.UTC)) == 1
    assert points_birthday_bonuses(now=dt.datetime(2028, 2, 28, 12, tzinfo=dt.UTC)) == 0  # a leap year: wait
    assert points_birthday_bonuses(now=dt.datetime(2028, 2, 29, 12, tzinfo=dt.UTC)) == 1


def test_bonus_grant_is_idempotent_per_key():
    customer = CustomerFactory()
    grant = BonusGrant(customer_id=customer.pk, points=100, key="campaign:1:customer:1", reason="Offer")
    points_bonus_grant(grants=[grant, grant])
    points_bonus_grant(grants=[grant])
    assert balance(customer.external_id) == 100


# --- The ledger is append-only and verifiable -----------------------------------------------------


def test_entries_cannot_be_edited_or_deleted_through_models():
    buy("ada", "10.00")
    entry = PointsEntry.objects.get()
    entry.points = 1_000
    with pytest.raises(AppendOnlyError):
        entry.save()
    with pytest.raises(AppendOnlyError):
        entry.delete()
    with pytest.raises(AppendOnlyError):
        PointsEntry.objects.all().delete()
    with pytest.raises(AppendOnlyError):
        PointsEntry.objects.update(points=1)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE customers_pointsentry SET points = points + 1",
        "UPDATE customers_pointsentry SET remaining = remaining + 1",
        "UPDATE customers_pointsentry SET reason = 'rewritten'",
        "DELETE FROM customers_pointsentry",
    ],
)
def test_the_database_refuses_edits_and_deletes_even_in_raw_sql(statement):
    buy("ada", "10.00")
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement)
    assert PointsEntry.objects.get().points == 10


def test_loyalty_verify_passes_on_a_consistent_ledger_and_fails_on_a_drift(capsys):
    buy("ada", "10.00")
    redeem("ada", 3, "k")
    call_command("loyalty_verify")
    assert "OK" in capsys.readouterr().out
    Customer.objects.filter(external_id="ada").update(points_balance=8)  # drift, behind the services' back
    with pytest.raises(CommandError):
        call_command("loyalty_verify")
    assert "ada" in capsys.readouterr().out


def test_customer_loyalty_shows_progress_to_the_next_tier():
    program_set(
        tiers=[("bronze", "Bronze", "0", "1"), ("silver", "Silver", "500", "1.25"), ("gold", "Gold", "2000", "1.5")]
    )
    buy("ada", "800.00")
    summary = customer_loyalty(customer=Customer.objects.get(external_id="ada"))
    assert summary.tier.code == "silver" and summary.next_tier.code == "gold"
    assert summary.trailing_spend == Decimal("800.00")
    assert summary.spend_to_next_tier == Decimal("1200.00")
    assert summary.progress == 0.2
    assert summary.balance_value == Decimal("10.00")  # 1000 points x 0.01
