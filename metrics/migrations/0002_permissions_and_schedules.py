"""The analysts' dashboard permission for the analyst and marketer groups, read access to the
stored scores and snapshots, and the nightly beat schedules."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUP_PERMISSIONS = {
    "analyst": ["view_dashboard", "view_customerscore", "view_dailysnapshot"],
    "marketer": ["view_dashboard", "view_customerscore", "view_dailysnapshot"],
}


def grant_permissions(apps, schema_editor):
    # Permissions are normally created after all migrations; make sure they exist now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in GROUP_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(*Permission.objects.filter(content_type__app_label="metrics", codename__in=codenames))


def revoke_permissions(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    codenames = {c for names in GROUP_PERMISSIONS.values() for c in names}
    permissions = Permission.objects.filter(content_type__app_label="metrics", codename__in=codenames)
    for group in Group.objects.filter(name__in=GROUP_PERMISSIONS):
        group.permissions.remove(*permissions)


def seed_schedules(apps, schema_editor):
    from metrics.schedules import metrics_schedules_ensure

    from metrics.schedules import METRICS_SCHEDULES

    metrics_schedules_ensure(
        schedules=METRICS_SCHEDULES,
        periodic_task_model=apps.get_model("django_celery_beat", "PeriodicTask"),
        crontab_model=apps.get_model("django_celery_beat", "CrontabSchedule"),
    )


def remove_schedules(apps, schema_editor):
    from metrics.schedules import METRICS_SCHEDULES

    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[s.name for s in METRICS_SCHEDULES]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("metrics", "0001_initial"),
        ("customers", "0002_staff_groups"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.RunPython(grant_permissions, revoke_permissions),
        migrations.RunPython(seed_schedules, remove_schedules),
    ]
