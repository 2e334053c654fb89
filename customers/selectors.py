"""Reads: the customer 360 and customer lists."""

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet, Value, prefetch_related_objects
from django.db.models.functions import Upper
from django.utils import timezone

from customers.models import (
    Cart,
    Channel,
    Consent,
    ConsentEvent,
    Customer,
    CustomerSearch,
    PointsEntry,
    Purchase,
)

# The 360 shows the most recent rows; the full history is a click away in the lists.
RECENT_ROWS = 50


@dataclass(frozen=True)
class Customer360:
    customer: Customer
    consents: dict[str, bool]
    purchases: list[Purchase]
    purchases_total: int
    carts: list[Cart]
    consent_history: list[ConsentEvent]
    points_entries: list[PointsEntry]
    points_entries_total: int

    def stats(self) -> dict[str, Any]:
        c = self.customer
        return {
            "orders_count": c.orders_count,
            "total_spent": c.total_spent,
            "first_purchase_at": c.first_purchase_at,
            "last_purchase_at": c.last_purchase_at,
            "points_balance": c.points_balance,
            "tier": c.tier,
        }


def customer_consents(*, customer: Customer) -> dict[str, bool]:
    """Every channel's current consent; a channel never asked is False (no consent, no message)."""
    granted = {consent.channel: consent.granted for consent in customer.consents.all()}  # uses a prefetch if any
    return {channel: granted.get(channel, False) for channel in Channel.values}


def customer_360(*, customer: Customer) -> Customer360:
    """Everything staff and the API show about one customer, in a fixed number of queries."""
    purchases = customer.purchases.prefetch_related("items").order_by("-placed_at", "-id")
    carts = customer.carts.prefetch_related("items").order_by("-updated_at", "-id")
    entries = customer.points_entries.select_related("purchase").order_by("-created_at", "-id")
    return Customer360(
        customer=customer,
        consents=customer_consents(customer=customer),
        purchases=list(purchases[:RECENT_ROWS]),
        purchases_total=purchases.count(),
        carts=list(carts[:RECENT_ROWS]),
        consent_history=list(customer.consent_events.order_by("-recorded_at", "-id")[:RECENT_ROWS]),
        points_entries=list(entries[:RECENT_ROWS]),
        points_entries_total=entries.count(),
    )


def customer_search(*, query: str, queryset: QuerySet[Customer] | None = None) -> QuerySet[Customer]:
    """Customers whose external id, email or phone starts with the query, or whose name contains it
    (or who have it as first and last name: "Ada Lovelace").

    Matches through CustomerSearch and its indexes. Both sides are upper-cased by the database, so
    the matches are the same as ``istartswith``/``icontains`` on the customer's own columns.
    """
    queryset = Customer.objects.all() if queryset is None else queryset
    query = query.strip()
    if not query:
        return queryset
    upper = Upper(Value(query))
    condition = (
        Q(external_id_upper__startswith=upper)
        | Q(email_upper__startswith=upper)
        | Q(phone__startswith=query.replace(" ", ""))
        | Q(first_name_upper__contains=upper)
        | Q(last_name_upper__contains=upper)
    )
    parts = query.split()
    if len(parts) == 2:
        condition |= Q(first_name_upper=Upper(Value(parts[0])), last_name_upper=Upper(Value(parts[1])))
    return queryset.filter(pk__in=CustomerSearch.objects.filter(condition).values("customer_id"))


def customers_with_email(*, email: str, queryset: QuerySet[Customer] | None = None) -> QuerySet[Customer]:
    """Customers with this email, in any case (the search table's email index serves it)."""
    queryset = Customer.objects.all() if queryset is None else queryset
    found = CustomerSearch.objects.filter(email_upper=Upper(Value(email)))
    return queryset.filter(pk__in=found.values("customer_id"))


def customer_ids_with_external_id(external_id: str) -> list[int]:
    """The id of the customer with exactly this external id (none or one), for the admin's exact
    searches of customer rows elsewhere: a list of ids lets the other table's customer index
    serve the search, where a join or an ``icontains`` would scan the whole table."""
    return list(Customer.objects.filter(external_id=external_id.strip()).values_list("pk", flat=True))


def customers_with_consent(*, channel: str, queryset: QuerySet[Customer] | None = None) -> QuerySet[Customer]:
    queryset = Customer.objects.all() if queryset is None else queryset
    granted = Consent.objects.filter(customer=OuterRef("pk"), channel=channel, granted=True)
    return queryset.filter(Exists(granted))


def customers_without_consent(*, channel: str, queryset: QuerySet[Customer] | None = None) -> QuerySet[Customer]:
    queryset = Customer.objects.all() if queryset is None else queryset
    granted = Consent.objects.filter(customer=OuterRef("pk"), channel=channel, granted=True)
    return queryset.filter(~Exists(granted))


# Last-purchase ranges in days, as staff think of them: (label, newer bound, older bound).
LAST_PURCHASE_RANGES = {
    "30": ("within 30 days", 0, 30),
    "90": ("30 to 90 days ago", 30, 90),
    "180": ("90 to 180 days ago", 90, 180),
    "365": ("180 to 365 days ago", 180, 365),
    "older": ("more than a year ago", 365, None),
}


def customers_by_last_purchase(
    *, range_key: str, queryset: QuerySet[Customer] | None = None, now: dt.datetime | None = None
) -> QuerySet[Customer]:
    queryset = Customer.objects.all() if queryset is None else queryset
    if range_key == "never":
        return queryset.filter(last_purchase_at__isnull=True)
    _, newer_days, older_days = LAST_PURCHASE_RANGES[range_key]
    now = now or timezone.now()
    queryset = queryset.filter(last_purchase_at__lte=now - dt.timedelta(days=newer_days))
    if older_days is not None:
        queryset = queryset.filter(last_purchase_at__gt=now - dt.timedelta(days=older_days))
    return queryset


def customers_with_tag(*, tag: str, queryset: QuerySet[Customer] | None = None) -> QuerySet[Customer]:
    queryset = Customer.objects.all() if queryset is None else queryset
    return queryset.filter(tags__contains=[tag])  # jsonb @> uses the JSON structure, not text


def customer_list() -> QuerySet[Customer]:
    """Customers for the API list, newest first, with what each row shows fetched in bulk."""
    return Customer.objects.select_related("referred_by", "score").prefetch_related("consents").order_by("-id")


def purchase_detail(purchase: Purchase) -> Purchase:
    """The purchase with its items loaded (one query; the customer is usually attached already)."""
    prefetch_related_objects([purchase], "items", "customer")
    return purchase


def cart_detail(cart: Cart) -> Cart:
    return Cart.objects.select_related("customer").prefetch_related("items").get(pk=cart.pk)
