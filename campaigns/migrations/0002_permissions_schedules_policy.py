"""Campaign permissions for the marketer and analyst groups, the default contact policy, and the
beat schedules (evaluation every 5 minutes, dispatch every minute, the sweeper, a daily expiry)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUP_PERMISSIONS = {
    "marketer": [
        "add_campaign",
        "change_campaign",
        "view_campaign",
        "run_campaign",
        "send_test_campaign",
        "view_message",
        "view_contactpolicy",
        "change_contactpolicy",
    ],
    "analyst": ["view_campaign", "view_message", "view_contactpolicy"],
    "support": ["view_campaign", "view_message"],
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
        group.permissions.add(*Permission.objects.filter(content_type__app_label="campaigns", codename__in=codenames))


def revoke_permissions(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    permissions = Permission.objects.filter(content_type__app_label="campaigns")
    for group in Group.objects.filter(name__in=GROUP_PERMISSIONS):
        group.permissions.remove(*permissions)


def seed_policy(apps, schema_editor):
    apps.get_model("campaigns", "ContactPolicy").objects.get_or_create(pk=1)


def seed_schedules(apps, schema_editor):
    from campaigns.schedules import campaign_schedules_ensure

    campaign_schedules_ensure(
        periodic_task_model=apps.get_model("django_celery_beat", "PeriodicTask"),
        interval_model=apps.get_model("django_celery_beat", "IntervalSchedule"),
        crontab_model=apps.get_model("django_celery_beat", "CrontabSchedule"),
    )


def remove_schedules(apps, schema_editor):
    from campaigns.schedules import CAMPAIGN_SCHEDULES

    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[s.name for s in CAMPAIGN_SCHEDULES]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0001_initial"),
        ("customers", "0002_staff_groups"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.RunPython(grant_permissions, revoke_permissions),
        migrations.RunPython(seed_policy, migrations.RunPython.noop),
        migrations.RunPython(seed_schedules, remove_schedules),
    ]
