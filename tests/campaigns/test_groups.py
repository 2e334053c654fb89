"""A campaign's treated and control groups as the figures' customer filter (campaigns/groups.py)."""

import pytest

from campaigns.groups import group_customer_ids
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
