"""Response shapes of the metrics API (SPEC §6). Rates are fractions, money is a decimal string."""

from typing import TypedDict

from rest_framework import serializers

from metrics.rfm import SEGMENTS


class MoneyDigits(TypedDict):
    max_digits: int
    decimal_places: int


MONEY: MoneyDigits = {"max_digits": 16, "decimal_places": 2}


class RetentionSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    window_days = serializers.IntegerField()
    customers_start = serializers.IntegerField(help_text="S = |active(start)|")
    customers_end = serializers.IntegerField(help_text="E = |active(end)|")
    new_customers = serializers.IntegerField(help_text="First completed purchase in [start, end)")
    retained = serializers.IntegerField()
    reactivated = serializers.IntegerField()
    lost = serializers.IntegerField()
    crr = serializers.FloatField(allow_null=True, help_text="(retained + reactivated) / S; null when S = 0")
    churn_rate = serializers.FloatField(allow_null=True, help_text="lost / S; null when S = 0")


class SummarySerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    window_days = serializers.IntegerField()
    purchasing_customers = serializers.IntegerField()
    repeat_customers = serializers.IntegerField()
    orders = serializers.IntegerField()
    revenue = serializers.DecimalField(**MONEY)
    customers_end = serializers.IntegerField()
    repeat_purchase_rate = serializers.FloatField(allow_null=True)
    purchase_frequency = serializers.FloatField(allow_null=True)
    aov = serializers.DecimalField(**MONEY, allow_null=True)
    arpu = serializers.DecimalField(**MONEY, allow_null=True)
    arppu = serializers.DecimalField(
        **MONEY, allow_null=True, help_text="revenue / purchasing_customers; null when nobody bought"
    )
    clv = serializers.DecimalField(**MONEY, allow_null=True)
    clv_customers = serializers.IntegerField()
    nps = serializers.FloatField(allow_null=True, help_text="% promoters - % detractors, -100..100")
    nps_answers = serializers.IntegerField()
    promoters = serializers.IntegerField()
    passives = serializers.IntegerField()
    detractors = serializers.IntegerField()


class CohortSerializer(serializers.Serializer):
    cohort = serializers.CharField(help_text="YYYY-MM, store time")
    size = serializers.IntegerField()
    retention = serializers.ListField(child=serializers.FloatField(), help_text="Month 0, 1, ...; month 0 is 1.0")
    active = serializers.ListField(child=serializers.IntegerField())


class CohortsSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    cohorts = CohortSerializer(many=True)


class RfmRowSerializer(serializers.Serializer):
    customer = serializers.CharField(help_text="The customer's external_id")
    last_purchase_at = serializers.DateTimeField()
    recency_days = serializers.IntegerField()
    frequency = serializers.IntegerField()
    monetary = serializers.DecimalField(**MONEY)
    r = serializers.IntegerField()
    f = serializers.IntegerField()
    m = serializers.IntegerField()
    score = serializers.CharField()
    segment = serializers.ChoiceField(choices=SEGMENTS)


class RfmSerializer(serializers.Serializer):
    as_of = serializers.DateTimeField()
    customers = serializers.IntegerField()
    segments = serializers.DictField(child=serializers.IntegerField())
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = RfmRowSerializer(many=True)


class RfmFlowSerializer(serializers.Serializer):
    """``from`` is a Python keyword, so it (and ``to``, to keep the order) is added in get_fields."""

    flow = serializers.DictField(
        child=serializers.DictField(child=serializers.IntegerField()),
        help_text='{segment as of from (or "none": no completed purchase before from): {segment as of to: customers}}',
    )

    def get_fields(self) -> dict:
        fields = super().get_fields()
        return {"from": serializers.DateTimeField(), "to": serializers.DateTimeField(), **fields}
