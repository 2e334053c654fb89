"""API shapes (SPEC §6 campaign). Input is validated by ``campaign_clean`` (one set of rules for the
API and the admin); the write serializer describes the shape for the OpenAPI schema."""

from typing import Any

from rest_framework import serializers

from campaigns.content.models import Topic
from campaigns.journey import STEP_TYPES, reentry_shape
from campaigns.models import Campaign, CampaignStatus, EntryState, ExitOn, Message, MessageStatus, Trigger
from campaigns.services.campaigns import CAMPAIGN_FIELDS
from customers.models import Channel


class CampaignSerializer(serializers.ModelSerializer):
    # The same choice set as the consent API's channel, so the schema has one Channel enum.
    channel = serializers.ChoiceField(choices=Channel.values, read_only=True)
    steps = serializers.ListField(child=serializers.DictField(), read_only=True, help_text="Journey steps (SPEC §4.1)")
    reentry = serializers.SerializerMethodField(help_text='"never" or {"after_days": N}')
    topic: "serializers.SlugRelatedField[Topic]" = serializers.SlugRelatedField(
        slug_field="code", read_only=True, help_text="The topic's code (SPEC §4.2)"
    )

    class Meta:
        model = Campaign
        fields = ["id", *CAMPAIGN_FIELDS, "reentry", "created_at", "updated_at", "last_evaluated_at"]
        read_only_fields = fields

    def get_reentry(self, campaign: Campaign) -> Any:
        return reentry_shape(campaign.reentry_after_days)


class CampaignWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    trigger = serializers.ChoiceField(choices=Trigger.choices)
    channel = serializers.ChoiceField(choices=Channel.values, required=False, default=Channel.EMAIL)
    status = serializers.ChoiceField(choices=CampaignStatus.choices, required=False, default=CampaignStatus.DRAFT)
    subject = serializers.CharField(required=False, allow_blank=True, help_text="Template; required for email")
    body = serializers.CharField(help_text="Template (Django template language, sandboxed)")
    body_html = serializers.CharField(
        required=False, allow_blank=True, help_text="Email only: HTML template, rendered in the shop's layout"
    )
    topic = serializers.CharField(
        required=False, help_text="Topic code (promotions, reminders, loyalty, surveys, or one staff add)"
    )
    params = serializers.DictField(required=False, help_text="Trigger parameters; {} means the trigger's defaults")
    audience = serializers.DictField(
        required=False,
        help_text="tier, rfm_segment, tags, exclude_tags, min_total_spent, max_total_spent, consent; {} = all",
    )
    offer = serializers.DictField(required=False, help_text='{} or {"bonus_points": 100} or {"discount_percent": 10}')
    holdout_percent = serializers.IntegerField(required=False, min_value=0, max_value=50, default=10)
    attribution_days = serializers.IntegerField(required=False, min_value=1, max_value=365, default=7)
    steps = serializers.ListField(
        child=serializers.DictField(),
        required=False,
        help_text=f"Journey steps, each {{key, type ({', '.join(STEP_TYPES)}), ...}}; [] = one message of subject/body",
    )
    exit_on = serializers.ChoiceField(choices=ExitOn.values, required=False, default=ExitOn.PURCHASE)
    reentry = serializers.JSONField(required=False, help_text='"never" (default for journeys) or {"after_days": N}')


class RunResultSerializer(serializers.Serializer):
    queued = serializers.IntegerField()
    held_out = serializers.IntegerField()
    suppressed = serializers.IntegerField()
    deferred = serializers.IntegerField()


class GroupSerializer(serializers.Serializer):
    customers = serializers.IntegerField()
    converted = serializers.IntegerField()
    conversion_rate = serializers.FloatField(allow_null=True)
    revenue = serializers.DecimalField(max_digits=16, decimal_places=2)
    revenue_per_customer = serializers.DecimalField(max_digits=16, decimal_places=2, allow_null=True)
    attributed_purchases = serializers.IntegerField()
    attributed_revenue = serializers.DecimalField(max_digits=16, decimal_places=2)


class UpliftSerializer(serializers.Serializer):
    absolute = serializers.FloatField()
    ci_low = serializers.FloatField()
    ci_high = serializers.FloatField()
    p_value = serializers.FloatField()


class ImpactSerializer(serializers.Serializer):
    attribution_days = serializers.IntegerField()
    treated = GroupSerializer()
    control = GroupSerializer()
    uplift = UpliftSerializer(allow_null=True)
    incremental_revenue = serializers.DecimalField(max_digits=16, decimal_places=2, allow_null=True)


class VariantFiguresSerializer(serializers.Serializer):
    key = serializers.CharField()
    weight = serializers.IntegerField()
    sent = serializers.IntegerField()
    converted = serializers.IntegerField()
    conversion_rate = serializers.FloatField(allow_null=True)
    uplift = serializers.FloatField(allow_null=True, help_text="Against the first variant")
    ci_low = serializers.FloatField(allow_null=True)
    ci_high = serializers.FloatField(allow_null=True)
    p_value = serializers.FloatField(allow_null=True)


class StepFiguresSerializer(serializers.Serializer):
    key = serializers.CharField()
    type = serializers.ChoiceField(choices=STEP_TYPES)
    entered = serializers.IntegerField()
    waiting = serializers.IntegerField()
    sent = serializers.IntegerField()
    suppressed = serializers.IntegerField()
    exited = serializers.IntegerField(help_text="Entries that left at this step by the goal (a purchase)")
    converted = serializers.IntegerField(help_text="Sent messages followed by a purchase within attribution_days")
    variants = VariantFiguresSerializer(many=True)


class ReportSerializer(serializers.Serializer):
    counts = serializers.DictField(
        child=serializers.IntegerField(), help_text=f"Messages per status: {', '.join(MessageStatus.values)}"
    )
    reasons = serializers.DictField(child=serializers.IntegerField(), help_text="status:reason -> messages")
    impact = ImpactSerializer()
    steps = StepFiguresSerializer(many=True)
    winner = serializers.DictField(
        required=False, help_text="step key -> {variant, decided_at, figures}, where an auto_winner step picked one"
    )


class EntrySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    customer = serializers.CharField(source="customer.external_id")
    state = serializers.ChoiceField(choices=EntryState.values)
    step = serializers.CharField(source="step_key")
    next_at = serializers.DateTimeField(allow_null=True)
    exit_reason = serializers.CharField()
    held_out = serializers.BooleanField()
    entered_at = serializers.DateTimeField()
    ended_at = serializers.DateTimeField(allow_null=True)


class CustomerMessageSerializer(serializers.ModelSerializer):
    message_id = serializers.UUIDField(source="uuid")
    campaign = serializers.IntegerField(source="campaign_id")
    campaign_name = serializers.CharField(source="campaign.name")
    step = serializers.CharField(source="step_key")
    variant = serializers.CharField(source="variant_key")
    channel = serializers.ChoiceField(choices=Channel.values)

    class Meta:
        model = Message
        fields = [
            "message_id",
            "campaign",
            "campaign_name",
            "step",
            "variant",
            "channel",
            "status",
            "reason",
            "created_at",
            "scheduled_at",
            "sent_at",
            "delivered_at",
            "opened_at",
            "clicked_at",
        ]
        read_only_fields = fields


class ProviderEventSerializer(serializers.Serializer):
    message_id = serializers.UUIDField()
    event = serializers.ChoiceField(choices=["delivered", "opened", "clicked", "bounced"])
    at = serializers.DateTimeField(required=False)
    bounce = serializers.ChoiceField(choices=["hard", "soft"], required=False, default="hard")


class ProviderEventsSerializer(serializers.Serializer):
    events = ProviderEventSerializer(many=True)


class EventsResultSerializer(serializers.Serializer):
    processed = serializers.IntegerField()
    unknown = serializers.IntegerField()
