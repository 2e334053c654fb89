"""Loyalty in the admin: the program's settings page (one record, tiers inline), the tier history,
and the "adjust points" page on a customer. Writes go through the loyalty services."""

import uuid
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from customers.loyalty.services import (
    REASON_MAX_LENGTH,
    TierInput,
    loyalty_program_ensure,
    loyalty_tiers_validate,
    points_adjust,
)
from customers.loyalty.services.daily import tiers_recompute_after_commit
from customers.models import Customer, LoyaltyProgram, LoyaltyTier, TierChange
from retention_crm.errors import ApplicationError
from retention_crm.pagination import CappedCountAdminMixin
from retention_crm.readonly_admin import ReadOnlyAdminMixin

ADJUST_PERMISSION = "customers.adjust_points"


# --- Program settings ------------------------------------------------------------------------------


class TierFormSet(forms.BaseInlineFormSet):
    def clean(self) -> None:
        super().clean()
        if any(self.errors):
            return
        tiers = [
            TierInput(
                code=form.cleaned_data["code"],
                name=form.cleaned_data.get("name", ""),
                threshold=form.cleaned_data["threshold"],
                multiplier=form.cleaned_data["multiplier"],
            )
            for form in self.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE")
        ]
        try:
            loyalty_tiers_validate(tiers=tiers)
        except ApplicationError as error:
            raise forms.ValidationError(error.message) from None


class LoyaltyTierInline(admin.TabularInline):
    model = LoyaltyTier
    formset = TierFormSet
    fields = ("code", "name", "threshold", "multiplier")
    extra = 0
    min_num = 1


@admin.register(LoyaltyProgram)
class LoyaltyProgramAdmin(admin.ModelAdmin):
    """One settings record: the list page opens it directly; it cannot be added or deleted."""

    inlines = (LoyaltyTierInline,)
    fieldsets = (
        ("Earning", {"fields": ("earn_rate",)}),
        ("Redemption", {"fields": ("point_value", "max_redeem_share")}),
        ("Expiry", {"fields": ("expiry_days",)}),
        ("Bonuses (0 disables one)", {"fields": ("welcome_bonus", "birthday_bonus", "referral_bonus", "review_bonus")}),
        ("History", {"fields": ("updated_at",), "description": "Every change is in the object's history."}),
    )
    readonly_fields = ("updated_at",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        program = loyalty_program_ensure()
        return HttpResponseRedirect(reverse("admin:customers_loyaltyprogram_change", args=[program.pk]))

    def save_related(self, request: HttpRequest, form, formsets, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        if any(formset.has_changed() for formset in formsets):
            tiers_recompute_after_commit()
            self.message_user(request, "Tiers changed: customers are being moved to their new tiers.", messages.INFO)


class ToTierFilter(admin.SimpleListFilter):
    title = "to tier"
    parameter_name = "to_tier"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        from customers.admin import tier_names  # that module imports this one

        return list(tier_names().items())

    def queryset(self, request: HttpRequest, queryset: QuerySet[TierChange]) -> QuerySet[TierChange]:
        return queryset.filter(to_tier=self.value()) if self.value() else queryset


@admin.register(TierChange)
class TierChangeAdmin(CappedCountAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("customer", "from_tier_display", "to_tier_display", "trailing_spend_display", "cause", "changed_at")
    list_filter = ("cause", ToTierFilter)
    search_fields = ("customer__external_id",)
    list_select_related = ("customer",)
    show_full_result_count = False
    ordering = ("-id",)  # newest first, off the primary key: the history only grows
    sortable_by = ()
    fields = ("customer", "from_tier_display", "to_tier_display", "trailing_spend_display", "cause", "changed_at")
    readonly_fields = fields

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str):
        from customers.admin import by_customer_external_id  # that module imports this one

        term = search_term.strip()
        return (by_customer_external_id(queryset, term) if term else queryset), False

    def get_queryset(self, request: HttpRequest) -> QuerySet[TierChange]:
        from customers.admin import tier_name_subquery  # that module imports this one

        return (
            super()
            .get_queryset(request)
            .annotate(from_tier_name=tier_name_subquery("from_tier"), to_tier_name=tier_name_subquery("to_tier"))
        )

    @admin.display(description="From", ordering="from_tier")
    def from_tier_display(self, change: TierChange) -> str:
        return getattr(change, "from_tier_name", None) or change.from_tier

    @admin.display(description="To", ordering="to_tier")
    def to_tier_display(self, change: TierChange) -> str:
        return getattr(change, "to_tier_name", None) or change.to_tier

    @admin.display(description="Spend, last 365 days", ordering="trailing_spend")
    def trailing_spend_display(self, change: TierChange) -> str:
        from retention_crm.money import money

        return money(change.trailing_spend)


# --- Adjusting a customer's points ----------------------------------------------------------------


class PointsAdjustForm(forms.Form):
    points = forms.IntegerField(help_text="Positive adds points, negative takes them (oldest first).")
    reason = forms.CharField(
        max_length=REASON_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Required: the customer and your colleagues will read it in the ledger.",
    )
    # Drawn when the form is shown: submitting twice (a double click, a reload) adjusts once.
    idempotency_key = forms.CharField(widget=forms.HiddenInput, max_length=100)

    def clean_points(self) -> int:
        points = self.cleaned_data["points"]
        if points == 0:
            raise forms.ValidationError("Give a number of points other than 0.")
        return points


def adjust_points_view(model_admin: admin.ModelAdmin, request: HttpRequest, object_id: str) -> HttpResponse:
    customer = model_admin.get_object(request, unquote(object_id))
    if customer is None:
        raise Http404("No such customer.")
    if not request.user.has_perm(ADJUST_PERMISSION):
        raise PermissionDenied
    change_url = reverse("admin:customers_customer_change", args=[customer.pk])
    if request.method == "POST":
        form = PointsAdjustForm(request.POST)
        if form.is_valid():
            try:
                result = points_adjust(
                    customer=customer.external_id,
                    points=form.cleaned_data["points"],
                    reason=form.cleaned_data["reason"],
                    idempotency_key=form.cleaned_data["idempotency_key"],
                    actor=request.user.get_username(),
                    created_by_id=request.user.pk,
                )
            except ApplicationError as error:
                for field, problems in error.fields.items():
                    form.add_error(field if field in form.fields else None, problems)
                if not error.fields:
                    form.add_error(None, error.message)
            else:
                model_admin.message_user(
                    request,
                    f"Points adjusted by {result.points:+d}; the balance is now {result.balance}.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(change_url)
    else:
        form = PointsAdjustForm(initial={"idempotency_key": uuid.uuid4().hex})
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"Adjust points: {customer}",
        "opts": Customer._meta,
        "original": customer,
        # The customer admin's queryset carries the tier's name.
        "tier_name": getattr(customer, "tier_name", None) or customer.tier,
        "form": form,
        "change_url": change_url,
    }
    return TemplateResponse(request, "admin/customers/customer/adjust_points.html", context)
