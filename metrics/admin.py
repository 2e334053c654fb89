"""The analysts' dashboard and read-only views of the stored scores and snapshots."""

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.decorators import method_decorator
from django.views.decorators.clickjacking import xframe_options_sameorigin

from customers.selectors import customer_ids_with_external_id
from metrics import board, charts
from metrics.dashboard import dashboard_build, flow_page_url, flow_scan_is_small, flow_section
from metrics.models import CustomerScore, DailySnapshot, Dashboard, LifecycleBoard
from metrics.periods import parse_period, parse_window
from metrics.rfm import SEGMENTS
from metrics.rfm_flow import FROM_SEGMENTS, flow_cell_page, parse_flow_dates
from retention_crm.errors import ApplicationError
from retention_crm.pagination import CappedCountAdminMixin
from retention_crm.readonly_admin import ReadOnlyAdminMixin


class ReadOnlyAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Derived data: recomputed by the nightly tasks, never edited by hand."""


@admin.register(Dashboard)
class DashboardAdmin(ReadOnlyAdmin):
    """/admin/metrics/dashboard/: CRR and churn over time, cohorts, RFM segments, NPS."""

    def get_urls(self) -> list[URLPattern]:
        # Only the pages themselves: the model has no table, so there are no objects to add or change.
        name = f"{self.opts.app_label}_{self.opts.model_name}"
        view = self.admin_site.admin_view
        return [
            path("", view(self.changelist_view), name=f"{name}_changelist"),
            path("flow/", view(self.flow_view), name=f"{name}_flow"),
            path("flow/chart/", view(self.flow_chart_view), name=f"{name}_flow_chart"),
            path("board/", view(self.board_view), name=f"{name}_board"),
        ]

    def _context(self, request: HttpRequest, title: str, **extra: Any) -> dict[str, Any]:
        return {**self.admin_site.each_context(request), "title": title, "opts": self.opts, **extra}

    def flow_view(self, request: HttpRequest) -> TemplateResponse:
        """The segment flow between two dates, computed now, and one cell's customers when asked."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        query = request.GET
        error, cell, customers, offset = None, None, [], 0
        try:
            dates = parse_flow_dates(query.get("from"), query.get("to"))
        except ApplicationError as problem:
            error, dates = problem.message, parse_flow_dates(None, None)
        source, target = query.get("from_segment"), query.get("to_segment")
        section = flow_section(dates=dates)
        listable = flow_scan_is_small(dates.end)
        if error is None and source in FROM_SEGMENTS and target in SEGMENTS and not listable:
            cell = {"from_segment": source, "to_segment": target}
        elif error is None and source in FROM_SEGMENTS and target in SEGMENTS:
            offset = _offset(query.get("offset"))
            cell = {"from_segment": source, "to_segment": target}
            customers = flow_cell_page(
                start=dates.start, end=dates.end, offset=offset, limit=board.PAGE_CUSTOMERS + 1, **cell
            )
        elif source or target:
            error = "Unknown segment: pick a cell of the chart."
        more = len(customers) > board.PAGE_CUSTOMERS
        context = self._context(
            request,
            "RFM segment flow",
            error=error,
            section=section,
            listable=listable,
            cell=cell,
            customers=customers[: board.PAGE_CUSTOMERS],
            offset=offset,
            next_url=flow_page_url(dates, **cell, offset=str(offset + board.PAGE_CUSTOMERS)) if more and cell else None,
            form={"from": query.get("from") or dates.start.isoformat(), "to": query.get("to") or dates.end.isoformat()},
        )
        return TemplateResponse(request, "admin/metrics/flow.html", context)

    @method_decorator(xframe_options_sameorigin)  # the site's default is DENY; the dashboard frames it
    def flow_chart_view(self, request: HttpRequest) -> HttpResponse:
        """The flow's heatmap alone, as an SVG document: what the dashboard embeds, so that its own
        request reads no purchase history."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            dates = parse_flow_dates(request.GET.get("from"), request.GET.get("to"))
        except ApplicationError as problem:
            return HttpResponse(problem.message, status=400, content_type="text/plain; charset=utf-8")
        section = flow_section(dates=dates)
        chart = section.chart if not section.computing else charts.flow_computing()
        return HttpResponse(f'<?xml version="1.0" encoding="utf-8"?>\n{chart}', content_type="image/svg+xml")

    def board_view(self, request: HttpRequest) -> TemplateResponse:
        """Customers by stage from the nightly scores: every segment's column, or one segment paged."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        segment = request.GET.get("segment") or None
        error, rows, after = None, [], None
        if segment is not None and segment not in SEGMENTS:
            error, segment = f"Unknown segment {segment!r}.", None
        if segment is not None:
            try:
                after = board.parse_after(request.GET.get("after"))
            except ValueError:
                error = "That page link is broken; showing the first page."
            rows = board.board_page(segment=segment, after=after, limit=board.PAGE_CUSTOMERS + 1)
        context = self._context(
            request,
            f"Lifecycle board: {segment}" if segment else "Lifecycle board",
            error=error,
            board=board.board_columns(),
            segment=segment,
            rows=rows[: board.PAGE_CUSTOMERS],
            next_after=rows[board.PAGE_CUSTOMERS - 1].after if len(rows) > board.PAGE_CUSTOMERS else None,
            paged=after is not None,
        )
        return TemplateResponse(request, "admin/metrics/board.html", context)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> TemplateResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        query = request.GET
        error = None
        try:
            period = parse_period(query.get("start"), query.get("end"))
            window = parse_window(query.get("window_days"))
        except ApplicationError as problem:
            error = problem.message
            period, window = parse_period(None, None), parse_window(None)
        context = {
            **self.admin_site.each_context(request),
            "title": "Retention dashboard",
            "opts": self.opts,
            "error": error,
            "dashboard": dashboard_build(period=period, window_days=window),
            "form": {
                "start": query.get("start") or period.start.date().isoformat(),
                "end": query.get("end") or period.end.date().isoformat(),
                "window_days": query.get("window_days") or window,
            },
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/metrics/dashboard.html", context)


def _offset(value: str | None) -> int:
    try:
        return max(0, min(int(value or 0), MAX_OFFSET))
    except ValueError:
        return 0


MAX_OFFSET = 100_000  # a cell's list is a drill-down, not an export


@admin.register(LifecycleBoard)
class LifecycleBoardAdmin(ReadOnlyAdmin):
    """The admin index's entry for the board: it opens the dashboard's board page."""

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("metrics.view_dashboard")

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    def get_urls(self) -> list[URLPattern]:
        name = f"{self.opts.app_label}_{self.opts.model_name}"
        return [path("", self.admin_site.admin_view(self.changelist_view), name=f"{name}_changelist")]

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponseRedirect:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return HttpResponseRedirect(reverse("admin:metrics_dashboard_board"))


@admin.register(CustomerScore)
class CustomerScoreAdmin(CappedCountAdminMixin, ReadOnlyAdmin):
    list_display = ("customer", "rfm_segment", "r_score", "f_score", "m_score", "churn_risk", "p_alive", "computed_at")
    list_filter = ("rfm_segment", "churn_model")
    search_fields = ("customer__external_id",)  # the search box; see get_search_results
    search_help_text = "A customer's external id, exactly."
    list_select_related = ("customer",)
    # Highest risk first, read off score_churn_risk_idx; the other columns have no index to page by.
    ordering = ("-churn_risk",)
    sortable_by = ("churn_risk",)

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str):
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(customer_id__in=customer_ids_with_external_id(term)), False


@admin.register(DailySnapshot)
class DailySnapshotAdmin(ReadOnlyAdmin):
    list_display = ("date", "crr", "churn_rate", "customers_start", "customers_end", "orders", "revenue", "nps")
    date_hierarchy = "date"
