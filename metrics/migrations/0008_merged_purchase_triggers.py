"""One trigger function for every purchase rollup (metrics/rollup_triggers_sql.py), in place of one
per rollup family: one lock of the touched customers and one read of their purchases around each
changed day, shared by the day chain, the single-order days and the cohort cells."""

from django.db import migrations

from metrics.rollup_triggers_sql import CREATE_TRIGGERS, DROP_TRIGGERS, SEPARATE_TRIGGERS_DROP


class Migration(migrations.Migration):
    dependencies = [("metrics", "0007_metrics_jobs")]

    operations = [
        migrations.RunSQL(sql=SEPARATE_TRIGGERS_DROP + CREATE_TRIGGERS, reverse_sql=DROP_TRIGGERS),
    ]
