"""REST API v1 for campaigns (SPEC §6): list, create, read, change, run now, report; and the
providers' delivery callbacks. Thin views: parse, call one service or selector, render."""

from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from campaigns import selectors
from campaigns.models import CampaignStatus, Entry, EntryState, Message, Trigger
from campaigns.serializers import (
    CampaignSerializer,
    CampaignWriteSerializer,
    CustomerMessageSerializer,
    EntrySerializer,
    EventsResultSerializer,
    ProviderEventsSerializer,
    ReportSerializer,
    RunResultSerializer,
)
from campaigns.services import (
    campaign_create,
    campaign_get,
    campaign_run,
    campaign_update,
    provider_events_clean,
    provider_events_record,
)
from customers.services import customer_get
from retention_crm import validation as v
from retention_crm.api.shapes import ERRORS, ErrorSerializer, body_object
from retention_crm.api.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, SignatureError, signature_verify
from retention_crm.api.throttling import CallbackRateThrottle

CAMPAIGN_EXAMPLE = {
    "name": "Come back",
    "trigger": "reactivation",
    "channel": "email",
    "status": "active",
    "subject": "We miss you, {{ customer.first_name }}",
    "body": "Here are {{ offer.bonus_points }} points to welcome you back.",
    "params": {"inactive_days": 90},
    "audience": {"tier": ["silver", "gold"]},
    "offer": {"bonus_points": 100},
    "holdout_percent": 10,
    "attribution_days": 7,
}

JOURNEY_EXAMPLE = {
    "name": "Abandoned cart series",
    "trigger": "abandoned_cart",
    "channel": "email",
    "status": "active",
    "params": {"delay_hours": 1},
    "steps": [
        {
            "key": "reminder",
            "type": "message",
            "subject": "You left something",
            "body": "{{ cart.items|length }} items",
        },
        {"key": "a-day", "type": "wait", "minutes": 1440},
        {
            "key": "code",
            "type": "message",
            "subject": "10 % off your cart",
            "body": "Your code: {{ offer.discount_code }}",
            "offer": {"discount_percent": 10, "code_prefix": "CART"},
        },
    ],
    "exit_on": "purchase",
    "reentry": {"after_days": 30},
}

CAMPAIGN_RESPONSE = {
    "id": 1,
    **CAMPAIGN_EXAMPLE,
    "created_at": "2026-11-20T09:00:00Z",
    "updated_at": "2026-11-20T09:00:00Z",
    "last_evaluated_at": "2026-11-24T09:05:00Z",
    "steps": [],
    "exit_on": "purchase",
    "reentry": {"after_days": 0},
}
REPORT_EXAMPLE = {
    "counts": {
        "queued": 12,
        "sending": 0,
        "sent": 640,
        "failed": 3,
        "held_out": 91,
        "suppressed": 17,
        "delivered": 401,
        "opened": 122,
        "clicked": 37,
    },
    "reasons": {"suppressed:no_consent": 9, "suppressed:frequency_cap": 8, "queued:frequency_cap": 12},
    "impact": {
        "attribution_days": 7,
        "treated": {
            "customers": 1203,
            "converted": 114,
            "conversion_rate": 0.0948,
            "revenue": "6123.40",
            "revenue_per_customer": "5.09",
            "attributed_purchases": 118,
            "attributed_revenue": "6020.10",
        },
        "control": {
            "customers": 91,
            "converted": 5,
            "conversion_rate": 0.0549,
            "revenue": "255.00",
            "revenue_per_customer": "2.80",
            "attributed_purchases": 5,
            "attributed_revenue": "255.00",
        },
        "uplift": {"absolute": 0.0398, "ci_low": -0.0085, "ci_high": 0.0882, "p_value": 0.21},
        "incremental_revenue": "2751.87",
    },
}


class CampaignListApi(generics.ListAPIView):
    required_scopes = {"GET": "campaigns", "POST": "campaigns"}
    required_permissions = {"GET": "campaigns.view_campaign", "POST": "campaigns.add_campaign"}
    serializer_class = CampaignSerializer

    def get_queryset(self):
        status_filter = self.request.query_params.get("status") or None
        trigger = self.request.query_params.get("trigger") or None
        if status_filter is not None:
            v.clean_choice(status_filter, "status", CampaignStatus.values)
        if trigger is not None:
            v.clean_choice(trigger, "trigger", Trigger.values)
        return selectors.campaign_list(status=status_filter, trigger=trigger)

    @extend_schema(
        summary="List campaigns",
        parameters=[
            OpenApiParameter("status", str, enum=CampaignStatus.values),
            OpenApiParameter("trigger", str, enum=Trigger.values),
        ],
        examples=[
            OpenApiExample(
                "A page",
                value={"count": 1, "next": None, "previous": None, "results": [CAMPAIGN_RESPONSE]},
                response_only=True,
            )
        ],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=CampaignWriteSerializer,
        responses={201: CampaignSerializer, **ERRORS},
        summary="Create a campaign",
        examples=[
            OpenApiExample("Reactivation", value=CAMPAIGN_EXAMPLE, request_only=True),
            OpenApiExample("A journey", value=JOURNEY_EXAMPLE, request_only=True),
            OpenApiExample("Created", value=CAMPAIGN_RESPONSE, response_only=True, status_codes=["201"]),
        ],
    )
    def post(self, request: Request) -> Response:
        campaign = campaign_create(data=body_object(request), user=request.user)
        return Response(CampaignSerializer(campaign).data, status=status.HTTP_201_CREATED)


class CampaignDetailApi(APIView):
    required_scopes = {"GET": "campaigns", "PATCH": "campaigns"}
    required_permissions = {"GET": "campaigns.view_campaign", "PATCH": "campaigns.change_campaign"}

    @extend_schema(
        responses={200: CampaignSerializer, **ERRORS},
        summary="A campaign",
        examples=[OpenApiExample("Campaign", value=CAMPAIGN_RESPONSE, response_only=True)],
    )
    def get(self, request: Request, campaign_id: str) -> Response:
        return Response(CampaignSerializer(campaign_get(campaign_id=campaign_id)).data)

    @extend_schema(
        request=CampaignWriteSerializer(partial=True),
        responses={200: CampaignSerializer, 409: ErrorSerializer, **ERRORS},
        summary='Change a campaign (e.g. {"status": "paused"})',
        examples=[
            OpenApiExample("Pause", value={"status": "paused"}, request_only=True),
            OpenApiExample("Paused", value={**CAMPAIGN_RESPONSE, "status": "paused"}, response_only=True),
        ],
    )
    def patch(self, request: Request, campaign_id: str) -> Response:
        campaign = campaign_get(campaign_id=campaign_id)
        campaign = campaign_update(campaign_id=campaign.pk, data=body_object(request))
        return Response(CampaignSerializer(campaign).data)


class CampaignRunApi(APIView):
    required_scopes = {"POST": "campaigns"}
    required_permissions = {"POST": "campaigns.run_campaign"}

    @extend_schema(
        request=None,
        responses={200: RunResultSerializer, 409: ErrorSerializer, **ERRORS},
        summary="Evaluate now; counts of the messages this run created (sending goes on in the workers)",
        examples=[
            OpenApiExample(
                "Run", value={"queued": 812, "held_out": 91, "suppressed": 3, "deferred": 17}, response_only=True
            )
        ],
    )
    def post(self, request: Request, campaign_id: str) -> Response:
        campaign = campaign_get(campaign_id=campaign_id)
        return Response(campaign_run(campaign_id=campaign.pk).counts())


class CampaignReportApi(APIView):
    required_scopes = {"GET": "campaigns"}
    required_permissions = {"GET": "campaigns.view_campaign"}

    @extend_schema(
        responses={200: ReportSerializer, **ERRORS},
        summary="Message counts per status and impact",
        examples=[OpenApiExample("Report", value=REPORT_EXAMPLE, response_only=True)],
    )
    def get(self, request: Request, campaign_id: str) -> Response:
        return Response(selectors.campaign_report(campaign=campaign_get(campaign_id=campaign_id)))


class CampaignEntriesApi(generics.ListAPIView):
    """A journey's entries (SPEC §4.1): who is where, waiting until when, and why those who left left."""

    required_scopes = {"GET": "campaigns"}
    required_permissions = {"GET": "campaigns.view_campaign"}
    serializer_class = EntrySerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no path
            return Entry.objects.none()
        campaign = campaign_get(campaign_id=self.kwargs["campaign_id"])
        state = self.request.query_params.get("state") or None
        if state is not None:
            v.clean_choice(state, "state", EntryState.values)
        customer = self.request.query_params.get("customer") or None
        if customer is not None:
            customer = v.clean_external_id(customer, "customer")
        return selectors.campaign_entries(campaign=campaign, customer=customer, state=state)

    @extend_schema(
        summary="A journey's entries: customer, state, step, next_at, exit reason",
        parameters=[
            OpenApiParameter("customer", str, description="A customer's external_id"),
            OpenApiParameter("state", str, enum=EntryState.values),
        ],
        responses={200: EntrySerializer(many=True), **ERRORS},
        examples=[
            OpenApiExample(
                "Waiting for the second reminder",
                value={
                    "count": 1,
                    "next": None,
                    "previous": None,
                    "results": [
                        {
                            "id": 812,
                            "customer": "cust-1001",
                            "state": "active",
                            "step": "wait-a-day",
                            "next_at": "2026-11-25T10:00:00Z",
                            "exit_reason": "",
                            "held_out": False,
                            "entered_at": "2026-11-24T09:05:00Z",
                            "ended_at": None,
                        }
                    ],
                },
                response_only=True,
            )
        ],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class CustomerMessagesApi(generics.ListAPIView):
    """Every message campaigns decided for one customer, newest first."""

    required_scopes = {"GET": "read"}
    required_permissions = {"GET": "campaigns.view_message"}
    serializer_class = CustomerMessageSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Message.objects.none()
        customer = customer_get(external_id=self.kwargs["external_id"])
        return selectors.customer_messages(customer_id=customer.pk)

    @extend_schema(
        summary="A customer's messages: campaign, step, variant, channel, status, times",
        responses={200: CustomerMessageSerializer(many=True), **ERRORS},
        examples=[
            OpenApiExample(
                "The first reminder, clicked",
                value={
                    "count": 1,
                    "next": None,
                    "previous": None,
                    "results": [
                        {
                            "message_id": "0b7e7dd2-5f1b-4bfb-9d65-0d0b3f1f2a51",
                            "campaign": 3,
                            "campaign_name": "Abandoned cart series",
                            "step": "reminder",
                            "variant": "",
                            "channel": "email",
                            "status": "clicked",
                            "reason": "",
                            "created_at": "2026-11-24T09:05:00Z",
                            "scheduled_at": "2026-11-24T09:05:00Z",
                            "sent_at": "2026-11-24T09:05:02Z",
                            "delivered_at": "2026-11-24T09:05:04Z",
                            "opened_at": "2026-11-24T09:40:00Z",
                            "clicked_at": "2026-11-24T09:41:10Z",
                        }
                    ],
                },
                response_only=True,
            )
        ],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class SignedCallbackPermission(BasePermission):
    """Providers sign each callback: HMAC-SHA256 of ``<X-Signature-Timestamp>.<raw body>`` with
    CAMPAIGN_CALLBACK_SECRET in ``X-Signature: sha256=<hex>``; a stale timestamp or a signature
    seen before is refused (retention_crm/api/signing.py)."""

    message = "A valid X-Signature and X-Signature-Timestamp are required."

    def has_permission(self, request: Request, view: Any) -> bool:
        try:
            signature_verify(
                secret=settings.CAMPAIGN_CALLBACK_SECRET,
                timestamp=request.headers.get(TIMESTAMP_HEADER, ""),
                signature=request.headers.get(SIGNATURE_HEADER, ""),
                body=request.body,
                tolerance_seconds=settings.CAMPAIGN_CALLBACK_TOLERANCE_SECONDS,
            )
        except SignatureError as error:
            self.message = f"Callback refused: {error}."
            return False
        return True


class ProviderEventsApi(APIView):
    authentication_classes: list = []
    permission_classes = [SignedCallbackPermission]
    throttle_classes = [CallbackRateThrottle]
    required_scopes: dict = {}

    def check_permissions(self, request: Request) -> None:
        # The rate limit comes before the signature check, so a flood of bad signatures is
        # limited too (DRF checks throttles after permissions).
        super().check_throttles(request)
        super().check_permissions(request)

    def check_throttles(self, request: Request) -> None:
        pass  # done in check_permissions

    @extend_schema(
        request=ProviderEventsSerializer,
        responses={200: EventsResultSerializer, **ERRORS},
        summary="Provider callbacks: delivered, opened, clicked, bounced (signed: X-Signature, X-Signature-Timestamp)",
        auth=[],
        parameters=[
            OpenApiParameter(TIMESTAMP_HEADER, str, OpenApiParameter.HEADER, required=True, description="Unix seconds"),
            OpenApiParameter(
                SIGNATURE_HEADER,
                str,
                OpenApiParameter.HEADER,
                required=True,
                description="sha256=<hex HMAC-SHA256 of '<timestamp>.<raw body>' with the callback secret>",
            ),
        ],
        examples=[
            OpenApiExample(
                "Hard bounce",
                value={"events": [{"message_id": "0b7e7dd2-5f1b-4bfb-9d65-0d0b3f1f2a51", "event": "bounced"}]},
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        result = provider_events_record(events=provider_events_clean(request.data))
        return Response({"processed": result.processed, "unknown": result.unknown})
