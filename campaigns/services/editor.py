"""The admin editor's helpers: a live preview rendered for a chosen customer, and a test send that
says where it went (a new shop's default email backend prints to the console: nothing arrives).

Both render one message step of the journey and one of its variants (SPEC §4.1): by default the
first message step and its first variant. A campaign without steps has one implicit step, key
``message``, made of its own subject, body and offer.
"""

from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.utils import timezone

from campaigns.channels.email import message_id_domain
from campaigns.content.preview import html_preview, text_preview
from campaigns.journey import IMPLICIT_STEP_KEY, Journey, Step, journey_of, steps_clean
from campaigns.models import Campaign
from campaigns.offers import offer_clean, offer_context
from campaigns.services.campaigns import campaign_get
from campaigns.templating import (
    cart_context,
    customer_context,
    points_context,
    render,
    sample_context,
    storable_text,
    template_compile,
)
from campaigns.triggers.points_expiring import expiring_days_for
from customers.models import AuditLog, Cart, CartStatus, Channel, Customer, Purchase, PurchaseStatus
from retention_crm import validation as v
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
    step_key: str = IMPLICIT_STEP_KEY
    variant_key: str = ""  # "": the step has no variants
    html: str = ""  # the HTML email in the shop's layout; "": the step has no HTML body


@dataclass(frozen=True)
class Content:
    """One step's (and variant's) templates, and where their errors are named (``steps[1].variants[0].``)."""

    step: Step
    variant_key: str
    subject: str
    body: str
    field_prefix: str
    body_html: str = ""


def preview_context(*, customer_external_id: str | None, offer: Any, trigger: str, params: Any) -> dict[str, Any]:
    """The context a message to this customer would get now (their latest open cart, their points,
    their latest purchase); the sample context when no customer is named."""
    context = sample_context()
    offer_values = offer_clean(offer)
    prefix = offer_values.get("code_prefix", "CRM")
    context["offer"] = offer_context(offer_values, f"{prefix}-PREVIEW")
    context["unsubscribe_url"] = f"{settings.SITE_URL}/unsubscribe/preview"
    context["preferences_url"] = f"{settings.SITE_URL}/preferences/preview"
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
    days = expiring_days_for(trigger=trigger, params=params)
    from customers.loyalty.selectors import points_expiring_within

    expiring = points_expiring_within(days=days).filter(customer_id=customer_id).first()
    context["points"] = points_context(
        row["points_balance"],
        expiring["points"] if expiring else 0,
        expiring["earliest_expiry"] if expiring else None,
        days,
    )
    return context


def _message_step_position(steps: list[Any], step_key: str | None) -> int:
    """Where the chosen message step is in the (unsaved) list: the one with ``step_key``, else the first."""
    for position, item in enumerate(steps):
        if not isinstance(item, dict) or item.get("type") != "message":
            continue
        if not step_key or item.get("key") == step_key:
            return position
    if step_key:
        raise v.invalid("preview_step", f"no message step with key {step_key!r}")
    raise v.invalid("preview_step", "the journey has no message step")


def _renumbered(error: ApplicationError, position: int) -> ApplicationError:
    """An error about ``steps[0]`` (a step validated on its own) named after its place in the journey."""
    old, new = "steps[0]", f"steps[{position}]"
    fields = {name.replace(old, new, 1): problems for name, problems in error.fields.items()}
    return ApplicationError(error.message.replace(old, new, 1), code=error.code, fields=fields)


def _variant_of(step: Step, variant_key: str | None) -> str:
    """The variant to render: the one named, else the first; '' for a step without variants."""
    keys = [variant.key for variant in step.variants]
    if not keys:
        if variant_key:
            raise v.invalid("preview_variant", f"step {step.key!r} has no variants")
        return ""
    if not variant_key:
        return keys[0]
    if variant_key not in keys:
        raise v.invalid("preview_variant", f"step {step.key!r} has no variant {variant_key!r}")
    return variant_key


def _content(step: Step, position: int | None, variant_key: str | None) -> Content:
    variant = _variant_of(step, variant_key)
    subject, body = step.content(variant)
    prefix = "" if position is None else f"steps[{position}]."
    if variant:
        prefix += f"variants[{[x.key for x in step.variants].index(variant)}]."
    return Content(
        step=step,
        variant_key=variant,
        subject=subject,
        body=body,
        field_prefix=prefix,
        body_html=step.html_content(variant),
    )


def draft_content(
    *,
    steps: Any,
    channel: str,
    subject: str,
    body: str,
    offer: Any,
    step_key: str | None = None,
    variant_key: str | None = None,
    body_html: str = "",
) -> Content:
    """The content of one step of an unsaved journey. Only the chosen step is validated, so a step
    still being written elsewhere in the journey does not stop the preview of this one."""
    if not steps:
        if step_key and step_key != IMPLICIT_STEP_KEY:
            raise v.invalid("preview_step", f"no message step with key {step_key!r}")
        draft = Campaign(
            steps=[],
            channel=channel,
            subject=subject or "",
            body=body or "",
            body_html=body_html or "",
            offer=offer or {},
        )
        return _content(journey_of(draft).first, None, variant_key)
    if not isinstance(steps, list):
        raise v.invalid("steps", "must be a list of steps")
    position = _message_step_position(steps, step_key)
    try:
        cleaned = steps_clean([steps[position]], channel=channel)
    except ApplicationError as error:
        raise _renumbered(error, position) from None
    step = journey_of(Campaign(steps=cleaned, channel=channel)).first
    return _content(step, position, variant_key)


def saved_content(*, journey: Journey, step_key: str | None = None, variant_key: str | None = None) -> Content:
    """The content of one message step of a saved campaign (default: the first, its first variant)."""
    messages = journey.message_steps()
    step = next((x for x in messages if not step_key or x.key == step_key), None)
    if step is None:
        problem = f"no message step with key {step_key!r}" if step_key else "the journey has no message step"
        raise v.invalid("preview_step", problem)
    return _content(step, journey.index(step.key) if journey.explicit else None, variant_key)


def content_render(
    content: Content, *, offer: Any, trigger: str = "", params: Any = None, customer_external_id: str | None = None
) -> Preview:
    """Render a step's templates for a customer; raises ApplicationError naming the field in error."""
    context = preview_context(customer_external_id=customer_external_id, offer=offer, trigger=trigger, params=params)
    tz = context["customer"]["timezone"]
    rendered = {}
    for name, source in (("subject", content.subject or ""), ("body", content.body or "")):
        field = f"{content.field_prefix}{name}"
        template = template_compile(source, field)
        try:
            rendered[name] = render(template, context, tz)
        except Exception as error:
            message = f"template error: {error}"
            raise ApplicationError(f"{field}: {message}", code="invalid_template", fields={field: [message]}) from None
    subject = " ".join(rendered["subject"].split())
    html, html_text = html_preview(
        source=content.body_html, context=context, tz=tz, subject=subject, field=f"{content.field_prefix}body_html"
    )
    return Preview(
        subject=subject,
        # The text as the channel carries it (SMS and Telegram add the preference-centre line).
        body=text_preview(
            channel=content.step.channel,
            source=content.body or "",
            text=rendered["body"] or html_text,
            preferences_url=context["preferences_url"],
        ),
        customer=customer_external_id,
        step_key=content.step.key,
        variant_key=content.variant_key,
        html=html,
    )


def campaign_preview(
    *,
    subject: str,
    body: str,
    offer: Any = None,
    trigger: str = "",
    params: Any = None,
    customer_external_id: str | None = None,
    steps: Any = None,
    channel: str = Channel.EMAIL,
    step_key: str | None = None,
    variant_key: str | None = None,
    body_html: str = "",
) -> Preview:
    """Render unsaved templates for a customer: one step (``step_key``, default the first message
    step) and one of its variants (``variant_key``, default the first) of the unsaved ``steps``, or
    without steps the campaign's own subject, body and offer. Raises ApplicationError naming the
    field in error (``body``, ``steps[2].variants[1].body``, ``preview_step``)."""
    content = draft_content(
        steps=steps,
        channel=channel,
        subject=subject,
        body=body,
        offer=offer,
        step_key=step_key,
        variant_key=variant_key,
        body_html=body_html,
    )
    step_offer = content.step.offer if steps else offer
    return content_render(
        content, offer=step_offer, trigger=trigger, params=params, customer_external_id=customer_external_id
    )


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

    explicit_step: bool = False  # the campaign has steps: say which step and variant went

    @property
    def text(self) -> str:
        if not self.explicit_step:
            return f"Test sent to {self.to}: {self.destination}."
        variant = f", variant {self.preview.variant_key}" if self.preview.variant_key else ""
        return f"Test of step {self.preview.step_key}{variant} sent to {self.to}: {self.destination}."


def send_test_address_allowed(*, address: str, staff_email: str) -> bool:
    """A test carries a customer's data: it goes only to the staff user's own address or to a
    domain the shop allow-lists (TEST_EMAIL_DOMAINS), never to anyone (SPEC §8)."""
    if staff_email and address.casefold() == staff_email.strip().casefold():
        return True
    domain = address.rpartition("@")[2].casefold()
    return domain in {allowed.strip().casefold() for allowed in settings.TEST_EMAIL_DOMAINS if allowed.strip()}


@transaction.atomic
def campaign_send_test(
    *,
    campaign_id: int,
    to: str,
    staff_username: str,
    staff_email: str,
    customer_external_id: str | None = None,
    step_key: str | None = None,
    variant_key: str | None = None,
) -> SendTestResult:
    """Email one message step of the campaign (``step_key``, default the first) in one of its
    variants (``variant_key``, default the first), rendered for a customer (or the sample), to the
    staff user's own address (or an allow-listed domain), and audit it. Whatever the step's channel,
    the test goes by email, marked as a test; no message is recorded."""
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
    journey = journey_of(campaign)
    content = saved_content(journey=journey, step_key=step_key, variant_key=variant_key)
    AuditLog.objects.create(
        action="campaign.send_test",
        target=f"campaign:{campaign.pk}",
        actor=staff_username[:150],
        details={
            "to": address,
            "customer": customer_external_id or "",
            "step": content.step.key,
            "variant": content.variant_key,
        },
    )
    if not content.subject:  # an SMS or push step has none; the test email needs one
        content = replace(content, subject=campaign.subject or campaign.name)
    preview = content_render(
        content,
        offer=content.step.offer,
        trigger=campaign.trigger,
        params=campaign.params,
        customer_external_id=customer_external_id,
    )
    stamp = int(timezone.now().timestamp() * 1000)
    test_email = EmailMultiAlternatives(
        subject=f"[TEST] {preview.subject}",
        body=preview.body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[address],
        headers={"Message-ID": f"<test-{campaign.pk}-{stamp}@{message_id_domain()}>", "X-Campaign-Test": "1"},
        connection=get_connection(fail_silently=False),
    )
    if preview.html:  # the HTML part as it will be sent (links untracked: a test records nothing)
        test_email.attach_alternative(preview.html, "text/html")
    test_email.send()
    return SendTestResult(preview=preview, to=address, destination=email_destination(), explicit_step=journey.explicit)


__all__ = [
    "Content",
    "Preview",
    "SendTestResult",
    "campaign_preview",
    "campaign_send_test",
    "channel_destination",
    "content_render",
    "draft_content",
    "email_destination",
    "preview_context",
    "saved_content",
]
