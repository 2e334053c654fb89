"""Churn risk: the BG/NBD fit, the rhythm rule, the nightly set-based refresh and its readers."""

import datetime as dt
import math
from decimal import Decimal

import numpy as np
import pytest

from customers.models import Customer
from customers.services import purchase_refund
from metrics import rfm
from metrics.churn_risk import (
    MIN_FIT_CUSTOMERS,
    BgNbdParams,
    bgnbd_fit,
    bgnbd_log_likelihood,
    bgnbd_p_alive,
    churn_scores,
    customer_scores_refresh,
    purchase_summary,
    rhythm_risk,
)
from metrics.models import ChurnModel, CustomerScore
from metrics.periods import local_midnight
from metrics.selectors import (
    customer_scores,
    customers_in_rfm_segment,
    customers_with_churn_risk_at_least,
    stored_segment_sizes,
)
from retention_crm.errors import ApplicationError
from tests.metrics.conftest import bulk_history, buy, noon
from tests.metrics.simulate import bgnbd_histories

TRUE = BgNbdParams(r=0.6, alpha=40.0, a=0.8, b=2.5)
AS_OF = local_midnight(dt.date(2026, 6, 1))


@pytest.fixture(scope="module")
def simulated():
    return bgnbd_histories(customers=4000, **TRUE.__dict__, max_age_days=700, seed=7)


def test_the_fit_recovers_the_process_that_made_the_data(simulated):
    x, t_x, T = simulated
    fitted = bgnbd_fit(x, t_x, T)

    assert fitted is not None
    # Maximum likelihood: at least as likely as the truth, and close to it at this sample size.
    assert bgnbd_log_likelihood(fitted, x, t_x, T).sum() >= bgnbd_log_likelihood(TRUE, x, t_x, T).sum()
    for name in ("r", "alpha", "a", "b"):
        assert getattr(fitted, name) == pytest.approx(getattr(TRUE, name), rel=0.35), name


def test_p_alive_matches_the_closed_form_and_falls_with_silence():
    p = TRUE
    x, t_x, T = np.array([0, 3, 3, 3]), np.array([0, 60, 60, 60]), np.array([100, 70, 200, 400])
    alive = bgnbd_p_alive(p, x, t_x, T)

    expected = 1 / (1 + p.a / (p.b + 3 - 1) * ((p.alpha + 200) / (p.alpha + 60)) ** (p.r + 3))
    assert alive[2] == pytest.approx(expected)
    assert alive[0] == 1.0  # BG/NBD: no repeat purchase, no chance to have dropped out yet
    assert alive[1] > alive[2] > alive[3]


def test_the_log_likelihood_matches_the_paper_for_one_customer():
    p, x, t_x, T = TRUE, 2, 30.0, 60.0
    a1 = math.lgamma(p.r + x) - math.lgamma(p.r) + p.r * math.log(p.alpha)
    a2 = math.lgamma(p.a + p.b) + math.lgamma(p.b + x) - math.lgamma(p.b) - math.lgamma(p.a + p.b + x)
    a3 = (p.alpha + T) ** -(p.r + x)
    a4 = p.a / (p.b + x - 1) * (p.alpha + t_x) ** -(p.r + x)
    assert bgnbd_log_likelihood(p, np.array([x]), np.array([t_x]), np.array([T]))[0] == pytest.approx(
        a1 + a2 + math.log(a3 + a4)
    )


def test_rhythm_rule_measures_silence_in_usual_intervals():
    # Every 10 days: silent 10 days (on time), 20 (one interval late), 40 (three intervals); one-timer.
    x, t_x, T = np.array([3, 3, 3, 0]), np.array([30, 30, 30, 0]), np.array([40, 50, 70, 45])
    assert rhythm_risk(x, t_x, T, usual_interval=30.0).tolist() == [0.0, 0.5, 1.0, 0.25]


def test_small_shops_use_the_rhythm_rule_for_everyone():
    x, t_x, T = np.array([2, 0, 1]), np.array([20, 0, 5]), np.array([30, 10, 50])
    scores = churn_scores(x, t_x, T)
    assert scores.params is None
    assert not scores.uses_bgnbd.any()
    assert np.isnan(scores.p_alive).all()


def test_large_shops_use_bgnbd_for_repeat_buyers_and_the_rule_for_one_timers(simulated):
    x, t_x, T = simulated
    scores = churn_scores(x, t_x, T)
    assert scores.params is not None
    repeaters = x > 0
    assert (scores.uses_bgnbd == repeaters).all()
    assert np.allclose(scores.churn_risk[repeaters], 1 - scores.p_alive[repeaters])
    assert np.isnan(scores.p_alive[~repeaters]).all()
    assert ((scores.churn_risk >= 0) & (scores.churn_risk <= 1)).all()


# --- The nightly refresh, on PostgreSQL -------------------------------------------------------


@pytest.mark.django_db
def test_summary_rows_count_purchase_days_like_lifetimes():
    buy("ann", noon(dt.date(2026, 5, 1)))
    buy("ann", noon(dt.date(2026, 5, 1)) + dt.timedelta(hours=3))  # the same day: one period
    buy("ann", noon(dt.date(2026, 5, 21)))
    buy("bob", noon(dt.date(2026, 5, 30)))

    summary = purchase_summary(as_of=AS_OF)

    ann, bob = Customer.objects.get(external_id="ann").pk, Customer.objects.get(external_id="bob").pk
    rows = dict(
        zip(summary.customer_id.tolist(), zip(summary.frequency, summary.recency, summary.T, strict=True), strict=True)
    )
    assert rows[ann] == (1, 20, 31)
    assert rows[bob] == (0, 0, 2)


@pytest.mark.django_db
def test_refresh_stores_scores_for_every_buyer(django_assert_max_num_queries):
    buy("steady", noon(dt.date(2026, 4, 1)))
    buy("steady", noon(dt.date(2026, 4, 21)))
    buy("steady", noon(dt.date(2026, 5, 11)))
    buy("steady", noon(dt.date(2026, 5, 31)))  # every 20 days, bought yesterday
    buy("lapsed", noon(dt.date(2025, 10, 1)))
    buy("lapsed", noon(dt.date(2025, 10, 11)))  # every 10 days, silent for 7 months
    Customer.objects.create(external_id="never-bought")

    with django_assert_max_num_queries(6):
        result = customer_scores_refresh(as_of=AS_OF)

    assert result.customers == 2 and result.params is None
    steady = CustomerScore.objects.get(customer__external_id="steady")
    lapsed = CustomerScore.objects.get(customer__external_id="lapsed")
    assert (steady.churn_risk, steady.churn_model, steady.p_alive) == (0.0, ChurnModel.RHYTHM, None)
    assert lapsed.churn_risk == 1.0
    assert (steady.frequency, steady.monetary, steady.recency_days) == (4, Decimal("200.00"), 1)
    assert steady.rfm_segment == rfm.segment_of(steady.r_score, steady.f_score, steady.m_score)
    assert not CustomerScore.objects.filter(customer__external_id="never-bought").exists()


@pytest.mark.django_db
def test_refresh_is_an_upsert_and_drops_customers_without_purchases():
    buy("kept", noon(dt.date(2026, 5, 1)))
    refunded = buy("refunded", noon(dt.date(2026, 5, 2)))
    customer_scores_refresh(as_of=AS_OF)
    purchase_refund(external_id=refunded.external_id)

    customer_scores_refresh(as_of=AS_OF + dt.timedelta(days=1))

    assert list(CustomerScore.objects.values_list("customer__external_id", flat=True)) == ["kept"]
    assert CustomerScore.objects.get().computed_at == AS_OF + dt.timedelta(days=1)


@pytest.mark.django_db
def test_refresh_fits_bgnbd_on_a_shop_big_enough(simulated):
    x, t_x, T = (array[: MIN_FIT_CUSTOMERS + 100] for array in simulated)
    today = AS_OF.date()
    history = []
    for n, (repeats, recency, age) in enumerate(zip(x.tolist(), t_x.tolist(), T.tolist(), strict=True)):
        first = today - dt.timedelta(days=age)
        days = sorted({0, recency, *np.linspace(0, recency, repeats + 1).round().astype(int).tolist()})
        history += [(f"sim-{n:04d}", noon(first + dt.timedelta(days=d)), Decimal("20.00")) for d in days]
    bulk_history(history)

    result = customer_scores_refresh(as_of=AS_OF)

    assert result.params is not None
    assert result.bgnbd_customers == CustomerScore.objects.filter(churn_model=ChurnModel.BGNBD).count() > 0
    for score in CustomerScore.objects.filter(churn_model=ChurnModel.BGNBD)[:20]:
        assert score.churn_risk == pytest.approx(1 - score.p_alive)


@pytest.mark.django_db
def test_readers_for_the_360_and_audiences(django_assert_num_queries):
    buy("steady", noon(dt.date(2026, 5, 11)))
    buy("steady", noon(dt.date(2026, 5, 31)))
    buy("lapsed", noon(dt.date(2025, 10, 1)))
    buy("lapsed", noon(dt.date(2025, 10, 11)))
    customer_scores_refresh(as_of=AS_OF)
    steady = Customer.objects.get(external_id="steady")

    with django_assert_num_queries(1):
        scores = customer_scores(steady)
    assert scores is not None and scores.churn_risk == 0.0 and scores.rfm_segment in rfm.SEGMENTS
    assert customer_scores(Customer.objects.create(external_id="nobody")) is None

    assert list(customers_with_churn_risk_at_least(0.9).values_list("external_id", flat=True)) == ["lapsed"]
    assert customers_with_churn_risk_at_least(0).count() == 2
    segment = scores.rfm_segment
    assert "steady" in customers_in_rfm_segment(segment).values_list("external_id", flat=True)
    assert sum(stored_segment_sizes().counts.values()) == 2
    with pytest.raises(ApplicationError):
        customers_with_churn_risk_at_least(1.5)
    with pytest.raises(ApplicationError):
        customers_in_rfm_segment("Whales")


@pytest.mark.django_db
def test_the_customer_serializer_wiring_proposed_to_the_lead():
    """The two fields the 360 needs, as proposed for customers/serializers.py: read from the
    one-to-one ``score`` row, null for a customer without one."""
    from rest_framework import serializers

    from customers.serializers import CustomerSerializer

    class WithScores(CustomerSerializer):
        rfm_segment = serializers.CharField(source="score.rfm_segment", allow_null=True, default=None)
        churn_risk = serializers.FloatField(source="score.churn_risk", allow_null=True, default=None)

    buy("lapsed", noon(dt.date(2025, 10, 1)))
    buy("lapsed", noon(dt.date(2025, 10, 11)))
    customer_scores_refresh(as_of=AS_OF)
    lapsed = Customer.objects.select_related("score").get(external_id="lapsed")
    fresh = Customer.objects.create(external_id="fresh")

    assert WithScores(lapsed).data["churn_risk"] == 1.0
    assert WithScores(lapsed).data["rfm_segment"] in rfm.SEGMENTS
    assert (WithScores(fresh).data["churn_risk"], WithScores(fresh).data["rfm_segment"]) == (None, None)
