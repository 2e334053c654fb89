"""The dashboard's campaign impact block (metrics/dashboard.py): the newest campaigns that reached
somebody, found without reading their messages."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from campaigns.services import campaign_create
from metrics.dashboard import campaign_impact_rows
from tests.factories import campaign_half_converted

pytestmark = pytest.mark.django_db


def campaign(name: str):
    return campaign_create(
        data={"name": name, "trigger": "reactivation", "channel": "email", "subject": "Hi", "body": "Hi"}
    )


def test_only_campaigns_that_reached_somebody_are_shown():
    reached = campaign("Winback autumn")
    campaign_half_converted(campaign_id=reached.pk, at=timezone.now() - dt.timedelta(days=3))
    campaign("Still a draft")  # newer, but reached nobody: not shown

    rows = campaign_impact_rows()
    assert [row.campaign_id for row in rows] == [reached.pk]
    assert rows[0].impact["treated"]["conversion_rate"] == 0.5 and rows[0].impact["control"]["conversion_rate"] == 0.0
    assert campaign_impact_rows(limit=0) == []


def test_finding_them_never_reads_the_messages():
    reached = campaign("Winback autumn")
    campaign_half_converted(campaign_id=reached.pk, at=timezone.now() - dt.timedelta(days=3))
    with CaptureQueriesContext(connection) as queries:
        campaign_impact_rows()
    listing = queries.captured_queries[0]["sql"]
    assert "campaigns_messageoutcome" in listing and 'campaigns_message"' not in listing
