"""Query-string filters for the customer list; each one is a selector."""

import django_filters
from django import forms
from django.db.models import QuerySet

from customers import selectors
from customers.models import Channel, Customer
from retention_crm import validation as v
from retention_crm.errors import ApplicationError


def customers_by_has_purchased(*, has_purchased: bool, queryset: QuerySet[Customer]) -> QuerySet[Customer]:
    """Customers with (or without) a completed purchase, for the API and the admin. The stats set
    ``last_purchase_at`` exactly when ``orders_count > 0`` (both come from the completed
    purchases), and the last-purchase index serves the null test; ``orders_count`` has no index."""
    return queryset.filter(last_purchase_at__isnull=not has_purchased)


class StoreDateTimeField(forms.CharField):
    """An ISO 8601 date-time read by the same rules as every input (naive = store time)."""

    def clean(self, value):
        value = super().clean(value)
        if not value:
            return None
        try:
            return v.clean_datetime(value, "value")
        except ApplicationError:
            raise forms.ValidationError("Enter an ISO 8601 date-time between 1900 and 2200.") from None


class StoreDateTimeFilter(django_filters.Filter):
    field_class = StoreDateTimeField


class CustomerFilter(django_filters.FilterSet):
    email = django_filters.CharFilter(method="filter_email", help_text="Customers with this email, in any case")
    tag = django_filters.CharFilter(method="filter_tag", help_text="Customers carrying this tag")
    consent = django_filters.ChoiceFilter(
        choices=Channel.choices, method="filter_consent", help_text="Customers who consented to this channel"
    )
    tier = django_filters.CharFilter(field_name="tier")
    created_after = StoreDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = StoreDateTimeFilter(field_name="created_at", lookup_expr="lt")
    last_purchase_after = StoreDateTimeFilter(field_name="last_purchase_at", lookup_expr="gte")
    last_purchase_before = StoreDateTimeFilter(field_name="last_purchase_at", lookup_expr="lt")
    has_purchased = django_filters.BooleanFilter(method="filter_has_purchased")
    q = django_filters.CharFilter(method="filter_search", help_text="External id, email, phone or name")

    class Meta:
        model = Customer
        fields: list[str] = []

    def filter_tag(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return selectors.customers_with_tag(tag=value, queryset=queryset)

    def filter_consent(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return selectors.customers_with_consent(channel=value, queryset=queryset)

    def filter_email(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return selectors.customers_with_email(email=value, queryset=queryset)

    def filter_has_purchased(self, queryset: QuerySet, name: str, value: bool) -> QuerySet:
        return customers_by_has_purchased(has_purchased=value, queryset=queryset)

    def filter_search(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return selectors.customer_search(query=value, queryset=queryset)
