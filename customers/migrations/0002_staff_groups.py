"""Staff groups fitting each job: marketer, support and analyst (read-only).

Later apps add their own permissions to these groups in their own migrations.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

VIEW_ALL = [
    "view_customer",
    "view_consent",
    "view_consentevent",
    "view_product",
    "view_purchase",
    "view_purchaseitem",
    "view_cart",
    "view_cartitem",
    "view_npsresponse",
    "view_pointsentry",
]
GROUPS = {
    "analyst": VIEW_ALL,
    "marketer": [*VIEW_ALL, "change_product"],
    # Support edits personal data and consents, refunds and cancels orders.
    "support": [*VIEW_ALL, "change_customer", "add_customer", "change_purchase"],
}


def create_groups(apps, schema_editor):
    # Permissions are normally created after all migrations; make sure they exist now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in GROUPS.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(*Permission.objects.filter(content_type__app_label="customers", codename__in=codenames))


def remove_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=GROUPS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_groups, remove_groups)]
