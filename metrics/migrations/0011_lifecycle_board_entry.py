"""The lifecycle board's entry in the admin index: a model without a table or permissions."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("metrics", "0010_pending_purchase_changes")]

    operations = [
        migrations.CreateModel(
            name="LifecycleBoard",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
            ],
            options={
                "verbose_name": "lifecycle board",
                "verbose_name_plural": "lifecycle board",
                "managed": False,
                "default_permissions": (),
            },
        ),
    ]
