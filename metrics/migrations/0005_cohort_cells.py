"""Cohort cells (metrics/cohort_rollups.py): their tables and their first build from the purchases already there."""

from django.db import migrations, models

from metrics.cohort_rollup_sql import rebuild_sql


def build(apps, schema_editor):
    # Only where the rollups are built (their zone recorded): otherwise the rollup rebuild builds them.
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT time_zone FROM metrics_rollupstate WHERE id = 1")
        row = cursor.fetchone()
        if row is None:
            return
        cursor.execute("LOCK TABLE customers_purchase IN SHARE MODE")
        cursor.execute(rebuild_sql(), {"zone": row[0]})


class Migration(migrations.Migration):
    dependencies = [("metrics", "0004_day_totals")]

    operations = [
        migrations.CreateModel(
            name="CohortCell",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("cohort_month", models.DateField()),
                ("month", models.DateField()),
                ("first_day", models.DateField()),
                ("customers", models.BigIntegerField()),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("cohort_month", "month", "first_day"), name="cohort_cell_one_per_cell"
                    )
                ]
            },
        ),
        migrations.CreateModel(
            name="CohortCellDelta",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("cohort_month", models.DateField()),
                ("month", models.DateField()),
                ("first_day", models.DateField()),
                ("customers", models.BigIntegerField()),
            ],
        ),
        migrations.RunPython(build, migrations.RunPython.noop),
    ]
