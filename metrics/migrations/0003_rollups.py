"""The day-chain rollup (metrics/rollups.py): its tables,
the first build from the purchases already there, and the beat schedule that compacts it."""

from django.conf import settings
from django.db import migrations, models
from django.utils import timezone

from metrics.rollup_sql import rebuild_sql


def build(apps, schema_editor):
    # One statement over the completed purchases (about a minute at 10 M); writes wait meanwhile.
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("LOCK TABLE customers_purchase IN SHARE MODE")
        cursor.execute(rebuild_sql(), {"zone": settings.TIME_ZONE})
        cursor.execute(
            "INSERT INTO metrics_rollupstate (id, time_zone, built_at) VALUES (1, %s, %s)",
            [settings.TIME_ZONE, timezone.now()],
        )


def unbuild(apps, schema_editor):
    apps.get_model("metrics", "RollupState").objects.all().delete()


def seed_schedules(apps, schema_editor):
    from metrics.schedules import ROLLUP_SCHEDULES, metrics_schedules_ensure

    metrics_schedules_ensure(
        schedules=ROLLUP_SCHEDULES,
        periodic_task_model=apps.get_model("django_celery_beat", "PeriodicTask"),
        interval_model=apps.get_model("django_celery_beat", "IntervalSchedule"),
        crontab_model=apps.get_model("django_celery_beat", "CrontabSchedule"),
    )


def remove_schedules(apps, schema_editor):
    from metrics.schedules import ROLLUP_SCHEDULES

    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[s.name for s in ROLLUP_SCHEDULES]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("metrics", "0002_permissions_and_schedules"),
        ("customers", "0013_erase_permission"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.CreateModel(
            name="DayChain",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("day", models.DateField()),
                ("next_day", models.DateField()),
                ("customers", models.BigIntegerField()),
            ],
            options={
                "constraints": [models.UniqueConstraint(fields=("day", "next_day"), name="day_chain_one_per_pair")]
            },
        ),
        migrations.CreateModel(
            name="DayChainDelta",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("day", models.DateField()),
                ("next_day", models.DateField()),
                ("customers", models.BigIntegerField()),
            ],
        ),
        migrations.CreateModel(
            name="RollupState",
            fields=[
                ("id", models.PositiveSmallIntegerField(default=1, primary_key=True, serialize=False)),
                ("time_zone", models.CharField(max_length=64)),
                ("built_at", models.DateTimeField()),
            ],
        ),
        # The purchase triggers that keep it current: 0008 installs them, one function for every rollup.
        migrations.RunPython(build, unbuild),
        migrations.RunPython(seed_schedules, remove_schedules),
    ]
