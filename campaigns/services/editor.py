"""The admin editor's helpers: a live preview rendered for a chosen customer, and a test send."""

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.utils import timezone

from campaigns.channels.email import message_id_domain
from campaigns.offers import offer_clean, offer_context
from campaigns.services.campaigns import campaign_get
from campaigns.services.sending import DEFAULT_EXPIRING_DAYS
from campaigns.templating import (
    cart_context,
    customer_context,
    points_context,
    render,
    sample_context,
    storable_text,
    template_compile,
)
from campaigns.triggers import trigger_get
from customers.models import Cart, CartStatus, Customer, Purchase, PurchaseStatus
from customers.services import validation as v
from retention_crm.errors import ApplicationError, NotFound

PREVIEW_CUSTOMER_FIELDS = (
    "external_id",
    "email",
    "phone",
    "first_name",
    "last_name",
    "tier",
    "points_balance",
    "orders_count",
    "total_spent",
    "first_purchase_at",
    "last_purchase_at",
    "birth_date",
    "created_at",
    "tags",
    "attributes",
    "timezone",
)


@dataclass(frozen=True)
class Preview:
    subject: str
    body: str
    customer: str | None  # the external id it was rendered for; None: the sample customer


def _expiring_days(trigger: str, params: Any) -> int:
    if trigger == "points_expiring":
        try:
            return int(trigger_get(trigger).resolve(params if isinstance(params, dict) else {})["days_ahead"])
        except (ApplicationError, TypeError, ValueError):
            return 14
    return DEFAULT_EXPIRING_DAYS


def preview_context(*, customer_external_id: str | None, offer: Any, trigger: str, params: Any) -> dict[str, Any]:
    """The context a message to this customer would get now (their latest open cart, their points,
    their latest purchase); the sample context when no customer is named."""
    context = sample_context()
    offer_values = offer_clean(offer)
    prefix = offer_values.get("code_prefix", "CRM")
    context["offer"] = offer_context(offer_values, f"{prefix}-PREVIEW")
    context["unsubscribe_url"] = f"{settings.SITE_URL}/unsubscribe/preview"
    if not customer_external_id:
        return context
    v.clean_external_id(customer_external_id, "preview_customer")
    storable_text(customer_external_id, "preview_customer")
    row = Customer.objects.filter(external_id=customer_external_id).values("id", *PREVIEW_CUSTOMER_FIELDS).first()
    if row is None:
        raise NotFound(f"No customer with external_id {customer_external_id!r}.", code="customer_not_found")
    customer_id = row["id"]
    context["customer"] = customer_context(row)
    cart = Cart.objects.filter(customer_id=customer_id, status=CartStatus.OPEN).order_by("-updated_at").first()
    context["cart"] = (
        cart_context(
            cart.external_id,
            cart.updated_at,
            list(cart.items.order_by("pk").values("sku", "name", "category", "quantity", "unit_price")),
        )
        if cart
        else None
    )
    purchase = (
        Purchase.objects.filter(customer_id=customer_id, status=PurchaseStatus.COMPLETED).order_by("-placed_at").first()
    )
    context["purchase"] = (
        {"external_id": purchase.external_id, "placed_at": purchase.placed_at, "total": purchase.total}
        if purchase
        else None
    )
    days = _expiring_days(trigger, params)
    from customers.selectors_loyalty import points_expiring_within

    expiring = points_expiring_within(days=days).filter(customer_id=customer_id).first()
    context["points"] = points_context(
        row["points_balance"],
        expiring["points"] if expiring else 0,
        expiring["earliest_expiry"] if expiring else None,
        days,
    )
    return context


def campaign_preview(
    *,
    subject: str,
    body: str,
    offer: Any = None,
    trigger: str = "",
    params: Any = None,
    customer_external_id: str | None = None,
) -> Preview:
    """Render unsaved templates for a customer; raises ApplicationError naming the field in error."""
    context = preview_context(customer_external_id=customer_external_id, offer=offer, trigger=trigger, params=params)
    tz = context["customer"]["timezone"]
    rendered = {}
    for field, source in (("subject", subject or ""), ("body", body or "")):
        template = template_compile(source, field)
        try:
            rendered[field] = render(template, context, tz)
        except Exception as error:
            message = f"template error: {error}"
            raise ApplicationError(f"{field}: {message}", code="invalid_template", fields={field: [message]}) from None
    return Preview(subject=" ".join(rendered["subject"].split()), body=rendered["body"], customer=customer_external_id)


def campaign_send_test(*, campaign_id: int, to: str, customer_external_id: str | None = None) -> Preview:
    """Email the campaign, rendered for a customer (or the sample), to a staff address. Whatever the
    campaign's channel, the test goes by email, marked as a test; no message is recorded."""
    address = v.clean_email(to, "to")
    if not address:
        raise v.invalid("to", "is required")
    campaign = campaign_get(campaign_id=campaign_id)
    preview = campaign_preview(
        subject=campaign.subject or campaign.name,
        body=campaign.body,
        offer=campaign.offer,
        trigger=campaign.trigger,
        params=campaign.params,
        customer_external_id=customer_external_id,
    )
    stamp = int(timezone.now().timestamp() * 1000)
    EmailMessage(
        subject=f"[TEST] {preview.subject}",
        body=preview.body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[address],
        headers={"Message-ID": f"<test-{campaign.pk}-{stamp}@{message_id_domain()}>", "X-Campaign-Test": "1"},
        connection=get_connection(fail_silently=False),
    ).send()
    return preview


__all__ = ["Preview", "campaign_preview", "campaign_send_test", "preview_context"]
