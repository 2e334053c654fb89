"""A/B variants of a journey's message steps and the automatic winner (SPEC §4.1).

- a customer's variant is the stable hash of (campaign, customer, step): the same in SQL (entering
  and advancing) as in ``variant_for``, the same on every rerun and re-entry, spread by the weights;
- the winner rule (``winner_pick``) on constructed counts: no winner below ``min_per_variant``, none
  while p >= 0.05 against any other variant, one when the best beats each other with p < 0.05;
- ``winners_decide`` on sends and purchases in the database: decided once, figures kept, and new
  arrivals at the step get the winner; the report's figures (``variant_figures``) against a hand
  computation.
"""

import datetime as dt
from collections import Counter

import pytest
from django.core import mail
from django.db.models import F

from campaigns.journey import Step, Variant, journey_of
from campaigns.models import Message, VariantWinner
from campaigns.selectors import campaign_steps_report
from campaigns.services import campaign_evaluate, campaign_status_set, campaign_update, messages_send_batch
from campaigns.services.steps_sql import variant_for
from campaigns.services.winners import variant_counts, variant_figures, winner_pick, winners_decide
from customers.models import Consent, Customer
from customers.services.bulk import purchases_record_bulk
from tests.campaigns.conftest import NOON

pytestmark = pytest.mark.django_db
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
LAPSED = NOON - dt.timedelta(days=100)


def variants(*weights: tuple[str, int]) -> list[dict]:
    return [{"key": key, "weight": weight, "subject": f"Offer {key.upper()}", "body": "Hi"} for key, weight in weights]


def customers_bulk(count: int, prefix: str, last_purchase_at: dt.datetime | None = LAPSED) -> list[Customer]:
    customers = Customer.objects.bulk_create(
        [
            Customer(
                external_id=f"{prefix}-{i:05d}", email=f"{prefix}{i}@example.com", last_purchase_at=last_purchase_at
            )
            for i in range(count)
        ]
    )
    Consent.objects.bulk_create([Consent(customer=c, channel="email", granted=True, source="api") for c in customers])
    return customers


def variant_of_each(campaign, step_key: str) -> dict[int, str]:
    """customer id -> variant key of the step's messages (one per customer expected)."""
    rows = list(Message.objects.filter(campaign=campaign, step_key=step_key).values_list("customer_id", "variant_key"))
    assert len(rows) == len({customer for customer, _ in rows})
    return dict(rows)


# --- Assignment ------------------------------------------------------------------------------------


def test_variants_follow_the_stable_hash_and_their_weights_and_stay_on_reruns_and_reentry(make_campaign):
    customers = customers_bulk(2000, "ab")
    steps = [
        {"key": "intro", "type": "message", "variants": variants(("a", 1), ("b", 3))},
        {"key": "pause", "type": "wait", "minutes": 60},
        {"key": "offer", "type": "message", "variants": variants(("x", 1), ("y", 1), ("z", 2))},
    ]
    campaign = make_campaign("reactivation", steps=steps, reentry={"after_days": 0})
    journey = journey_of(campaign)
    campaign_evaluate(campaign_id=campaign.pk, now=NOON)  # "intro": planned by the entering statement
    campaign_evaluate(campaign_id=campaign.pk, now=NOON + HOUR)  # "offer": by advancing

    first = {key: variant_of_each(campaign, key) for key in ("intro", "offer")}
    for key, assigned in first.items():
        assert len(assigned) == 2000
        expected = {
            c.pk: variant_for(campaign_id=campaign.pk, step=journey.step(key), customer_id=c.pk) for c in customers
        }
        assert assigned == expected  # SQL and Python agree for every customer
    # The weights, roughly (5 standard deviations at n = 2000 is about +-0.05).
    shares = {key: {v: n / 2000 for v, n in Counter(assigned.values()).items()} for key, assigned in first.items()}
    assert shares["intro"] == {"a": pytest.approx(0.25, abs=0.05), "b": pytest.approx(0.75, abs=0.05)}
    assert shares["offer"] == {
        "x": pytest.approx(0.25, abs=0.05),
        "y": pytest.approx(0.25, abs=0.05),
        "z": pytest.approx(0.5, abs=0.05),
    }
    # Each step hashes on its own key: the two steps' assignments are not one and the same split.
    intro_a = {c for c, v in first["intro"].items() if v == "a"}
    assert 0.1 < sum(first["offer"][c] == "x" for c in intro_a) / len(intro_a) < 0.4

    # A rerun creates nothing; a second entry (each customer lapsed again) gets the same variants.
    assert campaign_evaluate(campaign_id=campaign.pk, now=NOON + 2 * HOUR).queued == 0
    Customer.objects.filter(pk__in=[c.pk for c in customers]).update(last_purchase_at=F("last_purchase_at") - DAY)
    assert campaign_evaluate(campaign_id=campaign.pk, now=NOON + 2 * DAY).queued == 2000
    campaign_evaluate(campaign_id=campaign.pk, now=NOON + 2 * DAY + HOUR)
    for key in ("intro", "offer"):
        second = Message.objects.filter(campaign=campaign, step_key=key, created_at__gte=NOON + 2 * DAY)
        assert dict(second.values_list("customer_id", "variant_key")) == first[key]


# --- The winner rule on constructed counts -----------------------------------------------------------


def step_with(*keys: str, min_per_variant: int | None = 500) -> Step:
    return Step(
        key="offer",
        type="message",
        variants=tuple(Variant(key=key, weight=1, subject="", body="Hi") for key in keys),
        min_per_variant=min_per_variant,
    )


def counts_of(**figures: tuple[int, int]) -> dict[tuple[str, str], tuple[int, int]]:
    return {("offer", key): sent_converted for key, sent_converted in figures.items()}


def test_no_winner_until_every_variant_has_min_per_variant_sends():
    step = step_with("a", "b")
    assert winner_pick(step, counts_of(a=(499, 40), b=(500, 100))) is None
    assert winner_pick(step, counts_of(b=(5000, 1000))) is None  # a variant with no sends at all
    assert winner_pick(step_with("a", "b", min_per_variant=None), counts_of(a=(500, 40), b=(500, 100))) is None


def test_no_winner_while_the_best_is_not_significantly_better_than_each_other():
    step = step_with("a", "b")
    # 58/500 against 40/500: z = 1.914, p = 0.0556 (by hand: pooled rate 0.098).
    assert winner_pick(step, counts_of(a=(500, 40), b=(500, 58))) is None
    assert winner_pick(step, counts_of(a=(500, 40), b=(500, 40))) is None  # a tie
    # Three variants: b beats a (p = 0.0048) but not c (80/500 against 75/500, p = 0.66).
    assert winner_pick(step_with("a", "b", "c"), counts_of(a=(500, 50), b=(500, 80), c=(500, 75))) is None


def test_a_winner_once_the_best_beats_each_other_variant_with_p_below_five_percent():
    # 59/500 against 40/500: p = 0.0442, just under the line.
    picked = winner_pick(step_with("a", "b"), counts_of(a=(500, 40), b=(500, 59)))
    assert picked is not None and picked["variant"] == "b"
    assert picked["figures"]["against"]["a"]["p_value"] == pytest.approx(0.04425, abs=1e-4)

    picked = winner_pick(step_with("a", "b", "c"), counts_of(a=(500, 50), b=(500, 80), c=(500, 45)))
    assert picked is not None
    assert picked["variant"] == "b"
    assert picked["figures"]["min_per_variant"] == 500
    assert picked["figures"]["variants"] == {
        "a": {"sent": 500, "converted": 50},
        "b": {"sent": 500, "converted": 80},
        "c": {"sent": 500, "converted": 45},
    }
    against = picked["figures"]["against"]
    assert set(against) == {"a", "c"}
    # b against a: 0.16 - 0.10; Wald SE sqrt(.16*.84/500 + .1*.9/500) = 0.021254; pooled 0.13, z = 2.821.
    assert against["a"] == {
        "uplift": pytest.approx(0.06),
        "ci_low": pytest.approx(0.018478, abs=1e-5),
        "ci_high": pytest.approx(0.101522, abs=1e-5),
        "p_value": pytest.approx(0.004789, abs=1e-5),
    }
    assert against["c"]["uplift"] == pytest.approx(0.07)
    assert against["c"]["p_value"] == pytest.approx(0.000818, abs=1e-5)


# --- Deciding on the database's sends and purchases ------------------------------------------------


AUTO = [
    {"key": "hello", "type": "message", "subject": "Hello", "body": "Hi"},
    {"key": "pause", "type": "wait", "minutes": 60},
    {
        "key": "offer",
        "type": "message",
        "variants": variants(("a", 1), ("b", 1)),
        "auto_winner": {"min_per_variant": 50},
    },
]


def buy(customers: list[Customer], at: dt.datetime, tag: str) -> None:
    results = purchases_record_bulk(
        raw_purchases=[
            {"external_id": f"{tag}-{c.pk}", "customer": c.external_id, "placed_at": at.isoformat(), "total": "25.00"}
            for c in customers
        ]
    )
    assert {r.status for r in results} == {"created"}


def test_the_winner_is_decided_once_on_sends_and_purchases_and_new_arrivals_get_it(make_campaign, settings):
    settings.STORE_CURRENCY = "USD"
    campaign = make_campaign("reactivation", steps=AUTO)
    step = journey_of(campaign).step("offer")
    # Exactly 100 customers of each variant (the hash picks; the test chooses whom to make eligible).
    pool = customers_bulk(320, "win", last_purchase_at=None)
    by_variant: dict[str, list[Customer]] = {"a": [], "b": []}
    for customer in pool:
        by_variant[variant_for(campaign_id=campaign.pk, step=step, customer_id=customer.pk)].append(customer)
    group_a, group_b = by_variant["a"][:100], by_variant["b"][:100]
    Customer.objects.filter(pk__in=[c.pk for c in group_a + group_b]).update(last_purchase_at=LAPSED)

    campaign_evaluate(campaign_id=campaign.pk, now=NOON)
    campaign_evaluate(campaign_id=campaign.pk, now=NOON + HOUR)
    messages_send_batch(campaign_id=campaign.pk, now=NOON + HOUR)
    assert variant_of_each(campaign, "offer") == {c.pk: "a" for c in group_a} | {c.pk: "b" for c in group_b}
    # Each one received its variant's text.
    subjects = {m.to[0]: m.subject for m in mail.outbox if m.subject != "Hello"}
    assert subjects == {c.email: "Offer A" for c in group_a} | {c.email: "Offer B" for c in group_b}

    # Enough sends, no difference yet: no winner.
    assert winners_decide(campaign=campaign, now=NOON + 2 * HOUR) == {}
    # 10 % of a's customers buy within the attribution window, 30 % of b's.
    buy(group_a[:10] + group_b[:30], NOON + 2 * HOUR, "first")

    figures = variant_figures(step, variant_counts(campaign=campaign, step_keys=["offer"]))
    # By hand: 0.30 - 0.10 = 0.20; Wald SE sqrt(.3*.7/100 + .1*.9/100) = 0.054772, so the 95 % CI
    # is 0.20 -+ 0.107353; pooled rate 0.2, SE sqrt(.2*.8*.02) = 0.056569, z = 3.5355, p = 0.000407.
    assert figures == [
        {"key": "a", "weight": 1, "sent": 100, "converted": 10, "conversion_rate": 0.1}
        | {"uplift": None, "ci_low": None, "ci_high": None, "p_value": None},
        {"key": "b", "weight": 1, "sent": 100, "converted": 30, "conversion_rate": 0.3}
        | {
            "uplift": pytest.approx(0.2),
            "ci_low": pytest.approx(0.092648, abs=1e-5),
            "ci_high": pytest.approx(0.307352, abs=1e-5),
            "p_value": pytest.approx(0.000407, abs=1e-5),
        },
    ]
    (offer_report,) = [row for row in campaign_steps_report(campaign=campaign) if row["key"] == "offer"]
    assert (offer_report["sent"], offer_report["converted"], offer_report["variants"]) == (200, 40, figures)

    decided_at = NOON + 3 * HOUR
    assert winners_decide(campaign=campaign, now=decided_at) == {"offer": "b"}
    winner = VariantWinner.objects.get(campaign=campaign, step_key="offer")
    assert (winner.variant_key, winner.decided_at) == ("b", decided_at)
    assert winner.figures["variants"] == {"a": {"sent": 100, "converted": 10}, "b": {"sent": 100, "converted": 30}}
    assert winner.figures["against"]["a"]["p_value"] == pytest.approx(0.000407, abs=1e-5)
    kept = winner.figures

    # Later a's customers buy a lot more: the decision stands, with the figures it was taken on.
    buy(group_a[10:70], NOON + 4 * HOUR, "later")
    assert winners_decide(campaign=campaign, now=NOON + 5 * HOUR) == {"offer": "b"}
    winner.refresh_from_db()
    assert (winner.variant_key, winner.decided_at, winner.figures) == ("b", decided_at, kept)

    # New arrivals at the step get the winner, whatever their hash says.
    newcomers = customers_bulk(60, "late")
    hashed = Counter(variant_for(campaign_id=campaign.pk, step=step, customer_id=c.pk) for c in newcomers)
    assert hashed["a"] > 0  # some would have had "a" without the winner
    campaign_evaluate(campaign_id=campaign.pk, now=NOON + DAY)
    campaign_evaluate(campaign_id=campaign.pk, now=NOON + DAY + HOUR)
    arrived = Message.objects.filter(campaign=campaign, step_key="offer", customer__in=newcomers)
    assert Counter(arrived.values_list("variant_key", flat=True)) == {"b": 60}
    # The customers who had "a" before keep their messages as they were.
    assert Counter(
        Message.objects.filter(customer__in=group_a, step_key="offer").values_list("variant_key", flat=True)
    ) == {"a": 100}


def test_a_winner_whose_variant_was_renamed_since_is_not_handed_out(make_campaign):
    customers = customers_bulk(40, "renamed")
    offer = {"key": "offer", "type": "message", "auto_winner": {"min_per_variant": 50}}
    campaign = make_campaign("reactivation", steps=[{**offer, "variants": variants(("a", 1), ("b", 1))}])
    VariantWinner.objects.create(campaign=campaign, step_key="offer", variant_key="b", decided_at=NOON)
    # A test's variants change only while the campaign is paused; its texts may change while it runs.
    campaign_status_set(campaign_id=campaign.pk, status="paused")
    campaign_update(campaign_id=campaign.pk, data={"steps": [{**offer, "variants": variants(("c", 1), ("d", 1))}]})
    campaign = campaign_status_set(campaign_id=campaign.pk, status="active")
    campaign_evaluate(campaign_id=campaign.pk, now=NOON)
    step = journey_of(campaign).step("offer")
    assigned = variant_of_each(campaign, "offer")
    assert assigned == {c.pk: variant_for(campaign_id=campaign.pk, step=step, customer_id=c.pk) for c in customers}
    assert set(assigned.values()) == {"c", "d"}
