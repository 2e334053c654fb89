"""A/B variants of a message step (SPEC §4.1): their figures, and the automatic winner.

A variant's figures: messages of the step sent with it, and of those, how many were followed by a
completed purchase of the customer within the campaign's ``attribution_days`` of the send. Each
variant is compared with the first by the two-proportion z-test (uplift, 95 % CI, p-value).

``auto_winner``: once every variant has ``min_per_variant`` sends and the best one's conversion
beats each other's with p < 0.05, the best is recorded (``VariantWinner``, with its figures) and
new arrivals at the step get it. The decision is taken once: the unique row per step keeps it.
"""

import datetime as dt
from typing import Any

from django.db import connection
from django.utils import timezone

from campaigns.journey import Step, journey_of
from campaigns.models import SENT_STATUSES, Campaign, VariantWinner
from metrics.stats import two_proportion_z_test

WINNER_P_VALUE = 0.05

_VARIANT_FIGURES = """
    SELECT m.step_key, m.variant_key, count(*) AS sent,
           count(*) FILTER (WHERE EXISTS (
               SELECT 1 FROM customers_purchase p
               WHERE p.customer_id = m.customer_id AND p.status = 'completed'
                 AND p.placed_at >= m.touched_at AND p.placed_at < m.touched_at + %(window)s)) AS converted
    FROM campaigns_message m
    WHERE m.campaign_id = %(campaign)s AND m.status = ANY(%(sent)s) AND m.touched_at IS NOT NULL
      AND m.step_key = ANY(%(steps)s)
    GROUP BY 1, 2
"""


def variant_counts(*, campaign: Campaign, step_keys: list[str]) -> dict[tuple[str, str], tuple[int, int]]:
    """(step, variant) -> (sent, converted), in one statement for the given steps."""
    if not step_keys:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            _VARIANT_FIGURES,
            {
                "campaign": campaign.pk,
                "sent": [str(status) for status in SENT_STATUSES],
                # psycopg sends a timedelta as an interval; the stubs' parameter types omit it.
                "window": dt.timedelta(days=campaign.attribution_days),  # type: ignore[dict-item]
                "steps": step_keys,
            },
        )
        return {(step, variant): (sent, converted) for step, variant, sent, converted in cursor.fetchall()}


def variant_figures(step: Step, counts: dict[tuple[str, str], tuple[int, int]]) -> list[dict[str, Any]]:
    """Per variant of the step: sent, converted, conversion rate, and the test against the first."""
    rows = []
    first_sent, first_converted = counts.get((step.key, step.variants[0].key), (0, 0)) if step.variants else (0, 0)
    for index, variant in enumerate(step.variants):
        sent, converted = counts.get((step.key, variant.key), (0, 0))
        test = (
            None
            if index == 0
            else two_proportion_z_test(
                treated_hits=converted, treated=sent, control_hits=first_converted, control=first_sent
            )
        )
        rows.append(
            {
                "key": variant.key,
                "weight": variant.weight,
                "sent": sent,
                "converted": converted,
                "conversion_rate": converted / sent if sent else None,
                "uplift": None if test is None else test.difference,
                "ci_low": None if test is None else test.ci_low,
                "ci_high": None if test is None else test.ci_high,
                "p_value": None if test is None else test.p_value,
            }
        )
    return rows


def winner_pick(step: Step, counts: dict[tuple[str, str], tuple[int, int]]) -> dict[str, Any] | None:
    """The winning variant with its figures, or None while the rule does not hold yet."""
    if step.min_per_variant is None or len(step.variants) < 2:
        return None
    figures = {v.key: counts.get((step.key, v.key), (0, 0)) for v in step.variants}
    if any(sent < step.min_per_variant for sent, _ in figures.values()):
        return None
    best = max(figures, key=lambda key: (figures[key][1] / figures[key][0], key))
    best_sent, best_converted = figures[best]
    tests = {}
    for key, (sent, converted) in figures.items():
        if key == best:
            continue
        test = two_proportion_z_test(
            treated_hits=best_converted, treated=best_sent, control_hits=converted, control=sent
        )
        if test is None or test.difference <= 0 or test.p_value >= WINNER_P_VALUE:
            return None
        tests[key] = {
            "uplift": test.difference,
            "ci_low": test.ci_low,
            "ci_high": test.ci_high,
            "p_value": test.p_value,
        }
    return {
        "variant": best,
        "figures": {
            "min_per_variant": step.min_per_variant,
            "variants": {key: {"sent": sent, "converted": converted} for key, (sent, converted) in figures.items()},
            "against": tests,
        },
    }


def winners_decide(*, campaign: Campaign, now: dt.datetime | None = None) -> dict[str, str]:
    """Record a winner for each ``auto_winner`` step whose rule now holds; returns every step's
    winner (step key -> variant key), old and new."""
    journey = journey_of(campaign)
    if not any(step.min_per_variant is not None for step in journey.message_steps()):
        return {}
    # Variants may be edited while the campaign runs: a winner whose variant is gone (renamed,
    # removed) is not handed out, or new arrivals would get a message without its text.
    variant_keys = {step.key: {v.key for v in step.variants} for step in journey.message_steps()}
    decided = dict(VariantWinner.objects.filter(campaign=campaign).values_list("step_key", "variant_key"))
    known = {key: variant for key, variant in decided.items() if variant in variant_keys.get(key, ())}
    open_steps = [s for s in journey.message_steps() if s.min_per_variant is not None and s.key not in decided]
    if not open_steps:
        return known
    counts = variant_counts(campaign=campaign, step_keys=[s.key for s in open_steps])
    for step in open_steps:
        picked = winner_pick(step, counts)
        if picked is None:
            continue
        winner, _ = VariantWinner.objects.get_or_create(
            campaign=campaign,
            step_key=step.key,
            defaults={
                "variant_key": picked["variant"],
                "figures": picked["figures"],
                "decided_at": now or timezone.now(),
            },
        )
        if winner.variant_key in variant_keys[step.key]:
            known[step.key] = winner.variant_key
    return known
