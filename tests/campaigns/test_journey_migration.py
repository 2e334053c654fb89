"""Migration 0004: every existing campaign becomes a one-step journey. Its messages get an entry each
(same dedupe key, control-group flag and trigger facts), the step count says how many entered, and
evaluating again after the migration creates nothing twice."""

import datetime as dt

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from campaigns.models import Entry, Message, StepCount
from campaigns.services import campaign_evaluate

pytestmark = pytest.mark.django_db(transaction=True)
BEFORE = [("campaigns", "0003_message_queue_index")]
AFTER = [("campaigns", "0004_journeys")]
NOON = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)


def migrate(targets) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


@pytest.fixture(autouse=True)
def back_to_the_latest():
    """Each test stops at 0004; afterwards every later migration is applied again, or the tests
    that follow on this database would miss their tables."""
    yield
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def test_existing_messages_become_completed_one_step_entries(make_customer):
    lapsed = make_customer(external_id="old-1", last_purchase_at=NOON - dt.timedelta(days=100))
    held = make_customer(external_id="old-2", last_purchase_at=NOON - dt.timedelta(days=100))
    migrate(BEFORE)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO campaigns_campaign (name, trigger, status, channel, subject, body, params, audience,"
                " offer, holdout_percent, attribution_days, created_at, updated_at)"
                " VALUES ('Old', 'reactivation', 'active', 'email', 'Hi', 'Come back', '{}', '{}', '{}', 10, 7,"
                " %s, %s) RETURNING id",
                [NOON, NOON],
            )
            (campaign_id,) = cursor.fetchone()
            for customer, status in ((lapsed, "sent"), (held, "held_out")):
                key = f"c:{customer.pk}:last:{int((NOON - dt.timedelta(days=100)).timestamp() * 1_000_000)}"
                cursor.execute(
                    "INSERT INTO campaigns_message (uuid, campaign_id, customer_id, channel, dedupe_key, status,"
                    " reason, data, created_at, scheduled_at, send_at, attempts, touched_at, sent_at, error,"
                    " provider_message_id)"
                    " VALUES (gen_random_uuid(), %s, %s, 'email', %s, %s, '', '{\"days\": 100}', %s, %s, %s, 1,"
                    " %s, %s, '', '')",
                    [campaign_id, customer.pk, key, status, NOON, NOON, NOON, NOON, NOON if status == "sent" else None],
                )
    finally:
        migrate(AFTER)
        # The models read below are today's: on to the latest schema (later migrations keep 0004's rows).
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())

    messages = list(Message.objects.filter(campaign_id=campaign_id).select_related("entry").order_by("customer_id"))
    assert all(message.entry is not None and message.step_key == "message" for message in messages)
    assert [(m.entry.dedupe_key, m.entry.held_out, m.entry.state) for m in messages] == [
        (messages[0].dedupe_key, False, "completed"),
        (messages[1].dedupe_key, True, "completed"),
    ]
    assert messages[0].entry.data == {"days": 100}
    assert StepCount.objects.get(campaign_id=campaign_id, step_key="message").entered == 2
    # The same keys are not entered again.
    result = campaign_evaluate(campaign_id=campaign_id, now=NOON + dt.timedelta(hours=1))
    assert result.queued + result.held_out == 0
    assert Entry.objects.filter(campaign_id=campaign_id).count() == 2
