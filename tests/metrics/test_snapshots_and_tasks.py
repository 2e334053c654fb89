"""Daily snapshots, the nightly tasks on a real worker, their beat schedules and the permissions."""

import datetime as dt
import time

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from metrics.models import CustomerScore, DailySnapshot
from metrics.schedules import METRICS_SCHEDULES
from metrics.snapshots import SNAPSHOT_BACKFILL_DAYS, SNAPSHOT_PERIOD_DAYS, snapshot_take, snapshots_fill
from metrics.tasks import refresh_customer_scores, take_daily_snapshots
from tests.metrics.conftest import buy, noon


@pytest.mark.django_db
def test_a_snapshot_holds_the_headline_figures_of_the_day():
    buy("ann", noon(dt.date(2026, 2, 20)), "40.00")
    buy("ann", noon(dt.date(2026, 3, 25)), "60.00")
    buy("bob", noon(dt.date(2026, 2, 21)), "10.00")

    snapshot = snapshot_take(day=dt.date(2026, 3, 31))

    # The period is the 30 days up to the end of 31 March: [1 March, 1 April).
    assert snapshot.period_days == SNAPSHOT_PERIOD_DAYS
    assert (snapshot.customers_start, snapshot.retained, snapshot.lost) == (2, 2, 0)
    assert (snapshot.orders, str(snapshot.revenue), snapshot.crr) == (1, "60.00", 1.0)
    again = snapshot_take(day=dt.date(2026, 3, 31))
    assert again.pk == snapshot.pk and DailySnapshot.objects.count() == 1


@pytest.mark.django_db
def test_fill_takes_missing_days_and_always_retakes_the_last():
    snapshot_take(day=dt.date(2026, 3, 29))
    taken = snapshots_fill(until=dt.date(2026, 3, 31), days=4)
    assert taken == [dt.date(2026, 3, 28), dt.date(2026, 3, 30), dt.date(2026, 3, 31)]
    assert snapshots_fill(until=dt.date(2026, 3, 31), days=4) == [dt.date(2026, 3, 31)]
    assert DailySnapshot.objects.count() == 4


def test_nightly_tasks_run_on_a_real_worker(celery_worker):
    buy("ann", noon(timezone.localdate() - dt.timedelta(days=40)))
    buy("ann", noon(timezone.localdate() - dt.timedelta(days=10)))

    refresh_customer_scores.delay()
    take_daily_snapshots.delay()

    yesterday = DailySnapshot.objects.filter(date=timezone.localdate() - dt.timedelta(days=1))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (CustomerScore.objects.exists() and yesterday.exists()):
        time.sleep(0.5)  # the fill takes the oldest missing day first, yesterday last
    assert CustomerScore.objects.get().customer.external_id == "ann"
    assert yesterday.exists()
    assert DailySnapshot.objects.count() == SNAPSHOT_BACKFILL_DAYS


def test_tasks_are_routed_to_the_metrics_queue():
    assert refresh_customer_scores.queue == take_daily_snapshots.queue == "metrics"


@pytest.mark.django_db
def test_beat_schedules_are_seeded_in_store_time():
    for schedule in METRICS_SCHEDULES:
        task = PeriodicTask.objects.get(name=schedule.name)
        assert task.task == schedule.task and task.queue == "metrics" and task.enabled
        assert (task.crontab.hour, task.crontab.minute) == (str(schedule.hour), str(schedule.minute))


@pytest.mark.django_db
@pytest.mark.parametrize("group", ["analyst", "marketer"])
def test_analysts_and_marketers_may_view_the_dashboard(group):
    codenames = set(Group.objects.get(name=group).permissions.values_list("codename", flat=True))
    assert {"view_dashboard", "view_customerscore", "view_dailysnapshot"} <= codenames
    assert "view_dashboard" not in set(Group.objects.get(name="support").permissions.values_list("codename", flat=True))
