"""REST API v1 for metrics (scope ``metrics``). Thin views: parse the query, call one figure
family, render through the response serializer."""

from collections.abc import Callable, Sequence
from typing import Any

from django.utils.http import http_date
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from campaigns.groups import GROUPS, group_customer_ids
from metrics import rfm, rfm_flow, rfm_stored
from metrics.periods import parse_as_of, parse_cohort_period, parse_period, parse_window
from metrics.read_jobs import RETRY_AFTER_SECONDS, ReadAnswer, RfmPageQuery, read_answer, rfm_page_answer
from metrics.retention import retention
from metrics.serializers import (
    CohortsSerializer,
    RetentionSerializer,
    RfmFlowSerializer,
    RfmSerializer,
    SummarySerializer,
)
from retention_crm.api.pagination import Pagination
from retention_crm.api.shapes import ErrorSerializer
from retention_crm.errors import ApplicationError

# Staff sessions read metrics with the dashboard's permission (analysts and marketers hold it).
DASHBOARD_PERMISSION = "metrics.view_dashboard"
ERRORS = {400: ErrorSerializer, 401: ErrorSerializer, 403: ErrorSerializer}


class ComputingSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["pending", "running"])
    requested_at = serializers.DateTimeField()
    detail = serializers.CharField()


# A read no rollup answers and too large to compute during the request (metrics/read_jobs.py).
COMPUTING = {
    202: OpenApiResponse(
        ComputingSerializer,
        description=f"Being computed by a worker: ask again after `Retry-After` ({RETRY_AFTER_SECONDS} s).",
    )
}


def answered(answer: ReadAnswer) -> Response:
    """The body, or 202 while a worker computes it; a worker's result says when it was computed."""
    if answer.body is None:
        job = answer.job
        assert job is not None  # no body: a worker has the job
        body = {
            "status": job.status,
            "requested_at": job.requested_at,
            "detail": "The figures are being computed; ask again in a few seconds.",
        }
        data = ComputingSerializer(body).data
        return Response(data, status=202, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    response = Response(answer.body)
    if answer.job is not None and answer.job.finished_at is not None:
        response["Last-Modified"] = http_date(answer.job.finished_at.timestamp())
    return response


MOMENT = "A date (midnight, store time) or an ISO 8601 datetime"
START = OpenApiParameter("start", OpenApiTypes.STR, description=f"{MOMENT}; default: `end` minus 30 days")
END = OpenApiParameter("end", OpenApiTypes.STR, description=f"{MOMENT}; default: midnight starting today")
WINDOW = OpenApiParameter("window_days", OpenApiTypes.INT, description="W, 1 to 3650 days; default 90")
PERIOD = {"start": "2026-03-01T00:00:00Z", "end": "2026-04-01T00:00:00Z"}
RETENTION_EXAMPLE = OpenApiExample(
    "30 active at the start, 8 new, 2 lost",
    value={
        **PERIOD,
        "window_days": 90,
        "customers_start": 30,
        "customers_end": 36,
        "new_customers": 8,
        "retained": 28,
        "reactivated": 0,
        "lost": 2,
        "crr": 0.9333333333333333,
        "churn_rate": 0.06666666666666667,
    },
    response_only=True,
)
SUMMARY_EXAMPLE = OpenApiExample(
    "March",
    value={
        **PERIOD,
        "window_days": 90,
        "purchasing_customers": 2,
        "repeat_customers": 1,
        "orders": 3,
        "revenue": "150.00",
        "customers_end": 2,
        "repeat_purchase_rate": 0.5,
        "purchase_frequency": 1.5,
        "aov": "50.00",
        "arpu": "75.00",
        "arppu": "75.00",
        "clv": "85.00",
        "clv_customers": 2,
        "nps": 0.0,
        "nps_answers": 6,
        "promoters": 2,
        "passives": 2,
        "detractors": 2,
    },
    response_only=True,
)
COHORTS_EXAMPLE = OpenApiExample(
    "Two cohorts",
    value={
        "start": "2026-01-01T00:00:00Z",
        "end": "2026-04-01T00:00:00Z",
        "cohorts": [
            {"cohort": "2026-01", "size": 2, "retention": [1.0, 0.5, 1.0], "active": [2, 1, 2]},
            {"cohort": "2026-03", "size": 1, "retention": [1.0], "active": [1]},
        ],
    },
    response_only=True,
)
RFM_EXAMPLE = OpenApiExample(
    "A page of one",
    value={
        "as_of": "2026-06-01T00:00:00Z",
        "customers": 10,
        "segments": {
            "Champions": 2,
            "Loyal": 2,
            "Potential loyalist": 1,
            "New": 0,
            "At risk": 2,
            "Cannot lose": 0,
            "Hibernating": 1,
            "Lost": 2,
        },
        "count": 10,
        "next": "https://shop.example.com/api/v1/metrics/rfm?as_of=2026-06-01&limit=1&offset=1",
        "previous": None,
        "results": [
            {
                "customer": "cust-10",
                "last_purchase_at": "2026-05-10T12:00:00Z",
                "recency_days": 22,
                "frequency": 10,
                "monetary": "1000.00",
                "r": 5,
                "f": 5,
                "m": 5,
                "score": "555",
                "segment": "Champions",
            }
        ],
    },
    response_only=True,
)

_FLOW_ROWS = {
    "none": {"New": 3, "Potential loyalist": 1},
    "Champions": {"Champions": 2, "Loyal": 1, "At risk": 1},
    "Lost": {"Lost": 2},
}
RFM_FLOW_EXAMPLE = OpenApiExample(
    "A quarter: three new customers, one Champion at risk",
    value={
        "from": "2026-03-01T00:00:00Z",
        "to": "2026-06-01T00:00:00Z",
        "flow": {
            source: {target: _FLOW_ROWS.get(source, {}).get(target, 0) for target in rfm.SEGMENTS}
            for source in rfm_flow.FROM_SEGMENTS
        },
    },
    response_only=True,
)


class RetentionApi(APIView):
    required_scopes = {"GET": "metrics"}
    required_permissions = {"GET": DASHBOARD_PERMISSION}

    @extend_schema(
        parameters=[
            START,
            END,
            WINDOW,
            OpenApiParameter("campaign", OpenApiTypes.STR, description="Restrict to one campaign's group (with group)"),
            OpenApiParameter("group", OpenApiTypes.STR, enum=list(GROUPS), description="treated or control"),
        ],
        responses={200: RetentionSerializer, **COMPUTING, **ERRORS},
        summary="CRR and churn for a period (SPEC §5)",
        examples=[RETENTION_EXAMPLE],
    )
    def get(self, request: Request) -> Response:
        query = request.query_params
        period = parse_period(query.get("start"), query.get("end"))
        window = parse_window(query.get("window_days"))
        customer_ids = group_customer_ids(campaign=query.get("campaign"), group=query.get("group"))
        if customer_ids is None:
            return answered(read_answer(read="retention", start=period.start, end=period.end, window_days=window))
        # One campaign group: its members' purchases, read through the customer index.
        table = retention(start=period.start, end=period.end, window_days=window, customer_ids=customer_ids)
        return Response(RetentionSerializer(table.as_dict()).data)


class SummaryApi(APIView):
    required_scopes = {"GET": "metrics"}
    required_permissions = {"GET": DASHBOARD_PERMISSION}

    @extend_schema(
        parameters=[START, END, WINDOW],
        responses={200: SummarySerializer, **COMPUTING, **ERRORS},
        summary="Repeat rate, frequency, AOV, ARPU, ARPPU, CLV and NPS for a period",
        examples=[SUMMARY_EXAMPLE],
    )
    def get(self, request: Request) -> Response:
        query = request.query_params
        period = parse_period(query.get("start"), query.get("end"))
        window = parse_window(query.get("window_days"))
        return answered(read_answer(read="summary", start=period.start, end=period.end, window_days=window))


class CohortsApi(APIView):
    required_scopes = {"GET": "metrics"}
    required_permissions = {"GET": DASHBOARD_PERMISSION}

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "start", OpenApiTypes.STR, description=f"{MOMENT}; default: 11 months before `end`'s month"
            ),
            END,
        ],
        responses={200: CohortsSerializer, **COMPUTING, **ERRORS},
        summary="Monthly cohort retention matrix, oldest cohort first",
        examples=[COHORTS_EXAMPLE],
    )
    def get(self, request: Request) -> Response:
        query = request.query_params
        period = parse_cohort_period(query.get("start"), query.get("end"))
        return answered(read_answer(read="cohorts", start=period.start, end=period.end, window_days=0))


class _LazyPage(Sequence[Any]):
    """What the paginator slices: its length is known, a slice runs one page query."""

    def __init__(self, count: int, fetch: Callable[[int, int], list[Any]]) -> None:
        self.length = count  # not ``count``: that is Sequence's method
        self.fetch = fetch

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: Any) -> list[Any]:
        if not isinstance(index, slice):
            raise TypeError("only slices")
        return self.fetch(index.start or 0, index.stop - (index.start or 0))


class RfmApi(APIView):
    """Served from the nightly scores (metrics/rfm_stored.py) when ``as_of`` is omitted or is exactly
    their as_of; any other moment, or before the first refresh, is an ad-hoc read: computed during the
    request on a small shop, else by a worker (202 until it is in; metrics/read_jobs.py)."""

    required_scopes = {"GET": "metrics"}
    required_permissions = {"GET": DASHBOARD_PERMISSION}

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "as_of",
                OpenApiTypes.STR,
                description=f"{MOMENT}; default: the latest nightly scores (their as_of), or now before the "
                "first nightly run. Another moment than the scores' is an ad-hoc read, computed from the purchases "
                "(on a large shop by a worker: 202 until it is in, one computation per page).",
            ),
            OpenApiParameter("segment", OpenApiTypes.STR, enum=list(rfm.SEGMENTS), description="Only this segment"),
            OpenApiParameter("limit", OpenApiTypes.INT, description="Page size, at most 500"),
            OpenApiParameter("offset", OpenApiTypes.INT),
        ],
        responses={200: RfmSerializer, **COMPUTING, **ERRORS},
        summary="RFM segment counts and per-customer scores (paginated, by external_id)",
        examples=[RFM_EXAMPLE],
    )
    def get(self, request: Request) -> Response:
        query = request.query_params
        given = None if query.get("as_of") in (None, "") else parse_as_of(query.get("as_of"))
        segment = query.get("segment") or None
        if segment is not None and segment not in rfm.SEGMENTS:
            raise ApplicationError(
                f"Unknown segment {segment!r}.",
                code="invalid",
                fields={"segment": [f"one of {', '.join(rfm.SEGMENTS)}"]},
            )
        paginator = Pagination()
        # The stored page comes in the statement that reads its counts (one snapshot), so it is read
        # before the paginator asks for it, at the offset and limit the paginator then slices.
        stored = rfm_stored.stored_rfm(
            offset=paginator.get_offset(request), limit=paginator.get_limit(request), segment=segment, as_of=given
        )
        if stored is not None:
            as_of, counts, stored_rows = stored.as_of, stored.counts, stored.rows

            def fetch(offset: int, limit: int) -> list[Any]:
                return stored_rows  # already this page: read with the counts

        else:
            as_of = given or parse_as_of(None)
            answer = rfm_page_answer(
                RfmPageQuery(
                    as_of=as_of,
                    segment=segment,
                    offset=paginator.get_offset(request),
                    limit=paginator.get_limit(request),
                )
            )
            if answer.body is None:
                return answered(answer)  # 202 while a worker computes it
            counts, computed_rows = answer.body["counts"], answer.body["rows"]

            def fetch(offset: int, limit: int) -> list[Any]:
                return computed_rows  # already this page

        total = sum(counts.values())
        rows = _LazyPage(counts[segment] if segment else total, fetch)
        # DRF slices any sequence; these stubs take querysets only.
        page: list[Any] | None = paginator.paginate_queryset(rows, request, view=self)  # type: ignore[arg-type]
        body = {
            "as_of": as_of,
            "customers": total,
            "segments": counts,
            "count": len(rows),
            "next": paginator.get_next_link(),
            "previous": paginator.get_previous_link(),
            "results": [row if isinstance(row, dict) else row.as_dict() for row in page or ()],
        }
        response = Response(RfmSerializer(body).data)
        if stored is None and answer.job is not None and answer.job.finished_at is not None:
            response["Last-Modified"] = http_date(answer.job.finished_at.timestamp())
        return response


class RfmFlowApi(APIView):
    """Computed from the purchase history as of both dates (each side as ``GET /metrics/rfm``
    computes an ad-hoc as_of): during the request on a small shop, else by a worker (202)."""

    required_scopes = {"GET": "metrics"}
    required_permissions = {"GET": DASHBOARD_PERMISSION}

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "from",
                OpenApiTypes.STR,
                description=f"{MOMENT}; before `to`; default: `to` minus {rfm_flow.DEFAULT_FLOW_DAYS} days",
            ),
            OpenApiParameter(
                "to", OpenApiTypes.STR, description=f"{MOMENT}; not in the future; default: now (to the minute)"
            ),
        ],
        responses={200: RfmFlowSerializer, **COMPUTING, **ERRORS},
        summary="RFM segment flow: customers per (segment as of from, segment as of to)",
        examples=[RFM_FLOW_EXAMPLE],
    )
    def get(self, request: Request) -> Response:
        query = request.query_params
        dates = rfm_flow.parse_flow_dates(query.get("from"), query.get("to"))
        return answered(read_answer(read="rfm_flow", start=dates.start, end=dates.end, window_days=0))
