"""Content models (SPEC §4.2): the shop's email layout, topics, and customers' topic choices.

Declared here and imported by ``campaigns.models``, so they belong to the campaigns app.
"""

from django.db import models
from django.db.models import Q
from django.utils.timezone import now

from customers.models import Customer

COLOUR_PATTERN = r"^#[0-9a-fA-F]{6}$"


class TopicSource(models.TextChoices):
    PREFERENCE_CENTRE = "preference_centre", "Preference centre"
    ADMIN = "admin", "Admin"
    API = "api", "API"


class Topic(models.Model):
    """A kind of message a customer may opt out of while keeping the channel (SPEC §4.2)."""

    code = models.SlugField(max_length=32, unique=True, help_text="Stable name, e.g. promotions")
    name = models.CharField(max_length=100, help_text="Shown to customers on the preference centre")
    description = models.CharField(max_length=300, blank=True, default="")
    position = models.PositiveSmallIntegerField(default=100, help_text="Order on the preference centre")
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["position", "name"]

    def __str__(self) -> str:
        return self.name


class TopicPreference(models.Model):
    """A customer's current choice for one topic. No row: subscribed (topics narrow consent, they
    never grant it)."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="topic_preferences")
    topic = models.ForeignKey(Topic, on_delete=models.CASCADE, related_name="preferences")
    subscribed = models.BooleanField()
    source = models.CharField(max_length=32, choices=TopicSource.choices)
    updated_at = models.DateTimeField(default=now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["customer", "topic"], name="topic_preference_one_per_topic"),
        ]
        # Evaluation and the send-time check look for opt-outs of one topic.
        indexes = [
            models.Index(fields=["topic", "customer"], condition=Q(subscribed=False), name="topic_opt_out_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.topic_id}: {'subscribed' if self.subscribed else 'opted out'}"


class TopicPreferenceEvent(models.Model):
    """Append-only history of topic choices, like ``ConsentEvent`` for channels."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="topic_events")
    topic = models.ForeignKey(Topic, on_delete=models.CASCADE, related_name="+")
    subscribed = models.BooleanField()
    source = models.CharField(max_length=32, choices=TopicSource.choices)
    recorded_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["-recorded_at", "-id"]
        indexes = [models.Index(fields=["customer", "recorded_at"], name="topic_event_customer_idx")]

    def __str__(self) -> str:
        return f"{self.topic_id} {'subscribed' if self.subscribed else 'opted out'} via {self.source}"


class EmailLayout(models.Model):
    """The shop's base layout every HTML email is rendered into. One record, edited by staff."""

    SINGLETON_ID = 1

    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON_ID, editable=False)
    shop_name = models.CharField(max_length=100, default="Our shop")
    logo_url = models.URLField(blank=True, default="", help_text="An https address of the logo image")
    brand_colour = models.CharField(max_length=7, default="#1f6feb", help_text="Links and buttons, #rrggbb")
    text_colour = models.CharField(max_length=7, default="#1f2328", help_text="#rrggbb")
    background_colour = models.CharField(max_length=7, default="#f4f5f7", help_text="Around the message, #rrggbb")
    shop_address = models.TextField(blank=True, default="", help_text="Postal address shown in the footer")
    footer_text = models.TextField(blank=True, default="", help_text="Extra footer line, e.g. why they get this")
    track_opens = models.BooleanField(
        default=False, help_text="Add an open-tracking pixel to HTML email (off: opens come from providers only)"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "email layout"
        verbose_name_plural = "email layout"
        constraints = [
            models.CheckConstraint(condition=Q(id=1), name="email_layout_singleton"),
            models.CheckConstraint(
                condition=Q(brand_colour__regex=COLOUR_PATTERN)
                & Q(text_colour__regex=COLOUR_PATTERN)
                & Q(background_colour__regex=COLOUR_PATTERN),
                name="email_layout_colours_hex",
            ),
        ]

    def __str__(self) -> str:
        return "Email layout"
