"""Erasing a customer (GDPR) is its own permission (SPEC §8); support, who answer customers'
requests, hold it."""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def grant_to_support(apps, schema_editor):
    app_config = apps.get_app_config("customers")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    support, _ = Group.objects.get_or_create(name="support")
    support.permissions.add(*Permission.objects.filter(content_type__app_label="customers", codename="erase_customer"))


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0012_ledger_reason_erasure"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="customer",
            options={
                "ordering": ["-id"],
                "permissions": [("erase_customer", "Can erase a customer's personal data (GDPR)")],
            },
        ),
        migrations.RunPython(grant_to_support, migrations.RunPython.noop),
    ]
