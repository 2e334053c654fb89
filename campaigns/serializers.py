"""API shapes (SPEC §6 campaign). Input is validated by ``campaign_clean`` (one set of rules for the
API and the admin); the write serializer describes the shape for the OpenAPI schema."""

from rest_framework import serializers

from campaigns.models import Campaign, CampaignStatus, MessageStatus, Trigger
from campaigns.services.campaigns import CAMPAIGN_FIELDS
from customers.models import Channel


class CampaignSerializer(serializers.ModelSerializer):
    # The same choice set as the consent API's channel, so the schema has one Channel enum.
    channel = serializers.ChoiceField(choices=Channel.values, read_only=True)

    class Meta:
        model = Campaign
        fields = ["id", *CAMPAIGN_FIELDS, "created_at", "updated_at", "last_evaluated_at"]
        read_only_fields = fields


class CampaignWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    trigger = serializers.ChoiceField(choices=Trigger.choices)
    channel = serializers.ChoiceField(choices=Channel.values, required=False, default=Channel.EMAIL)
    status = serializers.ChoiceField(choices=CampaignStatus.choices, required=False, default=CampaignStatus.DRAFT)
    subject = serializers.CharField(required=False, allow_blank=True, help_text="Template; required for email")
    body = serializers.CharField(help_text="Template (Django template language, sandboxed)")
    params = serializers.DictField(required=False, help_text="Trigger parameters; {} means the trigger's defaults")
    audience = serializers.DictField(
        required=False,
        help_text="tier, rfm_segment, tags, exclude_tags, min_total_spent, max_total_spent, consent; {} = all",
    )
    offer = serializers.DictField(required=False, help_text='{} or {"bonus_points": 100} or {"discount_percent": 10}')
    holdout_percent = serializers.IntegerField(required=False, min_value=0, max_value=50, default=10)
    attribution_days = serializers.IntegerField(required=False, min_value=1, max_value=365, default=7)


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


class ReportSerializer(serializers.Serializer):
    counts = serializers.DictField(
        child=serializers.IntegerField(), help_text=f"Messages per status: {', '.join(MessageStatus.values)}"
    )
    reasons = serializers.DictField(child=serializers.IntegerField(), help_text="status:reason -> messages")
    impact = ImpactSerializer()


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
