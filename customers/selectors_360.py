"""Reads for the customer 360 beyond customers' own tables: the campaign messages a customer was
sent (with their subject rendered) and their NPS answers.

A message row does not store the text that went out, so the subject and body shown here are
rendered again from the campaign's templates, with the context the sender builds
(``campaigns.services.sending.message_context``: the customer, the message's cart and purchase,
its discount code, points). Each is a fixed number of queries, however many messages there are.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet

from campaigns.journey import journey_of
from campaigns.models import Campaign, Message, MessageStatus, SuppressionReason
from campaigns.services.sending import MESSAGE_FIELDS, Batch, message_context, message_step
from campaigns.templating import render, template_compile, uses
from campaigns.tokens import unsubscribe_url, unsubscribe_url_prefix
from campaigns.triggers.points_expiring import expiring_days_for
from customers.loyalty.selectors import points_expiring_within
from customers.models import CartItem, Channel, Customer, NpsResponse
from customers.selectors import RECENT_ROWS

# An SMS or push campaign has no subject: the list shows the start of its body instead.
SUMMARY_LENGTH = 90
LINE_FIELDS = ("campaign_id", "status", "reason", "created_at", "sent_at", "clicked_at")


@dataclass(frozen=True)
class Rendered:
    subject: str
    body: str
    error: str  # why rendering failed ("" when it did not); subject and body are then empty


@dataclass(frozen=True)
class MessageLine:
    """One message in the customer 360: what staff read in the list."""

    id: int
    uuid: str
    campaign_id: int
    campaign_name: str
    channel: str
    status: str
    status_label: str
    reason_label: str
    created_at: Any
    sent_at: Any
    clicked_at: Any
    subject: str
    render_error: str


@dataclass(frozen=True)
class CustomerMessages:
    lines: list[MessageLine]
    total: int


@dataclass(frozen=True)
class CustomerNps:
    answers: list[NpsResponse]
    total: int


def _label(choices: Any, value: str) -> str:
    try:
        return str(choices(value).label)
    except ValueError:
        return value


def reason_label(reason: str) -> str:
    """Why a message was suppressed or deferred, in words ("" when there is no reason)."""
    return _label(SuppressionReason, reason) if reason else ""


def _summary(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SUMMARY_LENGTH else text[: SUMMARY_LENGTH - 1].rstrip() + "…"


def _render_rows(rows: list[dict[str, Any]], campaigns: dict[int, Campaign], *, body: bool) -> dict[int, Rendered]:
    """Each row's subject (and body, if asked) rendered as the sender renders it.

    Queries: at most one for cart items and one per distinct "points expiring" window, only when
    a template reads them; templates are compiled once per campaign, step and variant.
    """
    sources = {pk: _sources(campaign) for pk, campaign in campaigns.items()}
    cart_ids = {row["cart_id"] for row in rows if row["cart_id"] is not None}
    cart_items: dict[int, list[Mapping[str, Any]]] = {}
    if cart_ids and any(uses(text, "cart") for text in sources.values()):
        items = CartItem.objects.filter(cart_id__in=cart_ids).order_by("pk")
        for item in items.values("cart_id", "sku", "name", "category", "quantity", "unit_price"):
            cart_items.setdefault(item["cart_id"], []).append(item)

    expiring: dict[int, dict[int, tuple[int, Any]]] = {}
    customer_ids = {row["customer_id"] for row in rows}
    windows = {pk: expiring_days_for(trigger=c.trigger, params=c.params) for pk, c in campaigns.items()}
    for days in {windows[pk] for pk in campaigns if uses(sources[pk], "points")}:
        found = points_expiring_within(days=days).filter(customer_id__in=customer_ids)
        expiring[days] = {entry["customer_id"]: (entry["points"], entry["earliest_expiry"]) for entry in found}

    prefix = unsubscribe_url_prefix()
    batches = {
        campaign.pk: Batch(
            campaign=campaign,
            rows=[],
            journey=journey_of(campaign),
            cart_items=cart_items,
            expiring=expiring.get(windows[campaign.pk], {}),
            expiring_days=windows[campaign.pk],
            url_prefix=prefix,
        )
        for campaign in campaigns.values()
    }
    templates: dict[tuple[int, str, str], Any] = {}
    rendered: dict[int, Rendered] = {}
    for row in rows:
        batch = batches[row["campaign_id"]]
        key = (row["campaign_id"], row["step_key"], row["variant_key"])
        if key not in templates:
            subject_source, body_source = message_step(batch, row).content(row["variant_key"])
            try:
                templates[key] = (template_compile(subject_source, "subject"), template_compile(body_source, "body"))
            except Exception as error:  # a template edited by hand outside the editor's checks
                templates[key] = str(error)
        if isinstance(templates[key], str):
            rendered[row["id"]] = Rendered("", "", templates[key])
            continue
        subject_template, body_template = templates[key]
        try:
            context = message_context(batch, row, unsubscribe_url(str(row["uuid"]), prefix))
            tz = row["customer__timezone"]
            subject = " ".join(render(subject_template, context, tz).split())
            text = render(body_template, context, tz) if body or not subject else ""
        except Exception as error:  # a template that fails on this customer's data
            rendered[row["id"]] = Rendered("", "", f"{type(error).__name__}: {error}")
            continue
        rendered[row["id"]] = Rendered(subject=subject, body=text, error="")
    return rendered


def _sources(campaign: Campaign) -> str:
    """Every template text of the campaign (its steps' and variants'), to see what they read."""
    texts = []
    for step in journey_of(campaign).message_steps():
        texts += [step.subject, step.body, *(v.subject + v.body for v in step.variants)]
    return "".join(texts)


def _campaigns(rows: list[dict[str, Any]]) -> dict[int, Campaign]:
    ids = {row["campaign_id"] for row in rows}
    fields = ("name", "trigger", "channel", "subject", "body", "offer", "params", "steps")
    return {campaign.pk: campaign for campaign in Campaign.objects.filter(pk__in=ids).only(*fields)}


def customer_messages(*, customer: Customer, limit: int = RECENT_ROWS) -> CustomerMessages:
    """The customer's most recent campaign messages, newest first, each with its subject rendered
    (for a channel without subjects, the start of the body). Four queries at most."""
    messages = Message.objects.filter(customer=customer)
    rows = list(messages.order_by("-created_at", "-id").values(*MESSAGE_FIELDS, *LINE_FIELDS)[:limit])
    total = len(rows) if len(rows) < limit else messages.count()
    campaigns = _campaigns(rows)
    rendered = _render_rows(rows, campaigns, body=False)
    lines = []
    for row in rows:
        content = rendered[row["id"]]
        lines.append(
            MessageLine(
                id=row["id"],
                uuid=str(row["uuid"]),
                campaign_id=row["campaign_id"],
                campaign_name=campaigns[row["campaign_id"]].name,
                channel=_label(Channel, row["channel"]),
                status=row["status"],
                status_label=_label(MessageStatus, row["status"]),
                reason_label=reason_label(row["reason"]),
                created_at=row["created_at"],
                sent_at=row["sent_at"],
                clicked_at=row["clicked_at"],
                subject=content.subject or _summary(content.body),
                render_error=content.error,
            )
        )
    return CustomerMessages(lines=lines, total=total)


def customer_message(*, customer: Customer, message_id: int) -> tuple[Message, Rendered] | None:
    """One of the customer's messages, with its subject and body rendered; None if it is not theirs."""
    message = Message.objects.select_related("campaign").filter(customer=customer, pk=message_id).first()
    if message is None:
        return None
    rows = list(Message.objects.filter(pk=message.pk).values(*MESSAGE_FIELDS, "campaign_id"))
    return message, _render_rows(rows, {message.campaign_id: message.campaign}, body=True)[message.pk]


def customer_nps_answers(*, customer: Customer, limit: int = RECENT_ROWS) -> CustomerNps:
    """The customer's NPS answers, newest first."""
    answers: QuerySet[NpsResponse] = customer.nps_responses.order_by("-answered_at", "-id")
    recent = list(answers[:limit])
    total = len(recent) if len(recent) < limit else answers.count()
    return CustomerNps(answers=recent, total=total)
