"""What comes back after a send: unsubscribes through the signed link, and provider callbacks."""

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from campaigns.channels.registry import channel_definition
from campaigns.models import SENT_STATUSES, Message, MessageStatus
from campaigns.tokens import InvalidToken, unsubscribe_token_read
from customers.models import Channel, ConsentSource
from customers.services import consent_set
from retention_crm import validation as v
from retention_crm.errors import ApplicationError

# --- Unsubscribe ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UnsubscribeTarget:
    message: Message
    channel: str
    address: str  # masked, for the confirmation page


def unsubscribe_target(*, token: str) -> UnsubscribeTarget:
    """The message a token names; raises ApplicationError (400) for a tampered or unknown token."""
    try:
        message_uuid = unsubscribe_token_read(token)
    except InvalidToken:
        raise ApplicationError("This unsubscribe link is not valid.", code="invalid_token") from None
    message = Message.objects.select_related("customer", "campaign").filter(uuid=message_uuid).first()
    if message is None:
        raise ApplicationError("This unsubscribe link is not valid.", code="invalid_token")
    address = channel_definition(message.channel).masked_address_of(message.customer)
    return UnsubscribeTarget(message=message, channel=message.channel, address=address)


@transaction.atomic
def unsubscribe_confirm(*, token: str) -> UnsubscribeTarget:
    """Revoke the consent for the message's channel (source ``unsubscribe_link``). Idempotent:
    a second click changes nothing."""
    target = unsubscribe_target(token=token)
    message = target.message
    consent_set(
        customer=message.customer, channel=message.channel, granted=False, source=ConsentSource.UNSUBSCRIBE_LINK
    )
    Message.objects.filter(pk=message.pk, unsubscribed_at__isnull=True).update(unsubscribed_at=timezone.now())
    return target


# --- Provider callbacks -------------------------------------------------------------------------------

EVENTS = ("delivered", "opened", "clicked", "bounced")
MAX_EVENTS = 1_000
BOUNCE_TYPES = ("hard", "soft")


@dataclass(frozen=True)
class ProviderEvent:
    message_uuid: uuid.UUID
    event: str
    at: dt.datetime
    hard: bool = False


def provider_events_clean(data: Any) -> list[ProviderEvent]:
    """``{"message_id", "event", "at"?, "bounce"?}`` or ``{"events": [...]}``; raises ApplicationError."""
    if isinstance(data, dict) and "events" in data:
        if set(data) != {"events"}:
            raise v.invalid(sorted(set(data) - {"events"})[0], "unknown field")
        raw_events = data["events"]
        if not isinstance(raw_events, list) or not raw_events or len(raw_events) > MAX_EVENTS:
            raise v.invalid("events", f"must be a list of 1 to {MAX_EVENTS} events")
    else:
        raw_events = [data]
    events = []
    for index, raw in enumerate(raw_events):
        prefix = f"events[{index}]." if len(raw_events) > 1 or "events" in (data or {}) else ""
        if not isinstance(raw, dict):
            raise v.invalid(prefix.rstrip(".") or "body", "must be an object")
        unknown = sorted(set(raw) - {"message_id", "event", "at", "bounce"})
        if unknown:
            raise v.invalid(f"{prefix}{unknown[0]}", "unknown field")
        try:
            message_uuid = uuid.UUID(str(raw.get("message_id")))
        except ValueError:
            raise v.invalid(f"{prefix}message_id", "must be the message's UUID") from None
        event = v.clean_choice(raw.get("event"), f"{prefix}event", list(EVENTS))
        at = v.clean_datetime(raw["at"], f"{prefix}at") if raw.get("at") else timezone.now()
        bounce = raw.get("bounce") or "hard"
        v.clean_choice(bounce, f"{prefix}bounce", list(BOUNCE_TYPES))
        events.append(ProviderEvent(message_uuid=message_uuid, event=event, at=at, hard=bounce == "hard"))
    return events


# Statuses only move forward: sent < delivered < opened < clicked. An event arriving late (a
# "delivered" after an "opened") sets its timestamp and leaves the status alone.
_ADVANCE = {
    "delivered": ("delivered_at", ("sent",)),
    "opened": ("opened_at", ("sent", "delivered")),
    "clicked": ("clicked_at", ("sent", "delivered", "opened")),
}


@dataclass(frozen=True)
class EventsResult:
    processed: int
    unknown: int


@transaction.atomic
def provider_events_record(*, events: list[ProviderEvent]) -> EventsResult:
    """Apply delivery, open, click and bounce events. A hard bounce fails the message, ends its
    attribution window and revokes the customer's email consent (source ``provider``)."""
    processed = unknown = 0
    for event in events:
        with connection.cursor() as cursor:
            if event.event in _ADVANCE:
                column, before = _ADVANCE[event.event]
                cursor.execute(
                    f"UPDATE campaigns_message SET {column} = coalesce({column}, %s),"
                    " status = CASE WHEN status = ANY(%s) THEN %s ELSE status END"
                    " WHERE uuid = %s RETURNING id",
                    [event.at, list(before), event.event, event.message_uuid],
                )
            elif event.hard:
                cursor.execute(
                    "UPDATE campaigns_message SET bounced_at = coalesce(bounced_at, %s),"
                    " status = CASE WHEN status = ANY(%s) THEN 'failed' ELSE status END,"
                    " error = 'hard bounce', touched_at = NULL"
                    " WHERE uuid = %s RETURNING id",
                    [event.at, [*map(str, SENT_STATUSES), str(MessageStatus.SENDING)], event.message_uuid],
                )
            else:
                cursor.execute(
                    "UPDATE campaigns_message SET bounced_at = coalesce(bounced_at, %s), error = 'soft bounce'"
                    " WHERE uuid = %s RETURNING id",
                    [event.at, event.message_uuid],
                )
            found = cursor.fetchone()
        if found is None:
            unknown += 1
            continue
        processed += 1
        if event.event == "bounced" and event.hard:
            message = Message.objects.select_related("customer").get(pk=found[0])
            if message.channel == Channel.EMAIL:
                consent_set(
                    customer=message.customer, channel=Channel.EMAIL, granted=False, source=ConsentSource.PROVIDER
                )
    return EventsResult(processed=processed, unknown=unknown)
