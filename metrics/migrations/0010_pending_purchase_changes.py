"""The purchase trigger keeps only the day totals itself and appends the other rollups' changes to
``metrics_purchasechange``; ``metrics_purchase_changes_fold()`` folds them off the write path
(metrics/rollup_triggers_sql.py). The rollups are exact when this runs (the previous trigger kept
them current), so the new one starts from an empty table.

Migrating back drops the trigger and marks the rollups unbuilt: reads go live until a rebuild."""

from django.db import migrations

from metrics.rollup_triggers_sql import CREATE_PENDING_TABLE, CREATE_TRIGGERS, DROP_TRIGGERS


class Migration(migrations.Migration):
    dependencies = [("metrics", "0009_score_spend_at_risk_index")]

    operations = [
        migrations.RunSQL(
            sql=[CREATE_PENDING_TABLE, *DROP_TRIGGERS, *CREATE_TRIGGERS],
            reverse_sql=[*DROP_TRIGGERS, "DROP TABLE metrics_purchasechange", "DELETE FROM metrics_rollupstate"],
        ),
    ]
