"""The staff UI for customer data. Writes go through the services; history is read-only."""

from functools import partial
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import path

from customers import loyalty_admin, selectors, selectors_loyalty
from customers.models import (
    AuditLog,
    Cart,
    CartItem,
    Channel,
    ConsentEvent,
    ConsentSource,
    Customer,
    NpsResponse,
    PointsEntry,
    Product,
    Purchase,
    PurchaseItem,
)
from customers.services import customer_changes_clean, customer_upsert, purchase_cancel, purchase_refund
from customers.services.customers import PERSONAL_FIELDS
from metrics import selectors as metrics_selectors
from retention_crm.errors import ApplicationError
from retention_crm.readonly_admin import ReadOnlyAdminMixin

EDITABLE_CUSTOMER_FIELDS = PERSONAL_FIELDS
CUSTOMER_STATS_FIELDS = (
    "orders_count",
    "total_spent",
    "first_purchase_at",
    "last_purchase_at",
    "points_balance",
    "tier",
    "created_at",
    "erased_at",
)


# --- Customer list filters --------------------------------------------------------------------


def consent_filter(channel: str) -> type[admin.SimpleListFilter]:
    class ConsentFilter(admin.SimpleListFilter):
        title = f"{Channel(channel).label} consent"
        parameter_name = f"consent_{channel}"

        def lookups(self, request, model_admin):
            return [("yes", "Granted"), ("no", "Not granted")]

        def queryset(self, request, queryset):
            if self.value() == "yes":
                return selectors.customers_with_consent(channel=channel, queryset=queryset)
            if self.value() == "no":
                return selectors.customers_without_consent(channel=channel, queryset=queryset)
            return queryset

    ConsentFilter.__name__ = f"{channel.title()}ConsentFilter"
    return ConsentFilter


class HasPurchasedFilter(admin.SimpleListFilter):
    title = "has purchased"
    parameter_name = "has_purchased"

    def lookups(self, request, model_admin):
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(orders_count__gt=0)
        if self.value() == "no":
            return queryset.filter(orders_count=0)
        return queryset


class LastPurchaseFilter(admin.SimpleListFilter):
    title = "last purchase"
    parameter_name = "last_purchase"

    def lookups(self, request, model_admin):
        ranges = [(key, label) for key, (label, _, _) in selectors.LAST_PURCHASE_RANGES.items()]
        return [*ranges, ("never", "never")]

    def queryset(self, request, queryset):
        if self.value() in {*selectors.LAST_PURCHASE_RANGES, "never"}:
            return selectors.customers_by_last_purchase(range_key=self.value(), queryset=queryset)
        return queryset


class TierFilter(admin.SimpleListFilter):
    title = "tier"
    parameter_name = "tier"

    def lookups(self, request, model_admin):
        tiers = Customer.objects.order_by("tier").values_list("tier", flat=True).distinct()
        return [(tier, tier.title()) for tier in tiers]

    def queryset(self, request, queryset):
        return queryset.filter(tier=self.value()) if self.value() else queryset


# --- Customer ---------------------------------------------------------------------------------


class CustomerForm(forms.ModelForm):
    """Edits personal data and consents; the service validates and records consent history."""

    consent_email = forms.BooleanField(required=False, label="Email consent")
    consent_sms = forms.BooleanField(required=False, label="SMS consent")
    consent_push = forms.BooleanField(required=False, label="Push consent")
    consent_webhook = forms.BooleanField(required=False, label="Webhook consent")

    class Meta:
        model = Customer
        fields = ("external_id", *EDITABLE_CUSTOMER_FIELDS)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            for channel, granted in selectors.customer_consents(customer=self.instance).items():
                self.fields[f"consent_{channel}"].initial = granted

    def service_data(self) -> dict[str, Any]:
        data = {name: self.cleaned_data.get(name) for name in EDITABLE_CUSTOMER_FIELDS if name in self.cleaned_data}
        data["consents"] = {channel: bool(self.cleaned_data.get(f"consent_{channel}")) for channel in Channel.values}
        return data

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        external_id = cleaned.get("external_id") or self.instance.external_id
        if not self.instance.pk and Customer.objects.filter(external_id=external_id).exists():
            self.add_error("external_id", "A customer with this external id already exists.")
        if external_id and not self.errors:
            try:
                customer_changes_clean(external_id=external_id, data=self.service_data())
            except ApplicationError as error:
                for field, problems in error.fields.items():
                    target = field if field in self.fields else None
                    self.add_error(target, problems)
                if not error.fields:
                    self.add_error(None, error.message)
            if self.instance.pk and self.instance.is_erased:
                self.add_error(None, "This customer was erased; their record takes no new personal data.")
        return cleaned

    def _post_clean(self) -> None:
        # The service validates and normalises (e.g. "+49 151 ..." to E.164) and save_model calls
        # it; the model's own checks would reject input the service accepts.
        pass


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    form = CustomerForm
    change_form_template = "admin/customers/customer/change_form.html"
    list_display = (
        "external_id",
        "email",
        "full_name",
        "orders_count",
        "total_spent",
        "last_purchase_at",
        "tier",
        "points_balance",
    )
    list_filter = (
        *(consent_filter(channel) for channel in Channel.values),
        TierFilter,
        HasPurchasedFilter,
        LastPurchaseFilter,
    )
    search_fields = ("external_id", "email", "phone", "first_name", "last_name")
    search_help_text = "External id, email or phone (starts with), or a name."
    readonly_fields = CUSTOMER_STATS_FIELDS
    show_full_result_count = False  # a COUNT(*) over a million rows on every page is wasted work
    list_per_page = 50

    fieldsets = (
        (None, {"fields": ("external_id",)}),
        ("Personal data", {"fields": EDITABLE_CUSTOMER_FIELDS}),
        ("Consents", {"fields": ("consent_email", "consent_sms", "consent_push", "consent_webhook")}),
        ("Purchase stats and loyalty", {"fields": CUSTOMER_STATS_FIELDS}),
    )

    @admin.display(description="Name")
    def full_name(self, customer: Customer) -> str:
        return f"{customer.first_name} {customer.last_name}".strip()

    def get_readonly_fields(self, request: HttpRequest, obj: Customer | None = None):
        if obj is not None:
            return ("external_id", *self.readonly_fields)
        return self.readonly_fields

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str):
        return selectors.customer_search(query=search_term, queryset=queryset), False

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context=None):
        extra_context = extra_context or {}
        customer = self.get_object(request, object_id)
        if customer is not None:
            extra_context["customer_360"] = selectors.customer_360(customer=customer)
            # Loyalty: tier progress, expiring points, tier history, and the adjust-points button.
            extra_context["loyalty"] = selectors_loyalty.customer_loyalty(customer=customer)
            extra_context["tier_history"] = list(
                selectors_loyalty.tier_history(customer=customer)[: selectors.RECENT_ROWS]
            )
            extra_context["can_adjust_points"] = request.user.has_perm(loyalty_admin.ADJUST_PERMISSION)
            # Metrics: the nightly RFM segment and churn risk (None until the customer is scored).
            extra_context["customer_scores"] = metrics_selectors.customer_scores(customer)
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        adjust = path(
            "<path:object_id>/adjust-points/",
            self.admin_site.admin_view(partial(loyalty_admin.adjust_points_view, self)),
            name="customers_customer_adjust_points",
        )
        return [adjust, *super().get_urls()]

    def save_model(self, request: HttpRequest, obj: Customer, form: CustomerForm, change: bool) -> None:
        customer, _ = customer_upsert(
            external_id=form.cleaned_data.get("external_id") or obj.external_id,
            data=form.service_data(),
            source=ConsentSource.ADMIN,
        )
        # The admin reads obj.pk afterwards to build its messages and redirects.
        obj.pk = customer.pk
        obj.refresh_from_db()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Customers are erased (GDPR), never deleted: deleting would change every metric.
        return False


# --- Purchases, carts, products ---------------------------------------------------------------


class PurchaseItemInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = PurchaseItem
    fields = ("sku", "name", "category", "quantity", "unit_price")
    readonly_fields = fields
    extra = 0


@admin.register(Purchase)
class PurchaseAdmin(admin.ModelAdmin):
    list_display = ("external_id", "customer", "placed_at", "total", "currency", "status")
    list_filter = ("status", ("placed_at", admin.DateFieldListFilter))
    search_fields = ("external_id", "customer__external_id")
    list_select_related = ("customer",)
    readonly_fields = (
        "external_id",
        "customer",
        "placed_at",
        "total",
        "currency",
        "status",
        "cart",
        "cart_external_id",
        "points_redeemed",
        "created_at",
        "status_changed_at",
    )
    fields = readonly_fields
    inlines = (PurchaseItemInline,)
    actions = ("refund_selected", "cancel_selected")
    date_hierarchy = "placed_at"
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # purchases come from the shop (API or CSV import)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def _change_status(self, request: HttpRequest, queryset: QuerySet, service, verb: str) -> None:
        changed = failed = 0
        for external_id in queryset.values_list("external_id", flat=True):
            try:
                _, did_change = service(external_id=external_id)
                changed += did_change
            except ApplicationError as error:
                failed += 1
                self.message_user(request, f"{external_id}: {error.message}", messages.WARNING)
        self.message_user(request, f"{changed} purchase(s) {verb}; {failed} refused.", messages.INFO)

    @admin.action(description="Refund selected purchases", permissions=["change"])
    def refund_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._change_status(request, queryset, purchase_refund, "refunded")

    @admin.action(description="Cancel selected purchases", permissions=["change"])
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._change_status(request, queryset, purchase_cancel, "cancelled")


class CartItemInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = CartItem
    fields = ("sku", "name", "category", "quantity", "unit_price")
    readonly_fields = fields
    extra = 0


@admin.register(Cart)
class CartAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("external_id", "customer", "status", "updated_at", "converted_at")
    list_filter = ("status",)
    search_fields = ("external_id", "customer__external_id")
    list_select_related = ("customer",)
    inlines = (CartItemInline,)
    show_full_result_count = False


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ("sku", "name", "category", "replenishment_days")
    list_filter = ("category",)
    search_fields = ("sku", "name")


# --- Append-only history ----------------------------------------------------------------------


@admin.register(ConsentEvent)
class ConsentEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("customer", "channel", "granted", "source", "recorded_at")
    list_filter = ("channel", "granted", "source")
    search_fields = ("customer__external_id",)
    list_select_related = ("customer",)
    show_full_result_count = False


@admin.register(PointsEntry)
class PointsEntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("customer", "kind", "points", "created_at", "expires_at", "remaining", "reason")
    list_filter = ("kind",)
    search_fields = ("customer__external_id", "idempotency_key")
    list_select_related = ("customer",)
    show_full_result_count = False


@admin.register(NpsResponse)
class NpsResponseAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("customer", "score", "answered_at", "comment")
    list_filter = ("score",)
    search_fields = ("customer__external_id",)
    list_select_related = ("customer",)
    show_full_result_count = False


@admin.register(AuditLog)
class AuditLogAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("at", "actor", "action", "target")
    list_filter = ("action",)
    search_fields = ("target", "actor")
