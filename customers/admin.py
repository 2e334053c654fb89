"""The staff UI for customer data. Writes go through the services; history is read-only."""

import datetime as dt
from functools import partial
from typing import Any, ClassVar

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import F, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from campaigns.channels.registry import CHANNELS, channel_definition
from customers import selectors, selectors_360
from customers.filters import customers_by_has_purchased
from customers.loyalty import selectors as loyalty_selectors
from customers.loyalty.admin import ADJUST_PERMISSION, adjust_points_view
from customers.models import (
    AuditLog,
    Cart,
    CartItem,
    Channel,
    ConsentEvent,
    ConsentSource,
    Customer,
    LoyaltyProgram,
    LoyaltyTier,
    NpsResponse,
    PointsEntry,
    Product,
    Purchase,
    PurchaseItem,
)
from customers.services import customer_changes_clean, customer_upsert, purchase_cancel, purchase_refund
from customers.services.customers import PERSONAL_FIELDS, customer_refuse_erased
from metrics import selectors as metrics_selectors
from retention_crm.errors import ApplicationError
from retention_crm.money import money, store_currency
from retention_crm.pagination import CappedCountAdminMixin
from retention_crm.readonly_admin import ReadOnlyAdminMixin

EDITABLE_CUSTOMER_FIELDS = PERSONAL_FIELDS
CUSTOMER_STATS_FIELDS = (
    "orders_count",
    "total_spent_display",
    "first_purchase_at",
    "last_purchase_at",
    "points_balance",
    "tier_display",
    "created_at",
    "erased_at",
)
MESSAGE_VIEW_PERMISSION = "campaigns.view_message"
NPS_VIEW_PERMISSION = "customers.view_npsresponse"


# --- Money and tiers, as staff read them ------------------------------------------------------


def tier_names() -> dict[str, str]:
    """Tier code to the name staff gave it, in the program's order."""
    tiers = LoyaltyTier.objects.filter(program_id=LoyaltyProgram.SINGLETON_ID).order_by("threshold")
    return dict(tiers.values_list("code", "name"))


def tier_name_subquery(code_field: str) -> Coalesce:
    """The tier's name for a column holding its code, in the same statement (no query per row);
    a code the program no longer has shows as itself."""
    names = LoyaltyTier.objects.filter(program_id=LoyaltyProgram.SINGLETON_ID, code=OuterRef(code_field))
    return Coalesce(Subquery(names.values("name")[:1]), F(code_field))


# --- Customer list filters --------------------------------------------------------------------


def consent_filter(channel: str) -> type[admin.SimpleListFilter]:
    class ConsentFilter(admin.SimpleListFilter):
        title = channel_definition(channel).consent_label
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
        if self.value() in {"yes", "no"}:
            return customers_by_has_purchased(has_purchased=self.value() == "yes", queryset=queryset)
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
        return list(tier_names().items())

    def queryset(self, request, queryset):
        return queryset.filter(tier=self.value()) if self.value() else queryset


# --- Customer ---------------------------------------------------------------------------------


class CustomerForm(forms.ModelForm):
    """Edits personal data and consents; the service validates and records consent history."""

    class Meta:
        model = Customer
        fields = ("external_id", *EDITABLE_CUSTOMER_FIELDS)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            for channel, granted in selectors.customer_consents(customer=self.instance).items():
                self.fields[channel_definition(channel).consent_field].initial = granted

    def service_data(self) -> dict[str, Any]:
        data = {name: self.cleaned_data.get(name) for name in EDITABLE_CUSTOMER_FIELDS if name in self.cleaned_data}
        data["consents"] = {
            definition.key: bool(self.cleaned_data.get(definition.consent_field)) for definition in CHANNELS.values()
        }
        return data

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
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
            if self.instance.pk:
                try:
                    customer_refuse_erased(customer=self.instance)  # the service's rule, checked before the save
                except ApplicationError as error:
                    self.add_error(None, error.message)
        return cleaned

    def _post_clean(self) -> None:
        # The service validates and normalises (e.g. "+49 151 ..." to E.164) and save_model calls
        # it; the model's own checks would reject input the service accepts.
        pass


# One consent checkbox per channel, from the channel registry (declared, so the fieldsets may name them).
for _definition in CHANNELS.values():
    CustomerForm.declared_fields[_definition.consent_field] = CustomerForm.base_fields[_definition.consent_field] = (
        forms.BooleanField(required=False, label=_definition.consent_label)
    )


@admin.register(Customer)
class CustomerAdmin(CappedCountAdminMixin, admin.ModelAdmin):
    form = CustomerForm
    change_form_template = "admin/customers/customer/change_form.html"
    # Short headings and a date without the time keep all columns, Tier and Points included, in view
    # at 1400 px with the navigation and filter sidebars open.
    list_display = (
        "external_id",
        "name_and_email",
        "orders_display",
        "total_spent_display",
        "last_purchase_display",
        "tier_display",
        "points_display",
    )
    # The customers who bought last come first; those who never bought, last.
    # The admin sorts by expressions too; the stubs allow only field names.
    ordering = (F("last_purchase_at").desc(nulls_last=True), "-id")  # type: ignore[assignment]
    list_filter = (
        *(consent_filter(channel) for channel in CHANNELS),
        TierFilter,
        HasPurchasedFilter,
        LastPurchaseFilter,
    )
    # Only orders an index gives page by page: sorting millions of customers by spend, orders or
    # points takes seconds (the RFM scores rank customers by those).
    sortable_by = ("external_id",)
    # These show the search box; get_search_results reads the search table.
    search_fields = ("external_id", "email", "phone", "first_name", "last_name")
    search_help_text = "External id, email or phone (starts with), or a name."
    readonly_fields = CUSTOMER_STATS_FIELDS
    list_per_page = 50

    fieldsets = (
        (None, {"fields": ("external_id",)}),
        ("Personal data", {"fields": EDITABLE_CUSTOMER_FIELDS}),
        ("Consents", {"fields": tuple(definition.consent_field for definition in CHANNELS.values())}),
        ("Purchase stats and loyalty", {"fields": CUSTOMER_STATS_FIELDS}),
    )

    @admin.display(description="Name")
    def full_name(self, customer: Customer) -> str:
        return f"{customer.first_name} {customer.last_name}".strip()

    @admin.display(description="Name and email")
    def name_and_email(self, customer: Customer) -> str:
        # A break opportunity after the "@" lets a long address wrap there, not push Tier and
        # Points out of view.
        local, at, domain = customer.email.partition("@")
        email = format_html("{}{}<wbr>{}", local, at, domain)
        name = self.full_name(customer)
        if name and customer.email:
            return format_html('{}<br><span class="quiet">{}</span>', name, email)
        return name or email or "—"

    @admin.display(description="Orders", ordering="orders_count")
    def orders_display(self, customer: Customer) -> int:
        return customer.orders_count

    @admin.display(description="Last purchase", ordering="last_purchase_at")
    def last_purchase_display(self, customer: Customer) -> dt.date | None:
        # The store's calendar day: the list compares recency, the 360 has the time.
        return timezone.localtime(customer.last_purchase_at).date() if customer.last_purchase_at else None

    @admin.display(description="Total spent", ordering="total_spent")
    def total_spent_display(self, customer: Customer) -> str:
        return money(customer.total_spent)

    @admin.display(description="Tier", ordering="tier")
    def tier_display(self, customer: Customer) -> str:
        return getattr(customer, "tier_name", None) or customer.tier

    @admin.display(description="Points", ordering="points_balance")
    def points_display(self, customer: Customer) -> int:
        return customer.points_balance

    def get_queryset(self, request: HttpRequest) -> QuerySet[Customer]:
        return super().get_queryset(request).annotate(tier_name=tier_name_subquery("tier"))

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
            extra_context["customer_360"] = c360 = selectors.customer_360(customer=customer)
            extra_context["currency"] = store_currency()
            extra_context["consent_rows"] = [(Channel(code).label, granted) for code, granted in c360.consents.items()]
            names = tier_names()
            extra_context["tier_name"] = names.get(customer.tier, customer.tier)
            if request.user.has_perm(MESSAGE_VIEW_PERMISSION):
                extra_context["customer_messages"] = selectors_360.customer_messages(customer=customer)
            if request.user.has_perm(NPS_VIEW_PERMISSION):
                extra_context["customer_nps"] = selectors_360.customer_nps_answers(customer=customer)
            # Loyalty: tier progress, expiring points, tier history, and the adjust-points button.
            extra_context["loyalty"] = loyalty_selectors.customer_loyalty(customer=customer)
            extra_context["tier_history"] = [
                (change, names.get(change.from_tier, change.from_tier), names.get(change.to_tier, change.to_tier))
                for change in loyalty_selectors.tier_history(customer=customer)[: selectors.RECENT_ROWS]
            ]
            extra_context["can_adjust_points"] = request.user.has_perm(ADJUST_PERMISSION)
            # Metrics: the nightly RFM segment and churn risk (None until the customer is scored).
            extra_context["customer_scores"] = metrics_selectors.customer_scores(customer)
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        adjust = path(
            "<path:object_id>/adjust-points/",
            self.admin_site.admin_view(partial(adjust_points_view, self)),
            name="customers_customer_adjust_points",
        )
        message = path(
            "<path:object_id>/messages/<int:message_id>/",
            self.admin_site.admin_view(partial(customer_message_view, self)),
            name="customers_customer_message",
        )
        return [adjust, message, *super().get_urls()]

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


def customer_message_view(
    model_admin: CustomerAdmin, request: HttpRequest, object_id: str, message_id: int
) -> HttpResponse:
    """One campaign message to the customer: its facts and its subject and body, rendered."""
    customer = model_admin.get_object(request, unquote(object_id))
    if customer is None:
        raise Http404("No such customer.")
    if not (model_admin.has_view_permission(request, customer) and request.user.has_perm(MESSAGE_VIEW_PERMISSION)):
        raise PermissionDenied
    found = selectors_360.customer_message(customer=customer, message_id=message_id)
    if found is None:
        raise Http404("No such message for this customer.")
    message, rendered = found
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"Message: {message.campaign.name}",
        "opts": Customer._meta,
        "original": customer,
        "message": message,
        "rendered": rendered,
        "reason_label": selectors_360.reason_label(message.reason),
        "change_url": reverse("admin:customers_customer_change", args=[customer.pk]),
        "can_view_campaign": request.user.has_perm("campaigns.view_campaign"),
    }
    return TemplateResponse(request, "admin/customers/customer/message.html", context)


# --- Exact searches on large lists ------------------------------------------------------------


def by_customer_external_id(queryset: QuerySet, term: str, *own: Q) -> QuerySet:
    """The rows of the customer with exactly this external id, or matching one of ``own`` (exact
    conditions on the list's own unique keys). Every arm is one index probe; an ``icontains`` over
    the customer join read the whole table."""
    condition = Q(customer_id__in=selectors.customer_ids_with_external_id(term))
    for own_condition in own:
        condition |= own_condition
    return queryset.filter(condition)


# --- Purchases, carts, products ---------------------------------------------------------------


class LineItemInline(ReadOnlyAdminMixin, admin.TabularInline):
    fields = ("sku", "name", "category", "quantity", "unit_price_display")
    readonly_fields = fields
    extra = 0

    @admin.display(description="Unit price")
    def unit_price_display(self, item: PurchaseItem | CartItem) -> str:
        return money(item.unit_price)


class PurchaseItemInline(LineItemInline):
    model = PurchaseItem


@admin.register(Purchase)
class PurchaseAdmin(CappedCountAdminMixin, admin.ModelAdmin):
    list_display = ("external_id", "placed_at", "total_display", "status", "customer")
    list_filter = ("status", ("placed_at", admin.DateFieldListFilter))
    # Newest first over all statuses, read off purchase_placed_idx; no date hierarchy (its year
    # links cost a scan of every purchase), the date filter narrows by time instead.
    ordering = ("-placed_at", "-id")
    sortable_by = ("external_id", "placed_at")
    search_fields = ("external_id", "customer__external_id")  # the search box; see get_search_results
    search_help_text = "A purchase's external id, or a customer's: exactly as the shop sends it."
    list_select_related = ("customer",)
    readonly_fields = (
        "external_id",
        "customer",
        "placed_at",
        "total_display",
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

    @admin.display(description="Total", ordering="total")
    def total_display(self, purchase: Purchase) -> str:
        return money(purchase.total)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # purchases come from the shop (API or CSV import)

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str):
        term = search_term.strip()
        if not term:
            return queryset, False
        return by_customer_external_id(queryset, term, Q(external_id=term)), False

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


class CartItemInline(LineItemInline):
    model = CartItem


@admin.register(Cart)
class CartAdmin(CappedCountAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("external_id", "customer", "status", "updated_at", "converted_at")
    list_filter = ("status",)
    ordering = ("-id",)  # newest first by the primary key; no index leads with updated_at
    sortable_by = ("external_id",)
    search_fields = ("external_id", "customer__external_id")  # the search box; see get_search_results
    search_help_text = "A cart's external id, or a customer's: exactly."
    list_select_related = ("customer",)
    inlines = (CartItemInline,)

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str):
        term = search_term.strip()
        if not term:
            return queryset, False
        return by_customer_external_id(queryset, term, Q(external_id=term)), False


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ("sku", "name", "category", "replenishment_days")
    list_filter = ("category",)
    search_fields = ("sku", "name")


# --- Append-only history ----------------------------------------------------------------------


class CustomerHistoryAdmin(CappedCountAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """An append-only history list: newest first by the primary key (insertion order, and the one
    index every such table has), searched by a customer's exact external id."""

    ordering: ClassVar[tuple[str, ...]] = ("-id",)
    sortable_by: ClassVar[tuple[str, ...]] = ()
    search_fields: ClassVar[tuple[str, ...]] = ("customer__external_id",)  # the search box; see get_search_results
    search_help_text = "A customer's external id, exactly."
    list_select_related: ClassVar[tuple[str, ...]] = ("customer",)

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str):
        term = search_term.strip()
        if not term:
            return queryset, False
        return by_customer_external_id(queryset, term), False


@admin.register(ConsentEvent)
class ConsentEventAdmin(CustomerHistoryAdmin):
    list_display = ("customer", "channel", "granted", "source", "recorded_at")
    list_filter = ("channel", "granted", "source")


@admin.register(PointsEntry)
class PointsEntryAdmin(CustomerHistoryAdmin):
    list_display = ("customer", "kind", "points", "created_at", "expires_at", "remaining", "reason")
    list_filter = ("kind",)
    search_fields = ("customer__external_id", "idempotency_key")
    search_help_text = "A customer's external id or an idempotency key, exactly."
    fields = (
        "customer",
        "kind",
        "points",
        "balance_after",
        "created_at",
        "expires_at",
        "remaining",
        "uncovered",
        "reason",
        "purchase",
        "order_id",
        "order_total_display",
        "discount_display",
        "related_entry",
        "created_by",
        "idempotency_key",
    )
    readonly_fields = fields

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str):
        term = search_term.strip()
        if not term:
            return queryset, False
        return by_customer_external_id(queryset, term, Q(idempotency_key=term)), False

    @admin.display(description="Order total")
    def order_total_display(self, entry: PointsEntry) -> str:
        return "" if entry.order_total is None else money(entry.order_total)

    @admin.display(description="Discount")
    def discount_display(self, entry: PointsEntry) -> str:
        return "" if entry.discount is None else money(entry.discount)


@admin.register(NpsResponse)
class NpsResponseAdmin(CustomerHistoryAdmin):
    list_display = ("customer", "score", "answered_at", "comment")
    list_filter = ("score",)
    # The answers' own order, read off nps_answered_at_idx (the metrics' index).
    ordering = ("-answered_at", "-id")
    sortable_by = ("answered_at",)


@admin.register(AuditLog)
class AuditLogAdmin(CappedCountAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("at", "actor", "action", "target")
    list_filter = ("action",)
    ordering = ("-id",)  # newest first by the primary key; the only time index leads with target
    sortable_by = ()
    search_fields = ("target", "actor")
