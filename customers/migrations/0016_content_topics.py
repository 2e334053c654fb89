import django.db.models.deletion
from django.db import migrations, models

SOURCES = [
    ("api", "API"),
    ("admin", "Admin"),
    ("import", "Import"),
    ("unsubscribe_link", "Unsubscribe link"),
    ("provider", "Provider (bounce or complaint)"),
    ("erasure", "GDPR erasure"),
    ("telegram", "Telegram bot (/start, /stop)"),
    ("preference_centre", "Preference centre"),
]


class Migration(migrations.Migration):
    dependencies = [("customers", "0015_telegram_channel"), ("campaigns", "0008_channels_telegram")]

    operations = [
        migrations.AlterField(
            model_name="consent", name="source", field=models.CharField(choices=SOURCES, max_length=32)
        ),
        migrations.AlterField(
            model_name="consentevent", name="source", field=models.CharField(choices=SOURCES, max_length=32)
        ),
        migrations.AddField(
            model_name="npsresponse",
            name="message",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="campaigns.message",
            ),
        ),
        migrations.AddConstraint(
            model_name="npsresponse",
            constraint=models.UniqueConstraint(
                condition=models.Q(("message__isnull", False)), fields=("message",), name="nps_one_per_message"
            ),
        ),
    ]
