# The customer's messages are read newest first (the 360 shows a page of them): an index on
# (customer, created_at) reads that page in order, and its leading column serves every other
# lookup by customer, so it replaces the foreign key's own index instead of adding a second one.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0005_entry_permissions"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="message",
            index=models.Index(fields=["customer", "created_at"], name="message_customer_created_idx"),
        ),
        migrations.AlterField(
            model_name="message",
            name="customer",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="messages",
                to="customers.customer",
            ),
        ),
    ]
