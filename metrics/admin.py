"""The analysts' dashboard and read-only views of the stored scores and snapshots."""

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import URLPattern, path

from customers.selectors import customer_ids_with_external_id
from metrics.dashboard import dashboard_build
from metrics.models import CustomerScore, DailySnapshot, Dashboard
from metrics.periods import parse_period, parse_window
from retention_crm.errors import ApplicationError
from retention_crm.pagination import CappedCountAdminMixin
from retention_crm.readonly_admin import ReadOnlyAdminMixin


class ReadOnlyAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Derived data: recomputed by the nightly tasks, never edited by hand."""


@admin.register(Dashboard)
class DashboardAdmin(ReadOnlyAdmin):
    """/admin/metrics/dashboard/: CRR and churn over time, cohorts, RFM segments, NPS."""

    def get_urls(self) -> list[URLPattern]:
        # Only the page itself: the model has no table, so there are no objects to add or change.
        name = f"{self.opts.app_label}_{self.opts.model_name}_changelist"
        return [path("", self.admin_site.admin_view(self.changelist_view), name=name)]

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
