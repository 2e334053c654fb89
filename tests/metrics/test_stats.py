"""The statistics of the campaign reports (metrics/stats.py)."""

import pytest

from metrics.stats import two_proportion_z_test


def test_two_proportion_z_test_textbook_case():
    # 20 % of 1,000 treated vs 15 % of 1,000 held out converted.
    uplift = two_proportion_z_test(treated_hits=200, treated=1000, control_hits=150, control=1000)
    assert uplift.difference == pytest.approx(0.05)
    assert (uplift.ci_low, uplift.ci_high) == (pytest.approx(0.01677, abs=1e-5), pytest.approx(0.08323, abs=1e-5))
    assert uplift.p_value == pytest.approx(0.00326, abs=1e-5)
    assert two_proportion_z_test(treated_hits=0, treated=0, control_hits=1, control=10) is None
