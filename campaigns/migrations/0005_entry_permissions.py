"""Who may see journey entries: every group that sees messages (marketer, analyst, support)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUPS = ("marketer", "analyst", "support")


def grant(apps, schema_editor):
    for app_config in apps.get_app_configs():  # permissions are normally created after all migrations
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    permission = Permission.objects.filter(content_type__app_label="campaigns", codename="view_entry")
    for name in GROUPS:
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(*permission)


def revoke(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    for group in apps.get_model("auth", "Group").objects.filter(name__in=GROUPS):
        group.permissions.remove(*Permission.objects.filter(content_type__app_label="campaigns", codename="view_entry"))


class Migration(migrations.Migration):
    dependencies = [("campaigns", "0004_journeys"), ("auth", "0012_alter_user_first_name_max_length")]

    operations = [migrations.RunPython(grant, revoke)]
