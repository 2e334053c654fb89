"""API shapes (SPEC §6). Input is validated by the services' cleaners, so the write serializers
here describe the shapes for the OpenAPI schema and the browsable API; output serializers render."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from customers.models import CartStatus, Channel, ConsentSource, Customer, PurchaseStatus
from customers.selectors import customer_consents
from retention_crm.api.shapes import ErrorDetailSerializer

# Sources a shop may report through the API; erasure and provider events are recorded by us.
API_CONSENT_SOURCES = [ConsentSource.API, ConsentSource.IMPORT, ConsentSource.UNSUBSCRIBE_LINK]


class LineItemSerializer(serializers.Serializer):
    sku = serializers.CharField(max_length=64)
    name = serializers.CharField(max_length=255, required=False, allow_blank=True)
    category = serializers.CharField(max_length=128, required=False, allow_blank=True)
    quantity = serializers.IntegerField(min_value=1, max_value=1_000_000)
    unit_price = serializers.DecimalField(max_digits=12, decimal_places=2, min_value=0)


# --- Customers ------------------------------------------------------------------------------------


class CustomerWriteSerializer(serializers.Serializer):
    email = serializers.EmailField(required=False, allow_blank=True, allow_null=True)
    phone = serializers.CharField(required=False, allow_blank=True, allow_null=True, help_text="E.164")
    first_name = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=150)
    last_name = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=150)
    birth_date = serializers.DateField(required=False, allow_null=True)
    timezone = serializers.CharField(required=False, allow_null=True, help_text="IANA name, e.g. Europe/Berlin")
    tags = serializers.ListField(child=serializers.CharField(max_length=64), required=False, allow_null=True)
    attributes = serializers.DictField(required=False, allow_null=True)
    created_at = serializers.DateTimeField(required=False, allow_null=True, help_text="Sign-up time")
    consents = serializers.DictField(child=serializers.BooleanField(), required=False, help_text="{channel: bool}")
    referred_by = serializers.CharField(required=False, allow_null=True, help_text="The referrer's external_id")


@extend_schema_field(serializers.DictField(child=serializers.BooleanField()))
class ConsentsField(serializers.Field):
    """{channel: granted} for every channel."""

    def __init__(self, **kwargs) -> None:
        super().__init__(source="*", read_only=True, **kwargs)

    def to_representation(self, customer: Customer) -> dict[str, bool]:
        return customer_consents(customer=customer)


class CustomerSerializer(serializers.Serializer):
    """The customer 360 (SPEC §6)."""

    external_id = serializers.CharField()
    email = serializers.CharField()
    phone = serializers.CharField()
    first_name = serializers.CharField()
    last_name = serializers.CharField()
    birth_date = serializers.DateField(allow_null=True)
    timezone = serializers.CharField()
    tags = serializers.ListField(child=serializers.CharField())
    attributes = serializers.DictField()
    created_at = serializers.DateTimeField()
    referred_by = serializers.CharField(source="referred_by.external_id", allow_null=True, default=None)
    erased = serializers.BooleanField(source="is_erased")
    orders_count = serializers.IntegerField()
    total_spent = serializers.DecimalField(max_digits=14, decimal_places=2)
    first_purchase_at = serializers.DateTimeField(allow_null=True)
    last_purchase_at = serializers.DateTimeField(allow_null=True)
    points_balance = serializers.IntegerField()
    tier = serializers.CharField()
    # Scores are refreshed nightly by the metrics app; a customer not yet scored shows null.
    rfm_segment = serializers.CharField(source="score.rfm_segment", allow_null=True, default=None)
    churn_risk = serializers.FloatField(source="score.churn_risk", allow_null=True, default=None)
    consents = ConsentsField()


class ConsentWriteSerializer(serializers.Serializer):
    channel = serializers.ChoiceField(choices=Channel.values)
    granted = serializers.BooleanField()
    # DRF's metaclass takes declared fields out of the class, so this does not hide Field.source.
    source = serializers.ChoiceField(  # type: ignore[assignment]
        choices=API_CONSENT_SOURCES, required=False, default=ConsentSource.API
    )


class EraseResultSerializer(serializers.Serializer):
    external_id = serializers.CharField()
    erased = serializers.BooleanField()
    erased_at = serializers.DateTimeField()


# --- Purchases and carts --------------------------------------------------------------------------


class PurchaseWriteSerializer(serializers.Serializer):
    external_id = serializers.CharField(max_length=64)
    customer = serializers.CharField(max_length=64, help_text="The customer's external_id; unknown ones are created")
    placed_at = serializers.DateTimeField(help_text="ISO 8601; a time without offset is read in the store's zone")
    total = serializers.DecimalField(max_digits=12, decimal_places=2, min_value=0)
    currency = serializers.CharField(required=False, help_text="The store's currency; another is refused")
    status = serializers.ChoiceField(choices=PurchaseStatus.choices, required=False, default=PurchaseStatus.COMPLETED)
    items = LineItemSerializer(many=True, required=False)
    cart_id = serializers.CharField(max_length=64, required=False, allow_null=True)
    points_redeemed = serializers.IntegerField(min_value=0, required=False, allow_null=True)


class PurchaseSerializer(serializers.Serializer):
    # A plain Serializer: ModelSerializer rebuilds its fields on every call, a cost on the hot path.
    external_id = serializers.CharField()
    customer = serializers.CharField(source="customer.external_id")
    placed_at = serializers.DateTimeField()
    total = serializers.DecimalField(max_digits=12, decimal_places=2)
    currency = serializers.CharField()
    status = serializers.ChoiceField(choices=PurchaseStatus.choices)
    items = LineItemSerializer(many=True, source="items.all")
    cart_id = serializers.CharField(source="cart_external_id")
    points_redeemed = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    status_changed_at = serializers.DateTimeField(allow_null=True)


class BulkPurchasesWriteSerializer(serializers.Serializer):
    # many=True makes a ListSerializer, which takes max_length; the stubs type the serializer itself.
    purchases = PurchaseWriteSerializer(many=True, max_length=1000)  # type: ignore[call-arg]


BULK_RESULT_STATUSES = [("created", "created"), ("exists", "exists"), ("error", "error")]


class BulkResultSerializer(serializers.Serializer):
    external_id = serializers.CharField(allow_null=True)
    status = serializers.ChoiceField(choices=BULK_RESULT_STATUSES)
    error = ErrorDetailSerializer(allow_null=True)


class BulkResultsSerializer(serializers.Serializer):
    results = BulkResultSerializer(many=True)


class CartWriteSerializer(serializers.Serializer):
    customer = serializers.CharField(max_length=64, help_text="The customer's external_id")
    items = LineItemSerializer(many=True, help_text="The whole cart; an empty list empties it")


class CartSerializer(serializers.Serializer):
    external_id = serializers.CharField()
    customer = serializers.CharField(source="customer.external_id")
    status = serializers.ChoiceField(choices=CartStatus.choices)
    items = LineItemSerializer(many=True, source="items.all")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    converted_at = serializers.DateTimeField(allow_null=True)


# --- NPS ------------------------------------------------------------------------------------------


class NpsWriteSerializer(serializers.Serializer):
    customer = serializers.CharField(max_length=64)
    score = serializers.IntegerField(min_value=0, max_value=10)
    comment = serializers.CharField(required=False, allow_blank=True, max_length=5000)
    answered_at = serializers.DateTimeField(required=False)


class NpsSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    customer = serializers.CharField(source="customer.external_id")
    score = serializers.IntegerField()
    comment = serializers.CharField()
    answered_at = serializers.DateTimeField()
