"""Beat schedules seeded into django-celery-beat (editable in the admin), tasks named and queued."""

import pytest
from django.contrib.auth.models import Group
from django_celery_beat.models import PeriodicTask

from campaigns import tasks
from campaigns.schedules import CAMPAIGN_SCHEDULES, campaign_schedules_ensure
from retention_crm.celery import app


@pytest.mark.django_db
def test_schedules_are_seeded_once_and_staff_changes_survive_reseeding():
    seeded = {task.name: task for task in PeriodicTask.objects.filter(task__startswith="campaigns.")}
    assert set(seeded) == {schedule.name for schedule in CAMPAIGN_SCHEDULES}
    assert seeded["campaigns: evaluate active campaigns"].interval.every == 5
    assert seeded["campaigns: evaluate active campaigns"].queue == "triggers"
    assert seeded["campaigns: dispatch due messages"].interval.every == 1
    assert seeded["campaigns: requeue stuck sends"].queue == "sends"
    assert seeded["campaigns: expire overdue messages"].crontab.hour == "3"
    PeriodicTask.objects.filter(name="campaigns: evaluate active campaigns").update(enabled=False)
    assert campaign_schedules_ensure() == 0
    assert not PeriodicTask.objects.get(name="campaigns: evaluate active campaigns").enabled


def test_tasks_have_explicit_names_queues_and_late_acks():
    expected = {
        "campaigns.evaluate_active": "triggers",
        "campaigns.evaluate": "triggers",
        "campaigns.send_batch": "sends",
        "campaigns.dispatch_due": "sends",
        "campaigns.requeue_stale": "sends",
        "campaigns.expire_stale": "sends",
    }
    for name, queue in expected.items():
        task = app.tasks[name]
        assert task.queue == queue
        assert task.acks_late is True
        assert task.autoretry_for  # a narrow retry policy per queue (database errors only)
    assert tasks.send_batch.time_limit < 900  # below CAMPAIGN_SENDING_STALE_SECONDS: the sweeper never takes live work


@pytest.mark.django_db
def test_marketers_may_run_and_test_campaigns_analysts_only_look():
    marketer = set(Group.objects.get(name="marketer").permissions.values_list("codename", flat=True))
    analyst = set(Group.objects.get(name="analyst").permissions.values_list("codename", flat=True))
    assert {"add_campaign", "change_campaign", "run_campaign", "send_test_campaign", "view_message"} <= marketer
    assert {"view_campaign", "view_message"} <= analyst
    assert not {"change_campaign", "run_campaign"} & analyst


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_the_evaluation_and_the_sends(celery_worker, make_customer, make_campaign):
    """The in-process worker (threads, Redis): evaluate_active fans out, sends follow on commit."""
    import datetime as dt
    import time

    from django.core import mail
    from django.utils import timezone

    from campaigns.models import ContactPolicy, Message

    ContactPolicy.objects.update_or_create(
        pk=1, defaults={"quiet_hours_start": dt.time(0), "quiet_hours_end": dt.time(0)}
    )
    for _ in range(3):
        make_customer(last_purchase_at=timezone.now() - dt.timedelta(days=100))
    campaign = make_campaign("reactivation")
    tasks.evaluate_active.delay()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and Message.objects.filter(campaign=campaign, status="sent").count() < 3:
        time.sleep(0.1)
    assert Message.objects.filter(campaign=campaign, status="sent").count() == 3
    assert len(mail.outbox) == 3


@pytest.mark.django_db
def test_run_campaigns_command_evaluates_and_sends(make_customer, make_campaign, policy):
    import datetime as dt
    from io import StringIO

    from django.core import mail
    from django.core.management import call_command
    from django.utils import timezone

    policy.quiet_hours_start = policy.quiet_hours_end = dt.time(0)
    policy.save()
    make_customer(last_purchase_at=timezone.now() - dt.timedelta(days=100))
    campaign = make_campaign("reactivation")
    make_campaign("welcome", status="draft")
    out = StringIO()
    call_command("run_campaigns", "--send", stdout=out)
    assert f"campaign {campaign.pk}: queued 1, held_out 0, suppressed 0, deferred 0" in out.getvalue()
    assert f"campaign {campaign.pk}: sent 1, failed 0" in out.getvalue()
    assert len(mail.outbox) == 1
