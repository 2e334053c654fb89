"""Statistics the campaign reports use, with no tie to any model.

``two_proportion_z_test`` gives a treated group's uplift over its control group: the absolute
difference of the two rates, its 95 % interval and the p-value (the campaign report's conversion,
the A/B variants' winner).
"""

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Uplift:
    difference: float  # treated rate - control rate
    ci_low: float
    ci_high: float
    p_value: float


def two_proportion_z_test(*, treated_hits: int, treated: int, control_hits: int, control: int) -> Uplift | None:
    """Absolute uplift of the treated rate over the control rate, its 95 % Wald interval, and the
    two-sided p-value of the pooled two-proportion z-test. None when a group is empty."""
    if not treated or not control:
        return None
    p1, p2 = treated_hits / treated, control_hits / control
    difference = p1 - p2
    spread = math.sqrt(p1 * (1 - p1) / treated + p2 * (1 - p2) / control)
    pooled = (treated_hits + control_hits) / (treated + control)
    pooled_spread = math.sqrt(pooled * (1 - pooled) * (1 / treated + 1 / control))
    z = difference / pooled_spread if pooled_spread else 0.0
    p_value = math.erfc(abs(z) / math.sqrt(2))
    return Uplift(difference, difference - 1.959963984540054 * spread, difference + 1.959963984540054 * spread, p_value)
