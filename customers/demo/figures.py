"""The metrics' nightly jobs, run once for the demo: every customer's RFM scores and churn risk,
and the daily snapshots the dashboard's trend chart draws (the same services the beat tasks call)."""

import datetime as dt

from metrics.churn_risk import RefreshResult, customer_scores_refresh
from metrics.periods import store_tz
from metrics.snapshots import snapshots_fill


def scores_compute(*, now: dt.datetime) -> RefreshResult:
    return customer_scores_refresh(as_of=now)


def snapshots_take(*, now: dt.datetime, days: int) -> list[dt.date]:
    """The snapshots of the ``days`` days up to yesterday (today is not over), oldest first."""
    yesterday = now.astimezone(store_tz()).date() - dt.timedelta(days=1)
    return snapshots_fill(until=yesterday, days=days)
