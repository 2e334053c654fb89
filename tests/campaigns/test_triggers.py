"""Every trigger's eligibility (SPEC §4 table), to the second at its boundaries, and the audience filters."""

import datetime as dt
from decimal import Decimal

import pytest

from campaigns.models import Message, Trigger
from campaigns.services import campaign_evaluate
from campaigns.triggers import TRIGGERS
from campaigns.triggers.birthday import possible_birthdays
from customers.models import Consent, PointsEntry
from metrics.models import CustomerScore
from retention_crm.errors import ApplicationError
from tests.campaigns.conftest import NOON, tz
from tests.factories import CartFactory, CartItemFactory, PurchaseFactory

SECOND = dt.timedelta(seconds=1)
pytestmark = pytest.mark.django_db


def selected(campaign, now) -> set[str]:
    """External ids of the customers the campaign's evaluation at ``now`` created a message for."""
    before = set(Message.objects.filter(campaign=campaign).values_list("pk", flat=True))
    campaign_evaluate(campaign_id=campaign.pk, now=now)
    created = Message.objects.filter(campaign=campaign).exclude(pk__in=before)
    return set(created.values_list("customer__external_id", flat=True))


# --- abandoned_cart -----------------------------------------------------------------------------------


def open_cart(customer, updated_at, *, items: int = 1, status: str = "open"):
    cart = CartFactory(customer=customer, updated_at=updated_at, status=status)
    for _ in range(items):
        CartItemFactory(cart=cart)
    return cart


def test_abandoned_cart_needs_the_delay_to_the_second_items_and_no_later_purchase(make_customer, make_campaign, now):
    campaign = make_campaign("abandoned_cart", params={"delay_hours": 1})
    on_time = make_customer(external_id="on-time")
    open_cart(on_time, now - dt.timedelta(hours=1))
    too_fresh = make_customer(external_id="too-fresh")
    open_cart(too_fresh, now - dt.timedelta(hours=1) + SECOND)
    empty = make_customer(external_id="empty")
    open_cart(empty, now - dt.timedelta(hours=5), items=0)
    converted = make_customer(external_id="converted")
    open_cart(converted, now - dt.timedelta(hours=5), status="converted")
    bought_after = make_customer(external_id="bought-after", last_purchase_at=now - dt.timedelta(hours=5) + SECOND)
    open_cart(bought_after, now - dt.timedelta(hours=5))
    bought_at_same_time = make_customer(external_id="bought-same-time", last_purchase_at=now - dt.timedelta(hours=5))
    open_cart(bought_at_same_time, now - dt.timedelta(hours=5))

    assert selected(campaign, now) == {"on-time", "bought-same-time"}


def test_abandoned_cart_reminds_again_about_a_changed_cart(make_customer, make_campaign, now):
    campaign = make_campaign("abandoned_cart")
    customer = make_customer(external_id="shopper")
    cart = open_cart(customer, now - dt.timedelta(hours=2))
    assert selected(campaign, now) == {"shopper"}
    assert selected(campaign, now + dt.timedelta(hours=1)) == set()  # same cart version: one message ever
    cart.updated_at = now + dt.timedelta(hours=1)
    cart.save()
    assert selected(campaign, now + dt.timedelta(hours=3)) == {"shopper"}
    assert Message.objects.get(campaign=campaign, cart=cart, created_at__gt=now).cart_id == cart.pk


def test_abandoned_cart_max_age_leaves_old_carts_alone(make_customer, make_campaign, now):
    campaign = make_campaign("abandoned_cart", params={"delay_hours": 1, "max_age_hours": 48})
    open_cart(make_customer(external_id="recent"), now - dt.timedelta(hours=48) + SECOND)
    open_cart(make_customer(external_id="old"), now - dt.timedelta(hours=48))
    assert selected(campaign, now) == {"recent"}


# --- reactivation -----------------------------------------------------------------------------------


def test_reactivation_window_is_inactive_days_inclusive_and_max_inactive_days_exclusive(
    make_customer, make_campaign, now
):
    campaign = make_campaign("reactivation", params={"inactive_days": 90, "max_inactive_days": 120})
    make_customer(external_id="exactly-90", last_purchase_at=now - dt.timedelta(days=90))
    make_customer(external_id="not-yet", last_purchase_at=now - dt.timedelta(days=90) + SECOND)
    make_customer(external_id="exactly-120", last_purchase_at=now - dt.timedelta(days=120))
    make_customer(external_id="just-inside-120", last_purchase_at=now - dt.timedelta(days=120) + SECOND)
    make_customer(external_id="never-bought", last_purchase_at=None)
    assert selected(campaign, now) == {"exactly-90", "just-inside-120"}


def test_reactivation_default_is_90_days_without_an_upper_bound(make_customer, make_campaign, now):
    campaign = make_campaign("reactivation", params={})
    make_customer(external_id="long-gone", last_purchase_at=now - dt.timedelta(days=3000))
    make_customer(external_id="recent", last_purchase_at=now - dt.timedelta(days=89))
    assert selected(campaign, now) == {"long-gone"}


def test_reactivation_reminds_again_after_a_new_purchase_lapses(make_customer, make_campaign, now):
    campaign = make_campaign("reactivation")
    customer = make_customer(external_id="lapser", last_purchase_at=now - dt.timedelta(days=100))
    assert selected(campaign, now) == {"lapser"}
    customer.last_purchase_at = now + dt.timedelta(days=1)
    customer.save()
    assert selected(campaign, now + dt.timedelta(days=90)) == set()
    assert selected(campaign, now + dt.timedelta(days=91)) == {"lapser"}


# --- birthday ---------------------------------------------------------------------------------------


def test_birthday_is_the_date_in_the_customers_own_time_zone(make_customer, make_campaign):
    campaign = make_campaign("birthday")
    now = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)  # already 11 March in Kiribati (UTC+14)
    make_customer(external_id="london-10", birth_date=dt.date(1990, 3, 10), timezone="Europe/London")
    make_customer(external_id="london-11", birth_date=dt.date(1990, 3, 11), timezone="Europe/London")
    make_customer(external_id="kiritimati-11", birth_date=dt.date(1985, 3, 11), timezone="Pacific/Kiritimati")
    make_customer(external_id="kiritimati-10", birth_date=dt.date(1985, 3, 10), timezone="Pacific/Kiritimati")
    make_customer(external_id="pago-10", birth_date=dt.date(2001, 3, 10), timezone="Pacific/Pago_Pago")
    make_customer(external_id="no-birthday", birth_date=None)
    assert selected(campaign, now) == {"london-10", "kiritimati-11", "pago-10"}


def test_birthday_starts_at_local_midnight_to_the_second(make_customer, make_campaign):
    make_customer(external_id="tokyo", birth_date=dt.date(1990, 3, 11), timezone="Asia/Tokyo")
    midnight_tokyo = dt.datetime(2026, 3, 11, 0, 0, tzinfo=tz("Asia/Tokyo"))
    assert selected(make_campaign("birthday"), midnight_tokyo - SECOND) == set()
    assert selected(make_campaign("birthday"), midnight_tokyo) == {"tokyo"}


def test_29_february_birthdays_count_on_28_february_in_other_years(make_customer, make_campaign):
    make_customer(external_id="leapling", birth_date=dt.date(2000, 2, 29), timezone="UTC")
    make_customer(external_id="28th", birth_date=dt.date(2000, 2, 28), timezone="UTC")
    make_customer(external_id="1st-march", birth_date=dt.date(2000, 3, 1), timezone="UTC")
    common_year = make_campaign("birthday")
    assert selected(common_year, dt.datetime(2027, 2, 28, 10, tzinfo=dt.UTC)) == {"leapling", "28th"}
    assert selected(common_year, dt.datetime(2027, 3, 1, 10, tzinfo=dt.UTC)) == {"1st-march"}
    leap_year = make_campaign("birthday")
    assert selected(leap_year, dt.datetime(2028, 2, 28, 10, tzinfo=dt.UTC)) == {"28th"}
    assert selected(leap_year, dt.datetime(2028, 2, 29, 10, tzinfo=dt.UTC)) == {"leapling"}


def test_birthday_days_before_and_one_message_per_year(make_customer, make_campaign):
    make_customer(external_id="ada", birth_date=dt.date(1990, 12, 10), timezone="UTC")
    campaign = make_campaign("birthday", params={"days_before": 7})
    assert selected(campaign, dt.datetime(2026, 12, 3, 9, tzinfo=dt.UTC)) == {"ada"}
    assert selected(campaign, dt.datetime(2026, 12, 3, 20, tzinfo=dt.UTC)) == set()
    assert selected(campaign, dt.datetime(2027, 12, 3, 9, tzinfo=dt.UTC)) == {"ada"}
    assert set(Message.objects.filter(campaign=campaign).values_list("dedupe_key", flat=True)) == {
        f"c:{Message.objects.first().customer_id}:year:2026",
        f"c:{Message.objects.first().customer_id}:year:2027",
    }


def test_possible_birthdays_cover_every_time_zone_and_add_29_february():
    assert possible_birthdays(dt.datetime(2026, 3, 10, 12, tzinfo=dt.UTC), 0) == [(3, 10), (3, 11)]
    assert (2, 29) in possible_birthdays(dt.datetime(2027, 2, 28, 12, tzinfo=dt.UTC), 0)


# --- welcome ----------------------------------------------------------------------------------------


def test_welcome_after_delay_hours_within_max_age_days(make_customer, make_campaign, now):
    campaign = make_campaign("welcome", params={"delay_hours": 2, "max_age_days": 7})
    make_customer(external_id="after-delay", created_at=now - dt.timedelta(hours=2))
    make_customer(external_id="too-new", created_at=now - dt.timedelta(hours=2) + SECOND)
    make_customer(external_id="seven-days", created_at=now - dt.timedelta(days=7))
    make_customer(external_id="too-old", created_at=now - dt.timedelta(days=7) - SECOND)
    assert selected(campaign, now) == {"after-delay", "seven-days"}
    assert selected(campaign, now + dt.timedelta(hours=1)) == {"too-new"}  # once per customer, ever


# --- post_purchase ----------------------------------------------------------------------------------


def test_post_purchase_window_is_one_day_ending_days_after_ago(make_customer, make_campaign, now):
    campaign = make_campaign("post_purchase", params={"days_after": 7})
    window_end, window_start = now - dt.timedelta(days=7), now - dt.timedelta(days=8)
    for external_id, placed_at, status in (
        ("at-end", window_end, "completed"),
        ("after-end", window_end + SECOND, "completed"),
        ("at-start", window_start, "completed"),
        ("before-start", window_start - SECOND, "completed"),
        ("refunded", window_end - dt.timedelta(hours=1), "refunded"),
    ):
        PurchaseFactory(customer=make_customer(external_id=external_id), placed_at=placed_at, status=status)
    assert selected(campaign, now) == {"at-end", "at-start"}
    message = Message.objects.get(campaign=campaign, customer__external_id="at-end")
    assert message.purchase is not None and message.dedupe_key == f"p:{message.purchase_id}"


# --- points_expiring ----------------------------------------------------------------------------------


def lot(customer, *, expires_at, points: int = 100, remaining: int | None = None, key: str = ""):
    return PointsEntry.objects.create(
        customer=customer,
        kind="earn",
        points=points,
        remaining=points if remaining is None else remaining,
        idempotency_key=key or f"test-lot:{customer.pk}:{expires_at.isoformat()}",
        expires_at=expires_at,
    )


def test_points_expiring_within_days_ahead_to_the_second(make_customer, make_campaign, now):
    campaign = make_campaign("points_expiring", params={"days_ahead": 14})
    lot(make_customer(external_id="last-second"), expires_at=now + dt.timedelta(days=14))
    lot(make_customer(external_id="one-second-late"), expires_at=now + dt.timedelta(days=14) + SECOND)
    lot(make_customer(external_id="expiring-now"), expires_at=now)
    lot(make_customer(external_id="next-second"), expires_at=now + SECOND)
    lot(make_customer(external_id="spent"), expires_at=now + dt.timedelta(days=3), remaining=0)
    assert selected(campaign, now) == {"last-second", "next-second"}
    message = Message.objects.get(campaign=campaign, customer__external_id="next-second")
    assert message.data["expiring_points"] == 100
    assert message.dedupe_key.endswith(":expiry:2026-03-10")


# --- churn_risk ---------------------------------------------------------------------------------------


def score(customer, risk: float) -> CustomerScore:
    return CustomerScore.objects.create(
        customer=customer,
        churn_risk=risk,
        churn_model="rhythm",
        recency_days=100,
        frequency=2,
        monetary=Decimal("80.00"),
        r_score=1,
        f_score=2,
        m_score=2,
        rfm_segment="At risk",
        computed_at=NOON,
    )


def test_churn_risk_at_or_above_the_threshold(make_customer, make_campaign, now):
    campaign = make_campaign("churn_risk", params={"threshold": 0.7})
    last = now - dt.timedelta(days=60)
    score(make_customer(external_id="at-threshold", last_purchase_at=last), 0.7)
    score(make_customer(external_id="above", last_purchase_at=last), 0.95)
    score(make_customer(external_id="below", last_purchase_at=last), 0.6999)
    make_customer(external_id="unscored", last_purchase_at=last)
    assert selected(campaign, now) == {"at-threshold", "above"}


# --- Everyone: consent, erasure, address ----------------------------------------------------------------


def test_every_trigger_needs_channel_consent_an_address_and_no_erasure(make_customer, make_campaign, now):
    campaign = make_campaign("reactivation")
    lapsed = now - dt.timedelta(days=100)
    make_customer(external_id="ok", last_purchase_at=lapsed)
    make_customer(external_id="sms-only", channels=("sms",), last_purchase_at=lapsed)
    make_customer(external_id="no-consent", channels=(), last_purchase_at=lapsed)
    revoked = make_customer(external_id="revoked", last_purchase_at=lapsed)
    Consent.objects.filter(customer=revoked).update(granted=False)
    make_customer(external_id="erased", last_purchase_at=lapsed, erased_at=now - dt.timedelta(days=1))
    make_customer(external_id="no-email", email="", last_purchase_at=lapsed)
    assert selected(campaign, now) == {"ok"}
    sms = make_campaign("reactivation", channel="sms", subject="")
    make_customer(external_id="sms-with-phone", channels=("sms",), phone="+4915112345678", last_purchase_at=lapsed)
    assert selected(sms, now) == {"sms-with-phone"}


# --- Audience ---------------------------------------------------------------------------------------


def test_audience_filters_compose_into_the_statement(make_customer, make_campaign, now):
    lapsed = now - dt.timedelta(days=100)
    gold = make_customer(
        external_id="gold-vip",
        tier="gold",
        tags=["vip"],
        total_spent=Decimal("2500.00"),
        last_purchase_at=lapsed,
        channels=("email", "sms"),
    )
    score(gold, 0.9)
    make_customer(
        external_id="gold-no-sms", tier="gold", tags=["vip"], total_spent=Decimal("2500.00"), last_purchase_at=lapsed
    )
    make_customer(
        external_id="bronze",
        tier="bronze",
        tags=["vip"],
        total_spent=Decimal("2500.00"),
        last_purchase_at=lapsed,
        channels=("email", "sms"),
    )
    make_customer(
        external_id="gold-blocked",
        tier="gold",
        tags=["vip", "blocked"],
        total_spent=Decimal("2500.00"),
        last_purchase_at=lapsed,
        channels=("email", "sms"),
    )
    make_customer(
        external_id="gold-cheap",
        tier="gold",
        tags=["vip"],
        total_spent=Decimal("99.99"),
        last_purchase_at=lapsed,
        channels=("email", "sms"),
    )
    campaign = make_campaign(
        "reactivation",
        audience={
            "tier": ["gold", "silver"],
            "tags": ["vip"],
            "exclude_tags": ["blocked"],
            "min_total_spent": "100.00",
            "max_total_spent": "5000",
            "consent": ["sms"],
        },
    )
    assert selected(campaign, now) == {"gold-vip"}
    by_segment = make_campaign("reactivation", audience={"rfm_segment": ["At risk"]})
    assert selected(by_segment, now) == {"gold-vip"}


@pytest.mark.parametrize(
    ("trigger", "params", "field"),
    [
        ("reactivation", {"inactive_days": 0}, "params.inactive_days"),
        ("reactivation", {"inactive_days": 90, "max_inactive_days": 60}, "params.max_inactive_days"),
        ("reactivation", {"inactive_days": "ninety"}, "params.inactive_days"),
        ("reactivation", {"delay_hours": 1}, "params.delay_hours"),
        ("abandoned_cart", {"delay_hours": -1}, "params.delay_hours"),
        ("birthday", {"days_before": 1.5}, "params.days_before"),
        ("welcome", {"delay_hours": 200, "max_age_days": 7}, "params.delay_hours"),
        ("post_purchase", {"days_after": True}, "params.days_after"),
        ("points_expiring", {"days_ahead": 1000}, "params.days_ahead"),
        ("churn_risk", {"threshold": 1.5}, "params.threshold"),
    ],
)
def test_invalid_parameters_are_refused_naming_the_field(trigger, params, field):
    with pytest.raises(ApplicationError) as refused:
        TRIGGERS[trigger].clean_params(params)
    assert field in refused.value.fields


def test_every_spec_trigger_is_registered_with_defaults():
    assert set(TRIGGERS) == {
        "abandoned_cart",
        "reactivation",
        "birthday",
        "welcome",
        "post_purchase",
        "points_expiring",
        "churn_risk",
    }
    assert TRIGGERS["reactivation"].resolve({}) == {"inactive_days": 90, "max_inactive_days": None}
    assert TRIGGERS["abandoned_cart"].resolve({})["delay_hours"] == 1
    assert TRIGGERS["points_expiring"].resolve({}) == {"days_ahead": 14}
    assert TRIGGERS["post_purchase"].resolve({}) == {"days_after": 7}
    assert TRIGGERS["welcome"].resolve({}) == {"delay_hours": 0, "max_age_days": 7}
    assert TRIGGERS["birthday"].resolve({}) == {"days_before": 0}


def test_the_trigger_choices_are_the_trigger_registry():
    """A trigger module without its ``Trigger`` choice (or a choice without its module) fails here,
    not when a campaign of it is first saved or evaluated."""
    assert list(Trigger.values) == list(TRIGGERS)
