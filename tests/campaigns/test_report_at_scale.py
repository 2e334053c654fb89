"""The campaign report from the kept figures (campaigns/outcome_sql.py) against the live
computation (``campaign_report_live`` and friends), over generated histories: messages sent and
held out before and after purchases, purchases on the edges of the attribution window and of the
30/90-day checkpoints, refunds, cancels, moved and deleted purchases, bounces, callbacks, a new
attribution window, several campaigns for one customer, compactions in between; plus the kept rows
against a rebuild from scratch, and the number of statements a report runs.

Each example runs inside a savepoint that is rolled back.
"""

import datetime as dt
import itertools
from decimal import Decimal
from unittest import mock

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from campaigns.attribution import purchases_attribute
from campaigns.models import Campaign, Message, MessageCount, MessageOutcome, ReportTotal
from campaigns.outcome_sql import BACKFILL
from campaigns.selectors import (
    campaign_impact,
    campaign_impact_live,
    campaign_list_figures,
    campaign_list_figures_live,
    campaign_report,
    campaign_report_live,
    campaign_steps_report,
    campaign_steps_report_live,
    report_outcomes,
)
from campaigns.services.winners import variant_counts
from customers.models import Customer, PointsEntry, Purchase
from tests.metrics.conftest import buy

pytestmark = pytest.mark.django_db

# The application's clock, frozen for both paths; near the database's (compaction reads it).
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
DAY = 24 * 3600
CUSTOMERS = ["k0", "k1", "k2", "k3"]
PROPERTY_SETTINGS = hypothesis_settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True, database=None
)
_keys = itertools.count(1)

# Seconds before NOW: often right on a checkpoint (30 or 90 days ago, give or take a second or a
# minute: the minute a report counts live), otherwise anywhere in the last 130 days.
AGO = st.one_of(
    st.sampled_from([30 * DAY, 30 * DAY - 1, 30 * DAY + 1, 30 * DAY + 59, 90 * DAY, 90 * DAY - 30, 90 * DAY + 61]),
    st.integers(0, 130 * DAY),
)
message = st.tuples(
    st.just("message"),
    st.sampled_from(CUSTOMERS),
    st.integers(0, 1),  # campaign
    st.sampled_from(["sent", "delivered", "clicked", "held_out", "held_out", "suppressed", "failed"]),
    AGO,
    st.sampled_from(["", "a", "b"]),  # variant
)
# A purchase anywhere, or placed relative to an earlier message's touch: on it, a second before,
# on its window's end or just before, on the edges of the 90 days before each checkpoint, or later.
purchase = st.tuples(
    st.just("purchase"),
    st.sampled_from(CUSTOMERS),
    st.one_of(AGO, st.integers(130 * DAY, 200 * DAY)),
    st.sampled_from(["completed", "completed", "completed", "refunded", "cancelled"]),
    st.integers(0, 9999),  # cents
)
near = st.tuples(
    st.just("near"),
    st.integers(0, 100),  # which earlier message
    st.sampled_from(
        ["on", "before", "window_end", "window_end_before", "later", "cp30_from", "cp30_end", "cp90_end", "cp90_before"]
    ),
    st.integers(1, 9999),
)
single = st.tuples(st.just("single"), st.sampled_from(CUSTOMERS), AGO)  # through purchase_record
change = st.tuples(
    st.sampled_from(["refund", "cancel", "move", "move_customer", "delete", "bounce", "open", "window", "compact"]),
    st.integers(0, 100),
    st.integers(-10, 10),
)


def make_campaigns(windows: tuple[int, int]) -> list[Campaign]:
    return [
        Campaign.objects.create(name=f"c{n}", trigger="reactivation", body="hi", attribution_days=days)
        for n, days in enumerate(windows)
    ]


def write(events: list[tuple], campaigns: list[Campaign]) -> None:
    """The events in the order drawn; consecutive purchases go in one multi-row INSERT."""
    Customer.objects.bulk_create([Customer(external_id=name) for name in CUSTOMERS], ignore_conflicts=True)
    ids = dict(Customer.objects.filter(external_id__in=CUSTOMERS).values_list("external_id", "pk"))
    messages: list[Message] = []
    pending: list[Purchase] = []

    def flush() -> None:
        if pending:
            Purchase.objects.bulk_create(pending)
            purchases_attribute(purchase_ids=[p.pk for p in pending])  # as the purchase path does
            pending.clear()

    for index, event in enumerate(events):
        # A microsecond per event: no two touches of one customer at the same instant.
        tick = dt.timedelta(microseconds=index)
        kind = event[0]
        if kind == "message":
            flush()
            _, name, campaign, status, ago, variant = event
            at = NOW - dt.timedelta(seconds=ago) + tick
            messages.append(
                Message.objects.create(
                    campaign=campaigns[campaign],
                    customer_id=ids[name],
                    channel="email",
                    dedupe_key=f"d{next(_keys)}",
                    status=status,
                    variant_key=variant,
                    reason="no_consent" if status == "suppressed" else "",
                    scheduled_at=at,
                    send_at=at,
                    sent_at=at if status in ("sent", "delivered", "clicked") else None,
                    touched_at=None if status in ("suppressed", "failed") else at,
                )
            )
        elif kind == "single":
            flush()
            buy(event[1], NOW - dt.timedelta(seconds=event[2]) + tick)
        else:
            if kind == "purchase":
                _, name, ago, status, cents = event
                customer_id, placed_at = ids[name], NOW - dt.timedelta(seconds=ago) + tick
            else:
                if not messages:
                    continue
                _, which, where, cents = event
                status = "completed"
                target = messages[which % len(messages)]
                window = dt.timedelta(days=target.campaign.attribution_days)
                touched = target.scheduled_at
                customer_id = target.customer_id
                placed_at = {
                    "on": touched,
                    "before": touched - dt.timedelta(seconds=1),
                    "window_end": touched + window,
                    "window_end_before": touched + window - dt.timedelta(microseconds=1),
                    "later": touched + dt.timedelta(days=cents % 40),
                    "cp30_from": touched - dt.timedelta(days=60),  # the first instant counted at +30 days
                    "cp30_end": touched + dt.timedelta(days=30),  # counted at +90, not at +30
                    "cp90_end": touched + dt.timedelta(days=90),  # counted at neither
                    "cp90_before": touched + dt.timedelta(days=90, microseconds=-1),
                }[where]
            pending.append(
                Purchase(
                    external_id=f"rs-{next(_keys):08d}",
                    customer_id=customer_id,
                    placed_at=placed_at,
                    total=Decimal(cents) / 100,
                    currency=settings.STORE_CURRENCY,
                    status=status,
                    content_digest="test",
                )
            )
    flush()


def apply(changes: list[tuple[str, int, int]], campaigns: list[Campaign]) -> None:
    purchases = list(Purchase.objects.order_by("pk").values_list("pk", flat=True))
    messages = list(Message.objects.order_by("pk").values_list("pk", flat=True))
    customers = list(Customer.objects.order_by("pk").values_list("pk", flat=True))
    for kind, n, shift in changes:
        if kind == "compact":
            compact(campaigns)
        elif kind == "window":
            campaign = campaigns[n % len(campaigns)]
            campaign.attribution_days = max(1, min(365, campaign.attribution_days + shift))
            campaign.save(update_fields=["attribution_days"])
        elif kind in ("bounce", "open") and messages:
            rows = Message.objects.filter(pk=messages[n % len(messages)])
            if kind == "bounce":  # as a hard bounce: failed, no window any more
                rows.filter(status__in=["sent", "delivered", "clicked"]).update(status="failed", touched_at=None)
            else:
                rows.filter(status__in=["sent", "delivered"]).update(status="opened")
        elif purchases:
            pk = purchases[n % len(purchases)]
            rows = Purchase.objects.filter(pk=pk)
            if kind in ("refund", "cancel"):
                rows.update(status="refunded" if kind == "refund" else "cancelled")
            elif kind == "move":
                rows.update(placed_at=rows.get().placed_at + dt.timedelta(days=shift, hours=shift))
            elif kind == "move_customer":
                rows.update(customer_id=customers[n % len(customers)])
            elif not PointsEntry.objects.filter(purchase_id=pk).exists():  # the ledger keeps its purchases
                rows.delete()
                purchases.remove(pk)


def compact(campaigns: list[Campaign]) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT campaigns_report_compact(%s)", [[c.pk for c in campaigns]])


def kept_rows() -> tuple[list, list, list]:
    """The outcome rows, and the totals and counts folded to one row per key."""
    outcomes = list(MessageOutcome.objects.order_by("message_id").values())
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT campaign_id, treated, step_key, variant_key, touched_minute, sum(customers), sum(converted),"
            " sum(revenue), sum(attributed_purchases), sum(attributed_revenue), sum(first_members), sum(active_30),"
            " sum(active_90), sum(sent), sum(sent_converted) FROM campaigns_reporttotal GROUP BY 1, 2, 3, 4, 5"
            " HAVING (sum(customers), sum(converted), sum(revenue), sum(attributed_purchases),"
            " sum(attributed_revenue), sum(first_members), sum(active_30), sum(active_90), sum(sent),"
            " sum(sent_converted)) <> (0, 0, 0, 0, 0, 0, 0, 0, 0, 0) ORDER BY 1, 2, 3, 4, 5"
        )
        totals = cursor.fetchall()
        cursor.execute(
            "SELECT campaign_id, status, reason, step_key, sum(messages) FROM campaigns_messagecount"
            " GROUP BY 1, 2, 3, 4 HAVING sum(messages) <> 0 ORDER BY 1, 2, 3, 4"
        )
        counts = cursor.fetchall()
    return outcomes, totals, counts


def rebuilt_rows() -> tuple[list, list, list]:
    """The same, recomputed from scratch as the migration fills them."""
    MessageOutcome.objects.all().delete()
    ReportTotal.objects.all().delete()
    MessageCount.objects.all().delete()
    with connection.cursor() as cursor:
        cursor.execute(BACKFILL)
    return kept_rows()


def assert_kept_equals_live(campaigns: list[Campaign]) -> None:
    ids = [c.pk for c in campaigns]
    assert campaign_list_figures(campaign_ids=ids) == campaign_list_figures_live(campaign_ids=ids)
    for campaign in campaigns:
        campaign.refresh_from_db()
        assert campaign_report(campaign=campaign) == campaign_report_live(campaign=campaign)
        assert campaign_impact(campaign=campaign) == campaign_impact_live(campaign=campaign)
        assert campaign_steps_report(campaign=campaign) == campaign_steps_report_live(campaign=campaign)
        # Variants (journeys' A/B figures): every step and variant, against the live statement.
        live_variants = variant_counts(campaign=campaign, step_keys=["message"])
        kept = {key: figures for key, figures in report_outcomes(campaign=campaign).variants.items() if figures[0]}
        assert kept == live_variants


@PROPERTY_SETTINGS
@given(
    windows=st.tuples(st.integers(1, 10), st.integers(1, 10)),
    events=st.lists(st.one_of(message, message, purchase, purchase, near, single), max_size=24),
    changes=st.lists(change, max_size=6),
)
def test_the_kept_report_equals_the_live_one(windows, events, changes):
    with mock.patch("django.utils.timezone.now", return_value=NOW), transaction.atomic():
        campaigns = make_campaigns(windows)
        write(events, campaigns)
        assert_kept_equals_live(campaigns)
        apply(changes, campaigns)
        assert_kept_equals_live(campaigns)
        compact(campaigns)
        assert_kept_equals_live(campaigns)
        kept = kept_rows()
        assert rebuilt_rows() == kept  # kept current = recomputed from scratch
        transaction.set_rollback(True)


def sent(campaign: Campaign, customer: Customer, *, ago_days: float, status: str = "sent") -> Message:
    at = NOW - dt.timedelta(days=ago_days)
    return Message.objects.create(
        campaign=campaign,
        customer=customer,
        channel="email",
        dedupe_key=f"d{next(_keys)}",
        status=status,
        scheduled_at=at,
        send_at=at,
        sent_at=None if status == "held_out" else at,
        touched_at=at,
    )


def test_a_checkpoint_counts_from_the_instant_it_comes_within_its_minute(db):
    """Members whose 30-day checkpoint comes during the current minute: counted by their second."""
    (campaign,) = make_campaigns((7,))
    customers = [Customer.objects.create(external_id=f"e{n}") for n in range(3)]
    for customer, seconds in zip(customers, (-20, 0, 20), strict=True):  # checkpoint 20 s ago, now, in 20 s
        sent(campaign, customer, ago_days=30 + seconds / DAY)
        buy(customer.external_id, NOW - dt.timedelta(days=1))
    with mock.patch("django.utils.timezone.now", return_value=NOW):
        impact = campaign_impact(campaign=campaign)
        assert impact == campaign_impact_live(campaign=campaign)
    assert impact["treated"]["still_active"]["30d"] == {"customers": 2, "share": 1.0}


def test_revenue_in_two_windows_of_one_customer_counts_once_and_each_group_counts_its_own(db):
    (campaign,) = make_campaigns((10,))
    both = Customer.objects.create(external_id="both")
    sent(campaign, both, ago_days=20)
    sent(campaign, both, ago_days=15)
    sent(campaign, both, ago_days=14, status="held_out")
    buy("both", NOW - dt.timedelta(days=13), total="30.00")  # in all three windows
    buy("both", NOW - dt.timedelta(days=3), total="5.00")  # in none
    impact = campaign_impact(campaign=campaign)
    assert impact == campaign_impact_live(campaign=campaign)
    assert (impact["treated"]["customers"], impact["treated"]["converted"], impact["treated"]["revenue"]) == (
        1,
        1,
        "30.00",
    )
    assert (impact["control"]["customers"], impact["control"]["revenue"]) == (1, "30.00")


def test_a_refund_takes_the_conversion_back_and_a_new_window_moves_it(db):
    (campaign,) = make_campaigns((3,))
    customer = Customer.objects.create(external_id="r")
    sent(campaign, customer, ago_days=10)
    purchase = buy("r", NOW - dt.timedelta(days=5), total="12.34")  # outside 3 days, inside 6
    assert campaign_impact(campaign=campaign)["treated"]["converted"] == 0
    campaign.attribution_days = 6
    campaign.save(update_fields=["attribution_days"])
    assert campaign_impact(campaign=campaign)["treated"]["revenue"] == "12.34"
    Purchase.objects.filter(pk=purchase.pk).update(status="refunded")
    impact = campaign_impact(campaign=campaign)
    assert (impact["treated"]["converted"], impact["treated"]["revenue"]) == (0, "0.00")
    assert impact == campaign_impact_live(campaign=campaign)


def test_the_report_runs_the_same_five_statements_whatever_the_campaign_size(db):
    small, large = make_campaigns((7, 7))
    for n in range(30):
        customer = Customer.objects.create(external_id=f"q{n}")
        sent(large, customer, ago_days=40 + n, status="held_out" if n % 5 == 0 else "sent")
        buy(customer.external_id, NOW - dt.timedelta(days=39 + n))
    sent(small, Customer.objects.get(external_id="q0"), ago_days=2)

    def statements(campaign: Campaign) -> int:
        with CaptureQueriesContext(connection) as captured:
            campaign_report(campaign=campaign)
        return len(captured)

    assert statements(small) == statements(large) == 5
    with CaptureQueriesContext(connection) as captured:
        impact = campaign_impact(campaign=large)
    assert len(captured) == 1  # the dashboard's impact per campaign: one statement
    assert impact["treated"]["converted"] == 24 and impact["control"]["customers"] == 6


def test_the_checkpoints_read_the_90_days_before_them_edges_included_or_not(db):
    """Active at +N days: a completed purchase in [touched + N - 90 days, touched + N days)."""
    (campaign,) = make_campaigns((7,))
    touched = 100
    placed = {
        "from30": dt.timedelta(days=-60),  # the first instant counted at +30; before +90's days
        "end30": dt.timedelta(days=30),  # the end of +30's days (not counted), inside +90's
        "end90": dt.timedelta(days=90, microseconds=-1),  # the last instant counted at +90
        "none": dt.timedelta(days=-60, microseconds=-1),  # just before +30's days: counted nowhere
    }
    for name, offset in placed.items():
        customer = Customer.objects.create(external_id=name)
        sent(campaign, customer, ago_days=touched)
        buy(name, NOW - dt.timedelta(days=touched) + offset)
    with mock.patch("django.utils.timezone.now", return_value=NOW):
        impact = campaign_impact(campaign=campaign)
        assert impact == campaign_impact_live(campaign=campaign)
    assert impact["treated"]["still_active"] == {
        "30d": {"customers": 4, "share": 0.25},
        "90d": {"customers": 4, "share": 0.5},
    }


def test_truncating_the_purchases_rebuilds_what_is_kept(db):
    (campaign,) = make_campaigns((7,))
    for n in range(3):
        customer = Customer.objects.create(external_id=f"t{n}")
        sent(campaign, customer, ago_days=5 + n, status="held_out" if n == 2 else "sent")
        buy(customer.external_id, NOW - dt.timedelta(days=4))
    assert campaign_impact(campaign=campaign)["treated"]["converted"] == 2
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the test's transaction: no pending checks
        cursor.execute("TRUNCATE customers_purchase CASCADE")  # the messages name purchases: they go too
    assert campaign_report(campaign=campaign) == campaign_report_live(campaign=campaign)
    assert not MessageOutcome.objects.exists() and not Message.objects.exists()
