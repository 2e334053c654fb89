"""Day totals (orders, revenue) and single-order days beside the day chain, kept by the
purchase triggers (0008), and their first build from the purchases already there."""

from django.db import migrations, models

from metrics.rollup_sql import singles_rebuild_sql, totals_rebuild_sql


def build(apps, schema_editor):
    # Only where the chain is built (its zone recorded): otherwise rollups_rebuild builds all three.
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT time_zone FROM metrics_rollupstate WHERE id = 1")
        row = cursor.fetchone()
        if row is None:
            return
        cursor.execute("LOCK TABLE customers_purchase IN SHARE MODE")
        cursor.execute(totals_rebuild_sql(), {"zone": row[0]})
        cursor.execute(singles_rebuild_sql(), {"zone": row[0]})


MONEY = {"max_digits": 18, "decimal_places": 2}


class Migration(migrations.Migration):
    dependencies = [("metrics", "0003_rollups")]

    operations = [
        migrations.CreateModel(
            name="DayTotal",
            fields=[
                ("day", models.DateField(primary_key=True, serialize=False)),
                ("orders", models.BigIntegerField()),
                ("revenue", models.DecimalField(**MONEY)),
            ],
        ),
        migrations.CreateModel(
            name="DayTotalDelta",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("day", models.DateField()),
                ("orders", models.BigIntegerField()),
                ("revenue", models.DecimalField(**MONEY)),
            ],
        ),
        migrations.CreateModel(
            name="DaySingle",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("day", models.DateField()),
                ("gap_before", models.SmallIntegerField()),
                ("gap_after", models.SmallIntegerField()),
                ("customers", models.BigIntegerField()),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(fields=("day", "gap_before", "gap_after"), name="day_single_one_per_cell")
                ]
            },
        ),
        migrations.CreateModel(
            name="DaySingleDelta",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("day", models.DateField()),
                ("gap_before", models.SmallIntegerField()),
                ("gap_after", models.SmallIntegerField()),
                ("customers", models.BigIntegerField()),
            ],
        ),
        migrations.RunPython(build, migrations.RunPython.noop),
    ]
