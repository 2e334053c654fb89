"""Writes for customers and their consents."""

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.db.models import Count, OuterRef, Q, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from campaigns.channels.registry import personal_address_fields
from campaigns.exits import entries_exit_for_customers  # campaigns: journeys end on revoke and erase
from campaigns.models import Entry, Message  # campaigns: erasure reaches the customer's messages
from customers.loyalty.services import points_welcome_for_customers
from customers.loyalty.services.ledger import ERASED_REASON, points_reasons_erase
from customers.models import (
    AuditLog,
    Channel,
    Consent,
    ConsentEvent,
    ConsentSource,
    Customer,
    Purchase,
    PurchaseStatus,
)
from retention_crm import validation as v
from retention_crm.errors import Conflict, NotFound

# Personal data: what staff edit in the admin and what erasure removes.
PERSONAL_FIELDS = ("email", "phone", "first_name", "last_name", "birth_date", "timezone", "tags", "attributes")
CUSTOMER_FIELDS = frozenset({*PERSONAL_FIELDS, "created_at", "consents", "referred_by"})
_CLEANERS: dict[str, Callable[[Any], Any]] = {
    "email": v.clean_email,
    "phone": v.clean_phone,
    "first_name": lambda value: v.clean_text(value, "first_name", 150),
    "last_name": lambda value: v.clean_text(value, "last_name", 150),
    "birth_date": v.clean_birth_date,
    "timezone": v.clean_timezone,
    "tags": v.clean_tags,
    "attributes": v.clean_attributes,
}


def customer_get(*, external_id: str) -> Customer:
    try:
        return Customer.objects.get(external_id=external_id)
    except Customer.DoesNotExist:
        raise NotFound(f"No customer with external_id {external_id!r}.", code="customer_not_found") from None


_CUSTOMER_LOCKED = "SELECT * FROM customers_customer WHERE external_id = %s FOR NO KEY UPDATE"


def customer_get_or_create_locked(*, external_id: str) -> tuple[Customer, bool]:
    """The customer with this external id, created if unknown, and locked for this transaction.

    Writes that change a customer's aggregates (purchases, points) take this lock first, so two
    requests for one customer queue up instead of overwriting each other's figures.
    """
    external_id = v.clean_external_id(external_id, "customer")
    # On every purchase: a plain statement for the usual case, the ORM's get_or_create otherwise.
    customer = next(iter(Customer.objects.raw(_CUSTOMER_LOCKED, [external_id])), None)
    if customer is not None:
        return customer, False
    customer, created = Customer.objects.select_for_update(no_key=True).get_or_create(external_id=external_id)
    if created:
        points_welcome_for_customers(customer_ids=[customer.pk])  # loyalty: the welcome bonus, once
        customer.refresh_from_db(fields=["points_balance"])
    return customer, created


def _clean_consents(value: Any) -> dict[str, bool]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise v.invalid("consents", "must be an object of channel: true/false")
    cleaned = {}
    for channel, granted in value.items():
        if channel not in Channel.values:
            raise v.invalid("consents", f"unknown channel {channel!r}; use {', '.join(Channel.values)}")
        if not isinstance(granted, bool):
            raise v.invalid("consents", f"{channel} must be true or false")
        cleaned[channel] = granted
    return cleaned


@dataclass(frozen=True)
class CustomerChanges:
    """Validated changes to a customer: only the fields that were given."""

    external_id: str
    values: dict[str, Any]
    consents: dict[str, bool]
    referrer: Customer | None


def customer_changes_clean(*, external_id: str, data: dict[str, Any]) -> CustomerChanges:
    """Validate a customer's fields (SPEC §6 customer shape); raises ApplicationError naming the field."""
    v.refuse_unknown_fields(data, CUSTOMER_FIELDS)
    external_id = v.clean_external_id(external_id)
    values = {name: clean(data[name]) for name, clean in _CLEANERS.items() if name in data}
    if "created_at" in data:
        values["created_at"] = (
            v.clean_happened_at(data["created_at"], "created_at") if data["created_at"] else timezone.now()
        )
    referrer = None
    if data.get("referred_by") not in (None, ""):
        referrer_id = v.clean_external_id(data["referred_by"], "referred_by")
        if referrer_id == external_id:
            raise v.invalid("referred_by", "a customer cannot refer themselves")
        referrer = Customer.objects.filter(external_id=referrer_id).first()
        if referrer is None:
            raise v.invalid("referred_by", f"no customer with external_id {referrer_id!r}")
    return CustomerChanges(
        external_id=external_id,
        values=values,
        consents=_clean_consents(data.get("consents")),
        referrer=referrer,
    )


def customer_refuse_erased(*, customer: Customer) -> None:
    """Erasure is irreversible: an erased customer's record takes no new personal data (a 409)."""
    if customer.is_erased:
        raise Conflict("This customer was erased; their record takes no new personal data.", code="erased")


@transaction.atomic
def customer_upsert(
    *, external_id: str, data: dict[str, Any], source: str = ConsentSource.API
) -> tuple[Customer, bool]:
    """Create the customer or update the fields given in ``data``; absent fields keep their values.

    Idempotent: the same call twice leaves the same record. An erased customer cannot be given
    personal data again (erasure is irreversible).
    """
    changes = customer_changes_clean(external_id=external_id, data=data)
    customer = Customer.objects.select_for_update(no_key=True).filter(external_id=changes.external_id).first()
    created = customer is None
    if customer is None:
        customer = Customer(external_id=changes.external_id, referred_by=changes.referrer, **changes.values)
    else:
        customer_refuse_erased(customer=customer)
        for name, value in changes.values.items():
            setattr(customer, name, value)
        if customer.referred_by_id is None and changes.referrer is not None:
            # The first referrer counts; later claims do not move the credit.
            customer.referred_by = changes.referrer
    customer.save()
    if created:
        points_welcome_for_customers(customer_ids=[customer.pk])  # loyalty: the welcome bonus, once
    for channel, granted in changes.consents.items():
        consent_set(customer=customer, channel=channel, granted=granted, source=source)
    customer.refresh_from_db()
    return customer, created


@transaction.atomic
def consent_set(
    *,
    customer: Customer,
    channel: Any,
    granted: Any,
    source: str,
    at: dt.datetime | None = None,
) -> Consent:
    """Set one channel's consent; a change appends to the consent history, a repeat does not.
    ``channel`` and ``granted`` may come straight from a request: they are checked here."""
    v.clean_choice(channel, "channel", Channel.values)
    v.clean_choice(source, "source", ConsentSource.values)
    if not isinstance(granted, bool):
        raise v.invalid("granted", "must be true or false")
    if granted and customer.is_erased:
        raise Conflict("This customer was erased; consent cannot be granted again.", code="erased")
    at = at or timezone.now()
    consent, created = Consent.objects.select_for_update().get_or_create(
        customer=customer, channel=channel, defaults={"granted": granted, "source": source, "updated_at": at}
    )
    if created or consent.granted != granted:
        if not created:
            consent.granted, consent.source, consent.updated_at = granted, source, at
            consent.save(update_fields=["granted", "source", "updated_at"])
        ConsentEvent.objects.create(customer=customer, channel=channel, granted=granted, source=source, recorded_at=at)
        if not granted:
            # Journeys on this channel end now (SPEC §4.1), not when their next step comes due.
            entries_exit_for_customers(customer_ids=[customer.pk], reason="no_consent", channel=channel)
    return consent


def customer_stats_refresh(*, customer_ids: Iterable[int]) -> None:
    """Recompute purchase stats from completed purchases, in one UPDATE for all given customers.

    Recomputing (rather than adding deltas) makes refunds, cancels and replays exact by
    construction; each subquery reads one customer's purchases through their index.
    """
    completed = Purchase.objects.filter(customer=OuterRef("pk"), status=PurchaseStatus.COMPLETED)
    per_customer = completed.order_by().values("customer")
    Customer.objects.filter(pk__any=list(customer_ids)).update(
        first_purchase_at=Subquery(completed.order_by("placed_at").values("placed_at")[:1]),
        last_purchase_at=Subquery(completed.order_by("-placed_at").values("placed_at")[:1]),
        orders_count=Coalesce(Subquery(per_customer.annotate(n=Count("pk")).values("n")), 0),
        total_spent=Coalesce(Subquery(per_customer.annotate(s=Sum("total")).values("s")), Decimal("0.00")),
    )


ERASED_EMAIL = ""
ERASURE_CHANNELS = Channel.values


@transaction.atomic
def customer_erase(*, external_id: str, actor: str) -> tuple[Customer, bool]:
    """GDPR erasure: personal data anonymised, consents revoked, purchases and aggregates kept.

    Nothing personal is left anywhere (SPEC §8): the customer's columns, their NPS comments, their
    messages' trigger data (a birthday is a birth date) and errors (a bounce quotes the address),
    the reasons of their ledger entries that may name them, the text of audit entries about them,
    and the admin's change log (whose object_repr came from ``__str__``). The external id stays:
    it is the shop's key, and purchases, points and the audit trail hang on it.

    Irreversible and idempotent: erasing again changes nothing. Recorded in the audit log.
    Returns (customer, erased_now).
    """
    customer = Customer.objects.select_for_update(no_key=True).filter(external_id=external_id).first()
    if customer is None:
        raise NotFound(f"No customer with external_id {external_id!r}.", code="customer_not_found")
    if customer.is_erased:
        return customer, False
    at = timezone.now()
    personal = _personal_texts(customer)
    entries_exit_for_customers(customer_ids=[customer.pk], reason="erased")
    for channel in ERASURE_CHANNELS:
        consent_set(customer=customer, channel=channel, granted=False, source=ConsentSource.ERASURE, at=at)
    Customer.objects.filter(pk=customer.pk).update(
        # Every channel's personal address (email, phone, Telegram chat, ...), from the channel registry.
        **{**dict.fromkeys(personal_address_fields(), ""), "email": ERASED_EMAIL},
        first_name="",
        last_name="",
        birth_date=None,
        attributes={},
        tags=[],
        erased_at=at,
    )
    # Free-text answers may name the person; the scores stay for NPS.
    customer.nps_responses.exclude(comment="").update(comment="")
    # Statuses, times and campaigns stay for the reports.
    Message.objects.filter(customer=customer).exclude(data={}).update(data={})
    Entry.objects.filter(customer=customer).exclude(data={}).update(data={})
    Message.objects.filter(customer=customer).exclude(error="").update(error=ERASED_REASON)
    points_reasons_erase(customer_id=customer.pk, personal=personal)
    _audit_details_erase(target=f"customer:{external_id}")
    _admin_log_erase(customer=customer, personal=personal)
    AuditLog.objects.create(action="customer.erase", target=f"customer:{external_id}", actor=actor, at=at)
    customer.refresh_from_db()
    return customer, True


def _personal_texts(customer: Customer) -> list[str]:
    name = f"{customer.first_name} {customer.last_name}".strip()
    values = (customer.email, customer.phone, customer.first_name, customer.last_name, name)
    return sorted({value for value in values if value})


def _erased_details(details: Any) -> Any:
    """Audit details without their text: numbers, flags and the keys stay, every string goes."""
    if isinstance(details, dict):
        return {key: _erased_details(value) for key, value in details.items()}
    if isinstance(details, list):
        return [_erased_details(value) for value in details]
    return ERASED_REASON if isinstance(details, str) else details


def _audit_details_erase(*, target: str) -> None:
    for entry in AuditLog.objects.filter(target=target).exclude(details={}).only("pk", "details"):
        AuditLog.objects.filter(pk=entry.pk).update(details=_erased_details(entry.details))


def _admin_log_erase(*, customer: Customer, personal: list[str]) -> None:
    """The admin's history of the customer: its title becomes the external id, and a change message
    that quotes their data (a custom one could) is blanked."""
    content_type = ContentType.objects.get_for_model(Customer)
    entries = LogEntry.objects.filter(content_type=content_type, object_id=str(customer.pk))
    entries.exclude(object_repr=customer.external_id).update(object_repr=customer.external_id)
    if personal:
        quoting = Q()
        for value in personal:
            quoting |= Q(change_message__icontains=value)
        entries.filter(quoting).update(change_message="")
