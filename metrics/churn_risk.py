"""Churn risk per customer from their own purchase rhythm (SPEC §5), refreshed nightly.

The model, in plain words (docs/METRICS.md has the worked example):

* Each customer's history is summarised as BG/NBD does it, in store-calendar days: ``x`` repeat
  purchase days (distinct days with a completed purchase, minus the first), ``t_x`` days from the
  first to the last purchase day, ``T`` days from the first purchase day to today.
* BG/NBD (Fader, Hardie & Lee 2005): while alive a customer buys at a Poisson rate
  lambda ~ Gamma(r, alpha); after each repeat purchase they drop out with probability p ~ Beta(a, b).
  The four parameters are fitted by maximum likelihood on the shop's own customers, and
  ``churn_risk = 1 - P(alive | x, t_x, T)``. A customer who keeps to their rhythm scores near 0;
  one whose silence is long compared with how often they used to buy scores near 1.
* BG/NBD lets customers drop out only after a repeat purchase, so it rates every one-time buyer
  alive. For them, and for every customer of a shop too small to fit (fewer than
  ``MIN_FIT_CUSTOMERS`` buyers or ``MIN_FIT_REPEAT_CUSTOMERS`` repeat buyers, or a fit that does
  not converge), the rhythm rule scores instead: with ``d`` days since the last purchase and ``i``
  the customer's usual interval (``t_x / x``; for one-time buyers the shop's median interval),
  ``churn_risk = clamp((d / i - 1) / (LATE_FACTOR - 1), 0, 1)``: 0 while on time, 1 at
  ``LATE_FACTOR`` intervals of silence, linear between.

Everything per customer is vectorised with numpy over rows fetched in one query; nothing loops
over customers in Python or issues a query per customer.
"""

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db import connection, transaction
from django.utils import timezone

from metrics.models import ChurnModel, CustomerScore
from metrics.periods import store_tz
from metrics.retention import completed_purchases
from metrics.rfm import scored_sql
from metrics.rfm_stored import store_sql

logger = logging.getLogger(__name__)

MIN_FIT_CUSTOMERS = 200
MIN_FIT_REPEAT_CUSTOMERS = 30
LATE_FACTOR = 3.0
DEFAULT_INTERVAL_DAYS = 90.0  # the usual interval when a shop has no repeat buyer at all
LOG_PARAM_BOUNDS = (-12.0, 12.0)  # e^±12: far beyond any plausible rate, scale or shape


@dataclass(frozen=True)
class BgNbdParams:
    r: float
    alpha: float
    a: float
    b: float

    def as_array(self) -> np.ndarray:
        return np.array([self.r, self.alpha, self.a, self.b])


def bgnbd_log_likelihood(params: BgNbdParams, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Each customer's log-likelihood under BG/NBD (Fader, Hardie & Lee 2005, eq. 6)."""
    from scipy import special  # imported where used: scipy adds ~2 s to every process's start

    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    x = np.asarray(x, dtype=float)
    repeat = x > 0
    ln_a1 = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
    ln_a2 = special.gammaln(a + b) + special.gammaln(b + x) - special.gammaln(b) - special.gammaln(a + b + x)
    ln_a3 = -(r + x) * np.log(alpha + T)
    # The dropout term exists only after a repeat purchase; b + x - 1 > 0 where it is used.
    ln_a4 = np.log(a) - np.log(b + np.maximum(x, 1) - 1) - (r + x) * np.log(alpha + t_x)
    ln_likelihood: np.ndarray = ln_a1 + ln_a2 + np.where(repeat, np.logaddexp(ln_a3, ln_a4), ln_a3)
    return ln_likelihood


def bgnbd_p_alive(params: BgNbdParams, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """P(alive | x, t_x, T); 1 for customers without a repeat purchase, as the model has it."""
    from scipy import special

    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    x = np.asarray(x, dtype=float)
    log_odds_dead = np.log(a) - np.log(b + np.maximum(x, 1) - 1) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
    return np.where(x > 0, special.expit(-log_odds_dead), 1.0)


def bgnbd_fit(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> BgNbdParams | None:
    """Maximum-likelihood parameters, or None when the optimiser does not find a proper optimum.

    Identical (x, t_x, T) rows are fitted once with a weight, which shrinks the work a lot for
    shops where many customers share a history shape.
    """
    rows, weights = np.unique(np.column_stack([x, t_x, T]).astype(float), axis=0, return_counts=True)
    ux, ut, uT = rows[:, 0], rows[:, 1], rows[:, 2]
    total = weights.sum()

    def negative_mean_ll(log_params: np.ndarray) -> float:
        params = BgNbdParams(*np.exp(log_params))
        value = -(weights * bgnbd_log_likelihood(params, ux, ut, uT)).sum() / total
        return float(value) if np.isfinite(value) else 1e12

    from scipy import optimize

    start = np.log([1.0, max(float(np.mean(T)), 1.0), 1.0, 1.0])
    result = optimize.minimize(negative_mean_ll, start, method="L-BFGS-B", bounds=[LOG_PARAM_BOUNDS] * 4)
    low, high = LOG_PARAM_BOUNDS
    at_bound = np.any(np.isclose(result.x, low, atol=1e-3)) or np.any(np.isclose(result.x, high, atol=1e-3))
    if not np.all(np.isfinite(result.x)) or result.fun >= 1e12 or at_bound:
        logger.warning("metrics.bgnbd_fit_failed", extra={"message_text": result.message, "rows": int(total)})
        return None
    return BgNbdParams(*np.exp(result.x))


def rhythm_risk(x: np.ndarray, t_x: np.ndarray, T: np.ndarray, usual_interval: float) -> np.ndarray:
    """The fallback rule: silence measured in the customer's own usual intervals."""
    x = np.asarray(x, dtype=float)
    interval = np.where(x > 0, t_x / np.maximum(x, 1), usual_interval)
    interval = np.maximum(interval, 1.0)
    silence = np.asarray(T, dtype=float) - t_x
    risk: np.ndarray = np.clip((silence / interval - 1.0) / (LATE_FACTOR - 1.0), 0.0, 1.0)
    return risk


def shop_usual_interval(x: np.ndarray, t_x: np.ndarray) -> float:
    repeaters = np.asarray(x) > 0
    if not repeaters.any():
        return DEFAULT_INTERVAL_DAYS
    return float(np.median(np.asarray(t_x)[repeaters] / np.asarray(x)[repeaters]))


@dataclass(frozen=True)
class ChurnScores:
    churn_risk: np.ndarray
    p_alive: np.ndarray  # NaN where the rhythm rule scored
    uses_bgnbd: np.ndarray
    params: BgNbdParams | None


def churn_scores(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> ChurnScores:
    """Churn risk for every row: BG/NBD where it is fitted and informative, the rhythm rule elsewhere."""
    x, t_x, T = (np.asarray(a, dtype=float) for a in (x, t_x, T))
    repeaters = x > 0
    params = None
    if len(x) >= MIN_FIT_CUSTOMERS and int(repeaters.sum()) >= MIN_FIT_REPEAT_CUSTOMERS:
        params = bgnbd_fit(x, t_x, T)
    rule = rhythm_risk(x, t_x, T, shop_usual_interval(x, t_x))
    if params is None:
        return ChurnScores(rule, np.full(len(x), np.nan), np.zeros(len(x), dtype=bool), None)
    alive = bgnbd_p_alive(params, x, t_x, T)
    return ChurnScores(
        churn_risk=np.where(repeaters, 1.0 - alive, rule),
        p_alive=np.where(repeaters, alive, np.nan),
        uses_bgnbd=repeaters,
        params=params,
    )


@dataclass(frozen=True)
class PurchaseSummary:
    """One row per customer with a completed purchase before ``as_of`` (lifetimes' summary shape)."""

    customer_id: np.ndarray
    frequency: np.ndarray  # x: repeat purchase days
    recency: np.ndarray  # t_x: days from the first to the last purchase day
    T: np.ndarray  # days from the first purchase day to the day of as_of


def purchase_summary(*, as_of: dt.datetime) -> PurchaseSummary:
    """The BG/NBD input in one query: purchases count by (customer, store-local day), as lifetimes'
    ``summary_data_from_transaction_data`` does with daily periods."""
    tz = store_tz()
    # One pass over the (customer, placed_at) index, in its order: a row starts a new purchase day
    # when its local day differs from the previous row's. Collapsing to distinct (customer, day)
    # first would sort every purchase (at 100M purchases, a sort spilled to disk for over half an hour).
    purchases = completed_purchases().filter(placed_at__lt=as_of).values("customer_id", "placed_at")
    inner, params = purchases.query.sql_with_params()
    day = "(d.placed_at AT TIME ZONE %s)::date"
    sql = (
        f"SELECT customer_id, count(*) FILTER (WHERE prev IS DISTINCT FROM day) - 1, min(day), max(day) FROM ("
        f" SELECT d.customer_id, {day} AS day,"
        f" lag({day}) OVER (PARTITION BY d.customer_id ORDER BY d.placed_at) AS prev FROM ({inner}) d"
        ") days GROUP BY customer_id ORDER BY customer_id"
    )
    params = (tz.key, tz.key, *params)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if not rows:
        empty = np.zeros(0, dtype=np.int64)
        return PurchaseSummary(empty, empty, empty, empty)
    ids, repeats, firsts, lasts = zip(*rows, strict=True)
    first = np.array(firsts, dtype="datetime64[D]")
    last = np.array(lasts, dtype="datetime64[D]")
    today = np.datetime64(as_of.astimezone(tz).date(), "D")
    return PurchaseSummary(
        customer_id=np.array(ids, dtype=np.int64),
        frequency=np.array(repeats, dtype=np.int64),
        recency=(last - first).astype(np.int64),
        T=(today - first).astype(np.int64),
    )


@dataclass(frozen=True)
class RefreshResult:
    customers: int
    bgnbd_customers: int
    params: BgNbdParams | None
    computed_at: dt.datetime


@transaction.atomic
def customer_scores_refresh(*, as_of: dt.datetime | None = None) -> RefreshResult:
    """Recompute every customer's RFM scores and churn risk and store them set-based.

    Reads two queries (the BG/NBD summary, the RFM scores), writes one statement (the scores'
    upsert with the RFM page positions and segment counts) and one delete of the score rows this
    run did not write (customers without a completed purchase any more). Runs in one transaction,
    so readers see either yesterday's scores, counts and pages or today's, never a mix.
    """
    computed_at = as_of or timezone.now()
    summary = purchase_summary(as_of=computed_at)
    scores = churn_scores(summary.frequency, summary.recency, summary.T)
    _write_scores(summary, scores, computed_at)
    # Every row not written now, also one a refresh with a later as_of left: scores match the counts.
    CustomerScore.objects.exclude(computed_at=computed_at).delete()
    result = RefreshResult(
        customers=len(summary.customer_id),
        bgnbd_customers=int(scores.uses_bgnbd.sum()),
        params=scores.params,
        computed_at=computed_at,
    )
    logger.info(
        "metrics.scores_refreshed",
        extra={"customers": result.customers, "bgnbd_customers": result.bgnbd_customers},
    )
    return result


SCORE_COLUMNS = (
    "customer_id, churn_risk, p_alive, churn_model, recency_days, frequency, monetary, "
    "r_score, f_score, m_score, rfm_segment, computed_at"
)


def _write_scores(summary: PurchaseSummary, scores: ChurnScores, computed_at: dt.datetime) -> None:
    """One statement: the RFM query joined to the churn arrays (unnest), upserted into the scores
    (ON CONFLICT DO UPDATE), and from the same rows the RFM page positions and segment counts
    (metrics/rfm_stored.py), so the stored counts always describe exactly the stored scores."""
    rfm, rfm_params = scored_sql(as_of=computed_at)
    table = CustomerScore._meta.db_table
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in SCORE_COLUMNS.split(", ") if c != "customer_id")
    # Materialised once: the scores, the positions and the deletes of stale positions all read it.
    stored, stored_params = store_sql("scored", computed_at=computed_at)
    sql = f"""
        WITH scored AS MATERIALIZED (
            SELECT s.*, u.churn_risk, u.p_alive, u.uses_bgnbd
            FROM ({rfm}) s
            JOIN unnest(%s::bigint[], %s::float8[], %s::float8[], %s::boolean[])
                 AS u(customer_id, churn_risk, p_alive, uses_bgnbd) ON u.customer_id = s.id
        ), scores AS (
            INSERT INTO {table} ({SCORE_COLUMNS})
            SELECT s.id, s.churn_risk, NULLIF(s.p_alive, 'NaN'::float8),
                   CASE WHEN s.uses_bgnbd THEN %s ELSE %s END,
                   GREATEST(%s::date - (s.last_at AT TIME ZONE %s)::date, 0),
                   s.frequency, s.monetary, s.r, s.f, s.m, s.segment, %s
            FROM scored s
            ON CONFLICT (customer_id) DO UPDATE SET {updates}
        )
        {stored}
    """
    tz = store_tz()
    params: list[Any] = [
        *rfm_params,
        summary.customer_id.tolist(),
        scores.churn_risk.tolist(),
        scores.p_alive.tolist(),
        scores.uses_bgnbd.tolist(),
        ChurnModel.BGNBD,
        ChurnModel.RHYTHM,
        computed_at.astimezone(tz).date(),
        str(tz),
        computed_at,
        *stored_params,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
