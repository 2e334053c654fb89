from django.db import migrations, models

CHANNELS = [("email", "Email"), ("sms", "SMS"), ("push", "Push"), ("webhook", "Webhook"), ("telegram", "Telegram")]
CHANNEL_VALUES = [value for value, _ in CHANNELS]


class Migration(migrations.Migration):
    dependencies = [("customers", "0015_telegram_channel"), ("campaigns", "0007_report_at_scale")]

    operations = [
        migrations.RemoveConstraint(model_name="campaign", name="campaign_channel_valid"),
        migrations.RemoveConstraint(model_name="message", name="message_channel_valid"),
        migrations.AlterField(
            model_name="campaign",
            name="channel",
            field=models.CharField(choices=CHANNELS, default="email", max_length=16),
        ),
        migrations.AlterField(
            model_name="message", name="channel", field=models.CharField(choices=CHANNELS, max_length=16)
        ),
        migrations.AddConstraint(
            model_name="campaign",
            constraint=models.CheckConstraint(
                condition=models.Q(("channel__in", CHANNEL_VALUES)), name="campaign_channel_valid"
            ),
        ),
        migrations.AddConstraint(
            model_name="message",
            constraint=models.CheckConstraint(
                condition=models.Q(("channel__in", CHANNEL_VALUES)), name="message_channel_valid"
            ),
        ),
    ]
