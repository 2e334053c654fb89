"""The admin editor's helpers: a live preview rendered for a chosen customer, and a test send that
says where it went (a new shop's default email backend prints to the console: nothing arrives)."""

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import transaction
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
from customers.models import AuditLog, Cart, CartStatus, Customer, Purchase, PurchaseStatus
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


# Django's own email backends, in words; a path outside this table is named as it is.
EMAIL_BACKEND_DESTINATIONS = {
    "django.core.mail.backends.console.EmailBackend": "printed to the server's console (console email backend): "
    "no email left the server; set EMAIL_URL to send real mail",
    "django.core.mail.backends.locmem.EmailBackend": "kept in memory (locmem email backend, for tests): "
    "no email left the server",
    "django.core.mail.backends.dummy.EmailBackend": "discarded (dummy email backend): no email left the server",
}


def email_destination() -> str:
    """Where an email sent now goes, from the email settings, in words."""
    backend = settings.EMAIL_BACKEND
    if backend in EMAIL_BACKEND_DESTINATIONS:
        return EMAIL_BACKEND_DESTINATIONS[backend]
    if backend == "django.core.mail.backends.smtp.EmailBackend":
        security = " over TLS" if settings.EMAIL_USE_TLS else " over SSL" if settings.EMAIL_USE_SSL else ""
        return f"handed to the SMTP server {settings.EMAIL_HOST}:{settings.EMAIL_PORT}{security}"
    if backend == "django.core.mail.backends.filebased.EmailBackend":
        return f"written to a file in {settings.EMAIL_FILE_PATH} (file email backend): no email left the server"
    if backend.startswith("anymail.backends."):
        provider = backend.split(".")[2].replace("_", " ").title()
        return f"handed to {provider} (through django-anymail)"
    return f"handed to the email backend {backend}"


def channel_destination(channel: str) -> str:
    """Where a campaign's messages on ``channel`` go, in words (email: ``email_destination``)."""
    config = settings.CAMPAIGN_CHANNELS.get(channel) or {}
    backend = str(config.get("BACKEND", "email" if channel == "email" else "console"))
    if backend == "email":
        return email_destination()
    if backend == "http":
        parts = urlsplit(str(config.get("URL", "")))
        return f"posted to {parts.scheme}://{parts.netloc}{parts.path}" if parts.netloc else "nowhere: no URL is set"
    if backend == "console":
        return f"printed to the worker's console: set {channel.upper()}_URL to reach a provider"
    if backend == "file":
        return f"written to {settings.CAMPAIGN_FILE_DIR}/{channel}.jsonl"
    if backend == "locmem":
        return "kept in memory (for tests)"
    return f"handed to {backend}"


@dataclass(frozen=True)
class SendTestResult:
    preview: Preview
    to: str
    destination: str  # where it went, in words: the console, an SMTP host, a file, an ESP

    @property
    def text(self) -> str:
        return f"Test sent to {self.to}: {self.destination}."


def send_test_address_allowed(*, address: str, staff_email: str) -> bool:
    """A test carries a customer's data: it goes only to the staff user's own address or to a
    domain the shop allow-lists (TEST_EMAIL_DOMAINS), never to anyone (SPEC §8)."""
    if staff_email and address.casefold() == staff_email.strip().casefold():
        return True
    domain = address.rpartition("@")[2].casefold()
    return domain in {allowed.strip().casefold() for allowed in settings.TEST_EMAIL_DOMAINS if allowed.strip()}


@transaction.atomic
def campaign_send_test(
    *, campaign_id: int, to: str, staff_username: str, staff_email: str, customer_external_id: str | None = None
) -> SendTestResult:
    """Email the campaign, rendered for a customer (or the sample), to the staff user's own address
    (or an allow-listed domain), and audit it. Whatever the campaign's channel, the test goes by
    email, marked as a test; no message is recorded."""
    address = v.clean_email(to, "to")
    if not address:
        raise v.invalid("to", "is required")
    if not send_test_address_allowed(address=address, staff_email=staff_email):
        domains = ", ".join(settings.TEST_EMAIL_DOMAINS) or "none set"
        raise v.invalid(
            "to",
            f"must be your own address ({staff_email or 'none on your user'}) or in an allow-listed domain "
            f"(TEST_EMAIL_DOMAINS: {domains})",
        )
    campaign = campaign_get(campaign_id=campaign_id)
    AuditLog.objects.create(
        action="campaign.send_test",
        target=f"campaign:{campaign.pk}",
        actor=staff_username[:150],
        details={"to": address, "customer": customer_external_id or ""},
    )
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
    return SendTestResult(preview=preview, to=address, destination=email_destination())


__all__ = [
    "Preview",
    "SendTestResult",
    "campaign_preview",
    "campaign_send_test",
    "channel_destination",
    "email_destination",
    "preview_context",
]
