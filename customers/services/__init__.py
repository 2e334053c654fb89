"""Writes: every change to customer data goes through one of these transactional services."""

from customers.services.bulk import BulkResult, purchases_record_bulk
from customers.services.carts import cart_upsert
from customers.services.customers import (
    CustomerChanges,
    consent_set,
    customer_changes_clean,
    customer_erase,
    customer_get,
    customer_get_or_create_locked,
    customer_stats_refresh,
    customer_upsert,
)
from customers.services.nps import nps_record
from customers.services.purchase_input import LineItemInput, PurchaseInput
from customers.services.purchases import (
    purchase_cancel,
    purchase_record,
    purchase_refund,
)

__all__ = [
    "BulkResult",
    "CustomerChanges",
    "LineItemInput",
    "PurchaseInput",
    "cart_upsert",
    "consent_set",
    "customer_changes_clean",
    "customer_erase",
    "customer_get",
    "customer_get_or_create_locked",
    "customer_stats_refresh",
    "customer_upsert",
    "nps_record",
    "purchase_cancel",
    "purchase_record",
    "purchase_refund",
    "purchases_record_bulk",
]
