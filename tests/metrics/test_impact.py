"""Campaign impact: restricting figures to a campaign's treated or control group; the z-test."""

import pytest

from metrics.impact import group_customer_ids, two_proportion_z_test
from retention_crm.errors import ApplicationError


def test_everyone_when_no_group_is_asked_for():
    assert group_customer_ids(campaign=None, group=None) is None
    assert group_customer_ids(campaign="", group="") is None


@pytest.mark.parametrize(("campaign", "group"), [("7", None), (None, "treated"), ("seven", "control"), ("7", "all")])
def test_a_group_needs_a_campaign_id_and_treated_or_control(db, campaign, group):
    with pytest.raises(ApplicationError) as raised:
        group_customer_ids(campaign=campaign, group=group)
    assert raised.value.status == 400


def test_an_unknown_campaign_is_a_404(db):
    with pytest.raises(ApplicationError) as raised:
        group_customer_ids(campaign="987654", group="treated")
    assert raised.value.status == 404


def test_two_proportion_z_test_textbook_case():
    # 20 % of 1,000 treated vs 15 % of 1,000 held out converted.
    uplift = two_proportion_z_test(treated_hits=200, treated=1000, control_hits=150, control=1000)
    assert uplift.difference == pytest.approx(0.05)
    assert (uplift.ci_low, uplift.ci_high) == (pytest.approx(0.01677, abs=1e-5), pytest.approx(0.08323, abs=1e-5))
    assert uplift.p_value == pytest.approx(0.00326, abs=1e-5)
    assert two_proportion_z_test(treated_hits=0, treated=0, control_hits=1, control=10) is None
