"""REST API v1 for loyalty (SPEC §3, §6): balance and history, redemption at checkout, staff
adjustments. Thin views: parse, call one service or selector, render; scope ``loyalty`` (balance
and redemption) and ``loyalty_adjust`` (adjustments, capped per request by LOYALTY_ADJUST_MAX_POINTS).

Redeem and adjust answer 200 with the same body for the first request and for a repeat under the
same idempotency key (a repeat also carries ``Idempotent-Replayed: true``), so a shop retrying
after a timeout cannot tell the two apart and never double-spends.
"""

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from customers.loyalty.selectors import DEFAULT_EXPIRING_DAYS, customer_loyalty, points_history
from customers.loyalty.services import Tier, points_adjust_by_key, points_redeem
from customers.models import PointsEntry
from customers.services import customer_get
from retention_crm import validation as v
from retention_crm.api.pagination import Pagination
from retention_crm.api.shapes import ERRORS, ErrorSerializer, body_object

MAX_EXPIRING_DAYS = 3_650
REPLAYED_HEADER = "Idempotent-Replayed"


def _body(request: Request, allowed: set[str]) -> dict[str, Any]:
    data = body_object(request)
    v.refuse_unknown_fields(data, allowed)
    return data


# --- Shapes ---------------------------------------------------------------------------------------


class TierSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    threshold = serializers.DecimalField(max_digits=14, decimal_places=2)
    multiplier = serializers.DecimalField(max_digits=6, decimal_places=3)


class ProgressSerializer(serializers.Serializer):
    trailing_spend = serializers.DecimalField(
        max_digits=14, decimal_places=2, help_text="Completed spend in the last 365 days"
    )
    spend_to_next_tier = serializers.DecimalField(max_digits=14, decimal_places=2, allow_null=True)
    share = serializers.FloatField(help_text="0..1 of the way from this tier's threshold to the next")


class ExpiringSerializer(serializers.Serializer):
    days = serializers.IntegerField()
    points = serializers.IntegerField()
    earliest_expiry = serializers.DateTimeField(allow_null=True)


class PointsEntrySerializer(serializers.ModelSerializer):
    purchase = serializers.CharField(source="purchase.external_id", allow_null=True, default=None)

    class Meta:
        model = PointsEntry
        fields = (
            "id",
            "kind",
            "points",
            "balance_after",
            "created_at",
            "expires_at",
            "remaining",
            "uncovered",
            "reason",
            "order_id",
            "purchase",
            "discount",
        )


class HistorySerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = PointsEntrySerializer(many=True)


class LoyaltySerializer(serializers.Serializer):
    customer = serializers.CharField(help_text="The customer's external_id")
    balance = serializers.IntegerField()
    balance_value = serializers.DecimalField(
        max_digits=14, decimal_places=2, help_text="What the balance is worth at checkout"
    )
    tier = TierSerializer()
    next_tier = TierSerializer(allow_null=True)
    progress = ProgressSerializer()
    expiring = ExpiringSerializer()
    history = HistorySerializer()


class RedeemWriteSerializer(serializers.Serializer):
    points = serializers.IntegerField(min_value=1)
    order_total = serializers.DecimalField(max_digits=12, decimal_places=2, min_value=0)
    order_id = serializers.CharField(max_length=64, required=False, allow_null=True)
    idempotency_key = serializers.CharField(max_length=100)


class RedeemSerializer(serializers.Serializer):
    redeemed = serializers.IntegerField()
    discount = serializers.DecimalField(max_digits=12, decimal_places=2)
    balance = serializers.IntegerField()
    order_id = serializers.CharField(allow_blank=True)


class AdjustWriteSerializer(serializers.Serializer):
    points = serializers.IntegerField(help_text="Signed: positive adds, negative takes")
    reason = serializers.CharField(max_length=500)
    idempotency_key = serializers.CharField(max_length=100)


class AdjustSerializer(serializers.Serializer):
    adjusted = serializers.IntegerField()
    balance = serializers.IntegerField()
    reason = serializers.CharField()


def _tier(tier: Tier | None) -> dict[str, Any] | None:
    if tier is None:
        return None
    return {"code": tier.code, "name": tier.name, "threshold": tier.threshold, "multiplier": tier.multiplier}


# --- Views ----------------------------------------------------------------------------------------

LOYALTY_EXAMPLE = {
    "customer": "shop-customer-42",
    "balance": 1240,
    "balance_value": "12.40",
    "tier": {"code": "silver", "name": "Silver", "threshold": "500.00", "multiplier": "1.250"},
    "next_tier": {"code": "gold", "name": "Gold", "threshold": "2000.00", "multiplier": "1.500"},
    "progress": {"trailing_spend": "812.40", "spend_to_next_tier": "1187.60", "share": 0.2083},
    "expiring": {"days": 30, "points": 120, "earliest_expiry": "2026-12-02T14:03:00Z"},
    "history": {
        "count": 1,
        "next": None,
        "previous": None,
        "results": [
            {
                "id": 981,
                "kind": "earn",
                "points": 74,
                "balance_after": 1240,
                "created_at": "2026-11-20T14:03:05Z",
                "expires_at": "2027-11-20T14:03:00Z",
                "remaining": 74,
                "uncovered": 0,
                "reason": "",
                "order_id": "",
                "purchase": "order-10001",
                "discount": None,
            }
        ],
    },
}


class CustomerLoyaltyApi(APIView):
    required_scopes = {"GET": "loyalty"}
    required_permissions = {"GET": ("customers.view_customer", "customers.view_pointsentry")}

    @extend_schema(
        parameters=[
            OpenApiParameter("expiring_days", OpenApiTypes.INT, description="Window for expiring points (30)"),
            OpenApiParameter("limit", OpenApiTypes.INT, description="History entries per page (50, at most 500)"),
            OpenApiParameter("offset", OpenApiTypes.INT, description="History entries to skip"),
        ],
        responses={200: LoyaltySerializer, **ERRORS},
        summary="Loyalty: balance, tier and progress, expiring points, history",
        examples=[OpenApiExample("Silver customer", value=LOYALTY_EXAMPLE, response_only=True, status_codes=["200"])],
    )
    def get(self, request: Request, external_id: str) -> Response:
        raw_days = request.query_params.get("expiring_days")
        days = (
            DEFAULT_EXPIRING_DAYS
            if raw_days in (None, "")
            else v.clean_count(raw_days, "expiring_days", maximum=MAX_EXPIRING_DAYS)
        )
        customer = customer_get(external_id=external_id)
        summary = customer_loyalty(customer=customer, expiring_days=days)
        paginator = Pagination()
        page = paginator.paginate_queryset(points_history(customer=customer), request, view=self)
        data = {
            "customer": customer.external_id,
            "balance": summary.balance,
            "balance_value": summary.balance_value,
            "tier": _tier(summary.tier),
            "next_tier": _tier(summary.next_tier),
            "progress": {
                "trailing_spend": summary.trailing_spend,
                "spend_to_next_tier": summary.spend_to_next_tier,
                "share": summary.progress,
            },
            "expiring": {
                "days": summary.expiring.days,
                "points": summary.expiring.points,
                "earliest_expiry": summary.expiring.earliest_expiry,
            },
            "history": {
                "count": paginator.count,
                "next": paginator.get_next_link(),
                "previous": paginator.get_previous_link(),
                "results": page,
            },
        }
        return Response(LoyaltySerializer(data).data)


class LoyaltyRedeemApi(APIView):
    required_scopes = {"POST": "loyalty"}
    # Spending a customer's points is, for staff, an adjustment: the admin gives it to adjust_points.
    required_permissions = {"POST": "customers.adjust_points"}

    @extend_schema(
        request=RedeemWriteSerializer,
        responses={200: RedeemSerializer, 409: ErrorSerializer, **ERRORS},
        summary="Redeem points at checkout (idempotent on idempotency_key)",
        description=(
            "1 point pays the program's point_value, at most max_redeem_share of order_total. Too few "
            "points: 409 insufficient_points; over the share: 400 max_share_exceeded; the same "
            "idempotency_key again: the first answer; the same key for another request: 409."
        ),
        examples=[
            OpenApiExample(
                "Checkout",
                value={"points": 500, "order_total": "59.90", "order_id": "order-10001", "idempotency_key": "chk-8812"},
                request_only=True,
            ),
            OpenApiExample(
                "Redeemed",
                value={"redeemed": 500, "discount": "5.00", "balance": 740, "order_id": "order-10001"},
                response_only=True,
                status_codes=["200"],
            ),
        ],
    )
    def post(self, request: Request, external_id: str) -> Response:
        data = _body(request, {"points", "order_total", "order_id", "idempotency_key"})
        for required in ("points", "order_total", "idempotency_key"):
            if data.get(required) in (None, ""):
                raise v.invalid(required, "is required")
        result = points_redeem(
            customer=external_id,
            points=data["points"],
            order_total=data["order_total"],
            order_id=data.get("order_id"),
            idempotency_key=data["idempotency_key"],
        )
        body = {
            "redeemed": result.redeemed,
            "discount": result.discount,
            "balance": result.balance,
            "order_id": result.entry.order_id,
        }
        headers = {REPLAYED_HEADER: "true"} if result.replayed else {}
        return Response(RedeemSerializer(body).data, headers=headers)


class LoyaltyAdjustApi(APIView):
    required_scopes = {"POST": "loyalty_adjust"}
    required_permissions = {"POST": "customers.adjust_points"}

    @extend_schema(
        request=AdjustWriteSerializer,
        responses={200: AdjustSerializer, 409: ErrorSerializer, **ERRORS},
        summary="Adjust a customer's points with a reason (idempotent on idempotency_key)",
        description=(
            "Scope loyalty_adjust. One request moves at most LOYALTY_ADJUST_MAX_POINTS (10000 by default) "
            "either way; more is a 400 on points. Grants of LOYALTY_ADJUST_AUDIT_POINTS or more are "
            "audited apart (points.large_grant)."
        ),
        examples=[
            OpenApiExample(
                "Goodwill",
                value={"points": 250, "reason": "Parcel arrived late", "idempotency_key": "ticket-4411"},
                request_only=True,
            ),
            OpenApiExample(
                "Adjusted",
                value={"adjusted": 250, "balance": 990, "reason": "Parcel arrived late"},
                response_only=True,
                status_codes=["200"],
            ),
        ],
    )
    def post(self, request: Request, external_id: str) -> Response:
        data = _body(request, {"points", "reason", "idempotency_key"})
        for required in ("points", "reason", "idempotency_key"):
            if data.get(required) in (None, ""):
                raise v.invalid(required, "is required")
        result = points_adjust_by_key(
            customer=external_id,
            points=data["points"],
            reason=data["reason"],
            idempotency_key=data["idempotency_key"],
            actor=str(request.user),
            created_by_id=request.user.pk if getattr(request.user, "is_staff", False) else None,
        )
        headers = {REPLAYED_HEADER: "true"} if result.replayed else {}
        body = {"adjusted": result.points, "balance": result.balance, "reason": result.entry.reason}
        return Response(AdjustSerializer(body).data, headers=headers)
