# The campaign report at scale: per-message outcomes, their totals per campaign and the message
# counts, kept by database triggers (the SQL and why: campaigns/outcome_sql.py), then filled once
# from the existing messages, attributions and purchases.

from django.db import migrations, models

from campaigns.outcome_sql import BACKFILL, INSTALL, UNINSTALL


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0006_message_customer_created_index"),
    ]

    operations = [
        migrations.CreateModel(
            name="MessageCount",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("campaign_id", models.BigIntegerField()),
                ("status", models.CharField(max_length=16)),
                ("reason", models.CharField(max_length=32)),
                ("step_key", models.CharField(max_length=40)),
                ("messages", models.BigIntegerField()),
            ],
            options={
                "indexes": [models.Index(fields=["campaign_id"], name="message_count_campaign_idx")],
            },
        ),
        migrations.CreateModel(
            name="MessageOutcome",
            fields=[
                ("message_id", models.BigIntegerField(primary_key=True, serialize=False)),
                ("campaign_id", models.BigIntegerField()),
                ("customer_id", models.BigIntegerField()),
                ("treated", models.BooleanField(help_text="Sent (treated group); false: held out (control)")),
                ("member", models.BooleanField(help_text="Touched and sent or held out: counts in its group")),
                ("step_key", models.CharField(max_length=40)),
                ("variant_key", models.CharField(max_length=40)),
                ("touched_at", models.DateTimeField(null=True)),
                ("group_first", models.BooleanField(help_text="The customer's first member message of this group")),
                (
                    "campaign_first",
                    models.BooleanField(help_text="The customer's first member message of the campaign"),
                ),
                ("converted", models.BooleanField(help_text="A completed purchase in this message's window")),
                (
                    "group_converted",
                    models.BooleanField(help_text="On group_first: a completed purchase in one of the group's windows"),
                ),
                (
                    "group_revenue",
                    models.DecimalField(decimal_places=2, help_text="On group_first: their total", max_digits=16),
                ),
                ("active_30", models.BooleanField(help_text="On campaign_first: active 30 days after the message")),
                ("active_90", models.BooleanField(help_text="On campaign_first: active 90 days after the message")),
                ("attributed_purchases", models.IntegerField()),
                ("attributed_revenue", models.DecimalField(decimal_places=2, max_digits=16)),
            ],
            options={
                "indexes": [
                    models.Index(fields=["customer_id"], name="outcome_customer_idx"),
                    models.Index(
                        condition=models.Q(("campaign_first", True)),
                        fields=["campaign_id", "touched_at"],
                        name="outcome_first_idx",
                    ),
                ],
            },
        ),
        migrations.CreateModel(
            name="ReportTotal",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("campaign_id", models.BigIntegerField()),
                ("treated", models.BooleanField()),
                ("step_key", models.CharField(max_length=40)),
                ("variant_key", models.CharField(max_length=40)),
                ("touched_minute", models.DateTimeField(null=True)),
                ("customers", models.BigIntegerField()),
                ("converted", models.BigIntegerField()),
                ("revenue", models.DecimalField(decimal_places=2, max_digits=18)),
                ("attributed_purchases", models.BigIntegerField()),
                ("attributed_revenue", models.DecimalField(decimal_places=2, max_digits=18)),
                ("first_members", models.BigIntegerField()),
                ("active_30", models.BigIntegerField()),
                ("active_90", models.BigIntegerField()),
                ("sent", models.BigIntegerField()),
                ("sent_converted", models.BigIntegerField()),
            ],
            options={
                "indexes": [models.Index(fields=["campaign_id"], name="report_total_campaign_idx")],
            },
        ),
        migrations.RunSQL(INSTALL, UNINSTALL),
        migrations.RunSQL(BACKFILL, migrations.RunSQL.noop),
    ]
