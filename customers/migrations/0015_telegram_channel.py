from django.db import migrations, models

CHANNELS = [("email", "Email"), ("sms", "SMS"), ("push", "Push"), ("webhook", "Webhook"), ("telegram", "Telegram")]
SOURCES = [
    ("api", "API"),
    ("admin", "Admin"),
    ("import", "Import"),
    ("unsubscribe_link", "Unsubscribe link"),
    ("provider", "Provider (bounce or complaint)"),
    ("erasure", "GDPR erasure"),
    ("telegram", "Telegram bot (/start, /stop)"),
]
CHANNEL_VALUES = [value for value, _ in CHANNELS]


class Migration(migrations.Migration):
    dependencies = [("customers", "0014_customer_search_and_list_indexes")]

    operations = [
        migrations.RemoveConstraint(model_name="consent", name="consent_channel_valid"),
        migrations.RemoveConstraint(model_name="consentevent", name="consent_event_channel_valid"),
        migrations.AddField(
            model_name="customer",
            name="telegram_chat_id",
            field=models.CharField(blank=True, db_default="", default="", max_length=32),
        ),
        migrations.AlterField(
            model_name="consent", name="channel", field=models.CharField(choices=CHANNELS, max_length=16)
        ),
        migrations.AlterField(
            model_name="consent", name="source", field=models.CharField(choices=SOURCES, max_length=32)
        ),
        migrations.AlterField(
            model_name="consentevent", name="channel", field=models.CharField(choices=CHANNELS, max_length=16)
        ),
        migrations.AlterField(
            model_name="consentevent", name="source", field=models.CharField(choices=SOURCES, max_length=32)
        ),
        migrations.AddConstraint(
            model_name="consent",
            constraint=models.CheckConstraint(
                condition=models.Q(("channel__in", CHANNEL_VALUES)), name="consent_channel_valid"
            ),
        ),
        migrations.AddConstraint(
            model_name="consentevent",
            constraint=models.CheckConstraint(
                condition=models.Q(("channel__in", CHANNEL_VALUES)), name="consent_event_channel_valid"
            ),
        ),
        migrations.AddConstraint(
            model_name="customer",
            constraint=models.UniqueConstraint(
                condition=models.Q(("telegram_chat_id", ""), _negated=True),
                fields=("telegram_chat_id",),
                name="customer_telegram_chat_unique",
            ),
        ),
    ]
