"""Daily snapshots of the headline figures, for trend charts.

The snapshot of store-local day D holds the figures as of the end of D (midnight starting D + 1)
for the ``SNAPSHOT_PERIOD_DAYS`` days up to then, with the default window W. Taking a snapshot is
idempotent (one row per day, rewritten if taken again), and the nightly task fills the days that
are missing among the last ``SNAPSHOT_BACKFILL_DAYS``, oldest first, so a fresh install or a
worker that was down for a few nights still gets a continuous trend line.
"""

import datetime as dt
import logging

from django.db import transaction
from django.utils import timezone

from metrics.models import DailySnapshot
from metrics.periods import DEFAULT_WINDOW_DAYS, local_midnight, shift_days, store_tz
from metrics.retention import retention
from metrics.summary import summary

logger = logging.getLogger(__name__)

SNAPSHOT_PERIOD_DAYS = 30
SNAPSHOT_BACKFILL_DAYS = 30


@transaction.atomic
def snapshot_take(*, day: dt.date) -> DailySnapshot:
    """Compute and store the snapshot of ``day``; a second run for the same day replaces it."""
    end = local_midnight(day + dt.timedelta(days=1))
    start = shift_days(end, -SNAPSHOT_PERIOD_DAYS)
    table = retention(start=start, end=end, window_days=DEFAULT_WINDOW_DAYS)
    figures = summary(start=start, end=end, window_days=DEFAULT_WINDOW_DAYS)
    snapshot, _ = DailySnapshot.objects.update_or_create(
        date=day,
        defaults={
            "period_days": SNAPSHOT_PERIOD_DAYS,
            "window_days": DEFAULT_WINDOW_DAYS,
            "customers_start": table.customers_start,
            "customers_end": table.customers_end,
            "new_customers": table.new_customers,
            "retained": table.retained,
            "reactivated": table.reactivated,
            "lost": table.lost,
            "crr": table.crr,
            "churn_rate": table.churn_rate,
            "orders": figures.orders,
            "revenue": figures.revenue,
            "repeat_purchase_rate": figures.repeat_purchase_rate,
            "aov": figures.aov,
            "nps": figures.nps.score,
            "nps_answers": figures.nps.answers,
            "computed_at": timezone.now(),
        },
    )
    return snapshot


def snapshots_fill(*, until: dt.date | None = None, days: int = SNAPSHOT_BACKFILL_DAYS) -> list[dt.date]:
    """Take the missing snapshots among the ``days`` days up to ``until`` (default: yesterday).

    Yesterday is always retaken (late purchases and refunds may have changed it); older days only
    when missing. Returns the days taken, oldest first. Bounded: at most ``days`` snapshots a run.
    """
    if until is None:
        until = timezone.now().astimezone(store_tz()).date() - dt.timedelta(days=1)
    wanted = [until - dt.timedelta(days=n) for n in range(days - 1, -1, -1)]
    existing = set(DailySnapshot.objects.filter(date__in=wanted).values_list("date", flat=True))
    taken = [day for day in wanted if day not in existing or day == until]
    for day in taken:
        snapshot_take(day=day)
    logger.info("metrics.snapshots_taken", extra={"days": len(taken), "until": until.isoformat()})
    return taken
