import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

COLOUR_PATTERN = r"^#[0-9a-fA-F]{6}$"
TOPIC_SOURCES = [("preference_centre", "Preference centre"), ("admin", "Admin"), ("api", "API")]
# The four topics every shop starts with (SPEC §4.2); staff may add more.
TOPICS = [
    ("promotions", "Promotions", "Offers, sales and news from the shop", 10),
    ("reminders", "Reminders", "Your cart, your orders and other reminders", 20),
    ("loyalty", "Loyalty", "Your points, tiers and expiring points", 30),
    ("surveys", "Surveys", "Questions about your experience", 40),
]
# The topic a campaign of each trigger gets unless staff choose another (campaigns/content/topics.py).
TRIGGER_TOPICS = {
    "abandoned_cart": "reminders",
    "reactivation": "promotions",
    "birthday": "promotions",
    "welcome": "promotions",
    "post_purchase": "surveys",
    "points_expiring": "loyalty",
    "churn_risk": "promotions",
}


def seed_topics(apps, schema_editor):
    Topic = apps.get_model("campaigns", "Topic")
    Campaign = apps.get_model("campaigns", "Campaign")
    ids = {}
    for code, name, description, position in TOPICS:
        topic, _ = Topic.objects.get_or_create(
            code=code, defaults={"name": name, "description": description, "position": position}
        )
        ids[code] = topic.pk
    for trigger, code in TRIGGER_TOPICS.items():
        Campaign.objects.filter(trigger=trigger, topic__isnull=True).update(topic_id=ids[code])


class Migration(migrations.Migration):
    dependencies = [("customers", "0016_content_topics"), ("campaigns", "0008_channels_telegram")]

    operations = [
        migrations.CreateModel(
            name="Topic",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("code", models.SlugField(help_text="Stable name, e.g. promotions", max_length=32, unique=True)),
                ("name", models.CharField(help_text="Shown to customers on the preference centre", max_length=100)),
                ("description", models.CharField(blank=True, default="", max_length=300)),
                (
                    "position",
                    models.PositiveSmallIntegerField(default=100, help_text="Order on the preference centre"),
                ),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={"ordering": ["position", "name"]},
        ),
        migrations.CreateModel(
            name="EmailLayout",
            fields=[
                (
                    "id",
                    models.PositiveSmallIntegerField(default=1, editable=False, primary_key=True, serialize=False),
                ),
                ("shop_name", models.CharField(default="Our shop", max_length=100)),
                (
                    "logo_url",
                    models.URLField(blank=True, default="", help_text="An https address of the logo image"),
                ),
                (
                    "brand_colour",
                    models.CharField(default="#1f6feb", help_text="Links and buttons, #rrggbb", max_length=7),
                ),
                ("text_colour", models.CharField(default="#1f2328", help_text="#rrggbb", max_length=7)),
                (
                    "background_colour",
                    models.CharField(default="#f4f5f7", help_text="Around the message, #rrggbb", max_length=7),
                ),
                (
                    "shop_address",
                    models.TextField(blank=True, default="", help_text="Postal address shown in the footer"),
                ),
                (
                    "footer_text",
                    models.TextField(blank=True, default="", help_text="Extra footer line, e.g. why they get this"),
                ),
                (
                    "track_opens",
                    models.BooleanField(
                        default=False,
                        help_text="Add an open-tracking pixel to HTML email (off: opens come from providers only)",
                    ),
                ),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
            options={
                "verbose_name": "email layout",
                "verbose_name_plural": "email layout",
                "constraints": [
                    models.CheckConstraint(condition=models.Q(("id", 1)), name="email_layout_singleton"),
                    models.CheckConstraint(
                        condition=models.Q(
                            ("brand_colour__regex", COLOUR_PATTERN),
                            ("text_colour__regex", COLOUR_PATTERN),
                            ("background_colour__regex", COLOUR_PATTERN),
                        ),
                        name="email_layout_colours_hex",
                    ),
                ],
            },
        ),
        migrations.CreateModel(
            name="TopicPreference",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("subscribed", models.BooleanField()),
                ("source", models.CharField(choices=TOPIC_SOURCES, max_length=32)),
                ("updated_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "customer",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="topic_preferences",
                        to="customers.customer",
                    ),
                ),
                (
                    "topic",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="preferences", to="campaigns.topic"
                    ),
                ),
            ],
            options={
                "indexes": [
                    models.Index(
                        condition=models.Q(("subscribed", False)),
                        fields=["topic", "customer"],
                        name="topic_opt_out_idx",
                    )
                ],
                "constraints": [
                    models.UniqueConstraint(fields=("customer", "topic"), name="topic_preference_one_per_topic")
                ],
            },
        ),
        migrations.CreateModel(
            name="TopicPreferenceEvent",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("subscribed", models.BooleanField()),
                ("source", models.CharField(choices=TOPIC_SOURCES, max_length=32)),
                ("recorded_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "customer",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="topic_events",
                        to="customers.customer",
                    ),
                ),
                (
                    "topic",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to="campaigns.topic"
                    ),
                ),
            ],
            options={
                "ordering": ["-recorded_at", "-id"],
                "indexes": [models.Index(fields=["customer", "recorded_at"], name="topic_event_customer_idx")],
            },
        ),
        migrations.AddField(
            model_name="campaign",
            name="body_html",
            field=models.TextField(blank=True, default="", help_text="Template of the HTML part of an email"),
        ),
        migrations.AddField(
            model_name="campaign",
            name="topic",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="campaigns",
                to="campaigns.topic",
            ),
        ),
        migrations.RunPython(seed_topics, migrations.RunPython.noop),
    ]
