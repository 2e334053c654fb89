"""REST API v1 for the shop's backend: customers, consents, erasure, purchases, carts, NPS.

Thin views: parse the body, call one service or selector, render. Every rule lives in the
services, every error leaves through the API's exception handler in the SPEC's shape.
"""

from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view, inline_serializer
from rest_framework import generics, status
from rest_framework import serializers as drf_serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from campaigns.services.telegram import telegram_link_url
from customers import selectors
from customers.filters import CustomerFilter
from customers.serializers import (
    API_CONSENT_SOURCES,
    BulkPurchasesWriteSerializer,
    BulkResultsSerializer,
    CartSerializer,
    CartWriteSerializer,
    ConsentWriteSerializer,
    CustomerSerializer,
    CustomerWriteSerializer,
    EraseResultSerializer,
    NpsSerializer,
    NpsWriteSerializer,
    PurchaseSerializer,
    PurchaseWriteSerializer,
)
from customers.services import (
    PurchaseInput,
    cart_upsert,
    consent_set,
    customer_erase,
    customer_get,
    customer_upsert,
    nps_record,
    purchase_record,
    purchase_refund,
    purchases_record_bulk,
)
from retention_crm import validation as v
from retention_crm.api.shapes import ERRORS, ErrorSerializer, body_object
from retention_crm.pagination import CappedCountPagination

CUSTOMER_RESPONSE = {
    "external_id": "shop-customer-42",
    "email": "ada@example.com",
    "phone": "+442079460958",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "birth_date": "1990-12-10",
    "timezone": "Europe/London",
    "tags": ["newsletter"],
    "attributes": {"source": "instagram"},
    "created_at": "2026-01-02T03:04:05Z",
    "referred_by": None,
    "erased": False,
    "orders_count": 3,
    "total_spent": "179.70",
    "first_purchase_at": "2026-02-01T10:00:00Z",
    "last_purchase_at": "2026-11-20T13:03:00Z",
    "points_balance": 180,
    "tier": "bronze",
    "rfm_segment": "Loyal",
    "churn_risk": 0.12,
    "consents": {"email": True, "sms": False, "push": False, "webhook": False, "telegram": False},
}
PURCHASE_RESPONSE = {
    "external_id": "order-10001",
    "customer": "shop-customer-42",
    "placed_at": "2026-11-20T13:03:00Z",
    "total": "59.90",
    "currency": "USD",
    "status": "completed",
    "items": [{"sku": "TEA-GREEN", "name": "Green tea", "category": "tea", "quantity": 2, "unit_price": "29.95"}],
    "cart_id": "cart-7781",
    "points_redeemed": 0,
    "created_at": "2026-11-20T13:03:02Z",
    "status_changed_at": None,
}
INVALID_EXAMPLE = OpenApiExample(
    "Invalid input",
    value={
        "error": {
            "code": "invalid",
            "message": "total: must not be negative",
            "fields": {"total": ["must not be negative"]},
        }
    },
    response_only=True,
    status_codes=["400"],
)


def created_or_ok(created: bool) -> int:
    return status.HTTP_201_CREATED if created else status.HTTP_200_OK


def actor_name(request: Request) -> str:
    return str(request.user)


@extend_schema_view(
    get=extend_schema(
        summary="List, filter and search customers",
        examples=[
            OpenApiExample(
                "A page",
                value={"count": 1, "next": None, "previous": None, "results": [CUSTOMER_RESPONSE]},
                response_only=True,
            )
        ],
    )
)
class CustomerListApi(generics.ListAPIView):
    required_scopes = {"GET": "read"}
    required_permissions = {"GET": "customers.view_customer"}
    serializer_class = CustomerSerializer
    filterset_class = CustomerFilter
    pagination_class = CappedCountPagination  # a COUNT(*) of millions of customers per page is wasted work

    def get_queryset(self):
        return selectors.customer_list()


class CustomerDetailApi(APIView):
    required_scopes = {"GET": "read", "PUT": "write"}
    # PUT creates or updates, so a session needs both, as in the admin.
    required_permissions = {
        "GET": "customers.view_customer",
        "PUT": ("customers.add_customer", "customers.change_customer"),
    }

    @extend_schema(
        responses={200: CustomerSerializer, **ERRORS},
        summary="Customer 360",
        examples=[OpenApiExample("Customer 360", value=CUSTOMER_RESPONSE, response_only=True)],
    )
    def get(self, request: Request, external_id: str) -> Response:
        customer = customer_get(external_id=external_id)
        return Response(CustomerSerializer(customer).data)

    @extend_schema(
        request=CustomerWriteSerializer,
        responses={200: CustomerSerializer, 201: CustomerSerializer, 409: ErrorSerializer, **ERRORS},
        summary="Create or update a customer (idempotent)",
        examples=[
            OpenApiExample(
                "New customer",
                value={
                    "email": "ada@example.com",
                    "phone": "+442079460958",
                    "first_name": "Ada",
                    "last_name": "Lovelace",
                    "birth_date": "1990-12-10",
                    "tags": ["newsletter"],
                    "consents": {"email": True, "sms": False},
                },
                request_only=True,
            ),
            OpenApiExample("Customer 360", value=CUSTOMER_RESPONSE, response_only=True, status_codes=["200", "201"]),
            INVALID_EXAMPLE,
        ],
    )
    def put(self, request: Request, external_id: str) -> Response:
        customer, created = customer_upsert(external_id=external_id, data=body_object(request))
        return Response(CustomerSerializer(customer).data, status=created_or_ok(created))


class CustomerConsentApi(APIView):
    required_scopes = {"POST": "write"}
    # Consents are edited on the customer's change form in the admin.
    required_permissions = {"POST": "customers.change_customer"}

    @extend_schema(
        request=ConsentWriteSerializer,
        responses={200: CustomerSerializer, **ERRORS},
        summary="Grant or revoke a channel's consent",
        examples=[
            OpenApiExample(
                "Revoke SMS", value={"channel": "sms", "granted": False, "source": "api"}, request_only=True
            ),
            OpenApiExample("Customer 360", value=CUSTOMER_RESPONSE, response_only=True),
        ],
    )
    def post(self, request: Request, external_id: str) -> Response:
        data = body_object(request)
        v.refuse_unknown_fields(data, {"channel", "granted", "source"})
        source = v.clean_choice(data.get("source") or "api", "source", API_CONSENT_SOURCES)
        customer = customer_get(external_id=external_id)
        consent_set(customer=customer, channel=data.get("channel"), granted=data.get("granted"), source=source)
        return Response(CustomerSerializer(customer).data)


class CustomerTelegramLinkApi(APIView):
    """The signed deep link that connects the customer's Telegram chat to the shop's bot (SPEC §4.2)."""

    required_scopes = {"POST": "write"}
    required_permissions = {"POST": "customers.change_customer"}

    @extend_schema(
        request=None,
        responses={
            200: inline_serializer("TelegramLink", {"url": drf_serializers.URLField()}),
            409: ErrorSerializer,
            **ERRORS,
        },
        summary="Create a Telegram deep link",
        description=(
            "Answers `https://t.me/<bot>?start=<token>`, valid for 7 days. When the customer opens it and"
            " presses Start, the bot stores their chat and grants `telegram` consent (source `telegram`);"
            " `/stop` in the chat revokes it. 409 when the customer was erased or TELEGRAM_BOT_NAME is not set."
        ),
        examples=[
            OpenApiExample(
                "Deep link",
                value={"url": "https://t.me/ShopBot?start=g8-1mXk2f-Qm9nRk3sVbW1yZcX0aT4uLp"},
                response_only=True,
            )
        ],
    )
    def post(self, request: Request, external_id: str) -> Response:
        return Response({"url": telegram_link_url(external_id=external_id)})


class CustomerEraseApi(APIView):
    required_scopes = {"POST": "write"}
    required_permissions = {"POST": "customers.erase_customer"}

    @extend_schema(
        request=None,
        responses={200: EraseResultSerializer, **ERRORS},
        summary="GDPR erasure",
        examples=[
            OpenApiExample(
                "Erased",
                value={"external_id": "shop-customer-42", "erased": True, "erased_at": "2026-11-24T09:00:00Z"},
                response_only=True,
            )
        ],
    )
    def post(self, request: Request, external_id: str) -> Response:
        customer, _ = customer_erase(external_id=external_id, actor=actor_name(request))
        return Response({"external_id": customer.external_id, "erased": True, "erased_at": customer.erased_at})


PURCHASE_EXAMPLE = {
    "external_id": "order-10001",
    "customer": "shop-customer-42",
    "placed_at": "2026-11-20T14:03:00+01:00",
    "total": "59.90",
    "currency": "USD",
    "status": "completed",
    "items": [{"sku": "TEA-GREEN", "name": "Green tea", "category": "tea", "quantity": 2, "unit_price": "29.95"}],
    "cart_id": "cart-7781",
}


class PurchaseCreateApi(APIView):
    required_scopes = {"POST": "write"}
    required_permissions = {"POST": "customers.add_purchase"}

    @extend_schema(
        request=PurchaseWriteSerializer,
        responses={200: PurchaseSerializer, 201: PurchaseSerializer, 409: ErrorSerializer, **ERRORS},
        summary="Record a purchase (idempotent on external_id)",
        examples=[
            OpenApiExample("Order", value=PURCHASE_EXAMPLE, request_only=True),
            OpenApiExample("Stored purchase", value=PURCHASE_RESPONSE, response_only=True, status_codes=["200", "201"]),
            INVALID_EXAMPLE,
        ],
    )
    def post(self, request: Request) -> Response:
        purchase, created = purchase_record(data=PurchaseInput.clean(body_object(request)))
        return Response(PurchaseSerializer(selectors.purchase_detail(purchase)).data, status=created_or_ok(created))


class PurchaseBulkApi(APIView):
    required_scopes = {"POST": "write"}
    required_permissions = {"POST": "customers.add_purchase"}

    @extend_schema(
        request=BulkPurchasesWriteSerializer,
        responses={200: BulkResultsSerializer, **ERRORS},
        summary="Record up to 1,000 purchases; one result per item",
        examples=[
            OpenApiExample("Orders", value={"purchases": [PURCHASE_EXAMPLE]}, request_only=True),
            OpenApiExample(
                "One result per order",
                value={
                    "results": [
                        {"external_id": "order-10001", "status": "created", "error": None},
                        {"external_id": "order-10002", "status": "exists", "error": None},
                        {
                            "external_id": "order-10003",
                            "status": "error",
                            "error": {
                                "code": "invalid",
                                "message": "total: must not be negative",
                                "fields": {"total": ["must not be negative"]},
                            },
                        },
                    ]
                },
                response_only=True,
            ),
        ],
    )
    def post(self, request: Request) -> Response:
        data = body_object(request)
        v.refuse_unknown_fields(data, {"purchases"})
        if "purchases" not in data:
            raise v.invalid("purchases", "is required")
        results = purchases_record_bulk(raw_purchases=data["purchases"])
        return Response({"results": [result.__dict__ for result in results]})


class PurchaseRefundApi(APIView):
    required_scopes = {"POST": "write"}
    # The purchase admin's refund action needs the same.
    required_permissions = {"POST": "customers.change_purchase"}

    @extend_schema(
        request=None,
        responses={200: PurchaseSerializer, 409: ErrorSerializer, **ERRORS},
        summary="Refund",
        examples=[
            OpenApiExample(
                "Refunded",
                value={**PURCHASE_RESPONSE, "status": "refunded", "status_changed_at": "2026-11-22T08:00:00Z"},
                response_only=True,
            )
        ],
    )
    def post(self, request: Request, external_id: str) -> Response:
        purchase, _ = purchase_refund(external_id=external_id)
        return Response(PurchaseSerializer(selectors.purchase_detail(purchase)).data)


class CartApi(APIView):
    required_scopes = {"PUT": "write"}
    required_permissions = {"PUT": ("customers.add_cart", "customers.change_cart")}

    @extend_schema(
        request=CartWriteSerializer,
        responses={200: CartSerializer, 201: CartSerializer, **ERRORS},
        summary="Create or replace a cart and its items",
        examples=[
            OpenApiExample(
                "Cart",
                value={"customer": "shop-customer-42", "items": [{"sku": "MUG", "quantity": 1, "unit_price": "12.00"}]},
                request_only=True,
            ),
            OpenApiExample(
                "Stored cart",
                value={
                    "external_id": "cart-7781",
                    "customer": "shop-customer-42",
                    "status": "open",
                    "items": [{"sku": "MUG", "name": "", "category": "", "quantity": 1, "unit_price": "12.00"}],
                    "created_at": "2026-11-20T12:00:00Z",
                    "updated_at": "2026-11-20T12:40:00Z",
                    "converted_at": None,
                },
                response_only=True,
                status_codes=["200", "201"],
            ),
        ],
    )
    def put(self, request: Request, external_id: str) -> Response:
        data = body_object(request)
        v.refuse_unknown_fields(data, {"customer", "items"})
        if data.get("customer") in (None, ""):
            raise v.invalid("customer", "is required")
        if "items" not in data:
            raise v.invalid("items", "is required (an empty list empties the cart)")
        cart, created = cart_upsert(external_id=external_id, customer=data["customer"], items=data["items"])
        return Response(CartSerializer(selectors.cart_detail(cart)).data, status=created_or_ok(created))


class NpsApi(APIView):
    required_scopes = {"POST": "write"}
    required_permissions = {"POST": "customers.add_npsresponse"}

    @extend_schema(
        request=NpsWriteSerializer,
        responses={201: NpsSerializer, **ERRORS},
        summary="Record an NPS answer",
        examples=[
            OpenApiExample(
                "Promoter", value={"customer": "shop-customer-42", "score": 9, "comment": "Fast!"}, request_only=True
            ),
            OpenApiExample(
                "Stored answer",
                value={
                    "id": 7,
                    "customer": "shop-customer-42",
                    "score": 9,
                    "comment": "Fast!",
                    "answered_at": "2026-11-21T09:00:00Z",
                },
                response_only=True,
                status_codes=["201"],
            ),
        ],
    )
    def post(self, request: Request) -> Response:
        data = body_object(request)
        v.refuse_unknown_fields(data, {"customer", "score", "comment", "answered_at"})
        if data.get("customer") in (None, ""):
            raise v.invalid("customer", "is required")
        if data.get("score") is None:
            raise v.invalid("score", "is required")
        answer = nps_record(
            customer=data["customer"],
            score=data["score"],
            comment=data.get("comment") or "",
            answered_at=data.get("answered_at"),
        )
        return Response(NpsSerializer(answer).data, status=status.HTTP_201_CREATED)
