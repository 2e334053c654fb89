"""The daily loyalty tasks: beat schedules seeded, explicit names on the default queue, and a real
worker running them against the database."""

import datetime as dt
import time

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from customers.models import Customer, PointsEntry, TierChange
from customers.schedules import LOYALTY_SCHEDULES, loyalty_schedules_ensure
from customers.tasks import loyalty_birthday_bonuses, loyalty_expire_points, loyalty_recompute_tiers
from retention_crm.celery import app
from tests.loyalty_support import balance, buy, program_set


@pytest.mark.django_db
def test_beat_schedules_are_seeded_daily_in_store_time_and_seeding_is_idempotent(settings):
    for schedule in LOYALTY_SCHEDULES:
        task = PeriodicTask.objects.get(name=schedule.name)
        assert (task.task, task.queue, task.enabled) == (schedule.task, "default", True)
        crontab = task.crontab
        assert (crontab.hour, crontab.minute, crontab.day_of_week) == (str(schedule.hour), str(schedule.minute), "*")
        assert str(crontab.timezone) == settings.TIME_ZONE
    # Staff moved one; seeding again neither duplicates nor resets it.
    PeriodicTask.objects.filter(name=LOYALTY_SCHEDULES[0].name).update(enabled=False)
    assert loyalty_schedules_ensure() == 0
    assert not PeriodicTask.objects.get(name=LOYALTY_SCHEDULES[0].name).enabled
    assert PeriodicTask.objects.filter(task__startswith="loyalty.").count() == len(LOYALTY_SCHEDULES)


def test_tasks_have_explicit_names_on_the_default_queue():
    for task in (loyalty_expire_points, loyalty_recompute_tiers, loyalty_birthday_bonuses):
        assert task.name in app.tasks
        assert task.queue == "default"
    assert {s.task for s in LOYALTY_SCHEDULES} == {
        loyalty_expire_points.name,
        loyalty_recompute_tiers.name,
        loyalty_birthday_bonuses.name,
    }


@pytest.mark.django_db
def test_support_may_adjust_points_and_marketers_edit_the_program():
    support = set(Group.objects.get(name="support").permissions.values_list("codename", flat=True))
    marketer = set(Group.objects.get(name="marketer").permissions.values_list("codename", flat=True))
    analyst = set(Group.objects.get(name="analyst").permissions.values_list("codename", flat=True))
    assert "adjust_points" in support and "adjust_points" not in marketer | analyst
    assert {"change_loyaltyprogram", "change_loyaltytier"} <= marketer
    assert "change_loyaltyprogram" not in support | analyst


def test_the_daily_tasks_run_on_a_real_worker(celery_worker):
    program_set(
        tiers=[("bronze", "Bronze", "0", "1"), ("silver", "Silver", "100", "2")], expiry_days=1, birthday_bonus=0
    )
    now = timezone.now()
    # Earned 1 day minus 1 second ago: its lot expires within a second.
    buy("ada", "150.00", placed_at=now - dt.timedelta(days=1) + dt.timedelta(seconds=1))
    assert Customer.objects.get(external_id="ada").tier == "silver"
    Customer.objects.filter(external_id="ada").update(tier="bronze")  # out of line, as after a settings change
    time.sleep(1.5)

    loyalty_expire_points.delay()
    loyalty_recompute_tiers.delay()
    loyalty_birthday_bonuses.delay()

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (
        PointsEntry.objects.filter(kind="expire").exists() and TierChange.objects.filter(cause="daily").exists()
    ):
        time.sleep(0.5)
    assert balance("ada") == 0
    assert PointsEntry.objects.get(kind="expire").points == -300
    assert Customer.objects.get(external_id="ada").tier == "silver"
