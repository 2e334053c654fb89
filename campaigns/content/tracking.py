"""Clicks and opens recorded from our own links (SPEC §4.2), by the same rule as a provider's
callback (``campaigns.services.events``): the first time is kept, and the status only moves forward
(sent < delivered < opened < clicked)."""

import datetime as dt
import uuid

from django.utils import timezone

from campaigns.content.links import InvalidLink, click_read, open_read
from campaigns.services.events import ProviderEvent, provider_events_record
from retention_crm.errors import ApplicationError


def _invalid() -> ApplicationError:
    return ApplicationError("This link is not valid.", code="invalid_token")


def message_engagement_record(*, message_uuid: uuid.UUID, event: str, at: dt.datetime | None = None) -> bool:
    """Record a click or an open of a message; False when no message has that UUID."""
    result = provider_events_record(
        events=[ProviderEvent(message_uuid=message_uuid, event=event, at=at or timezone.now())]
    )
    return result.processed == 1


def message_click_follow(*, token: str, record: bool = True) -> str:
    """Record the click a signed redirect names and return the address it leads to.

    Raises ApplicationError (400) for a tampered or malformed token: the address comes only from
    our own signature, so the redirect can never be pointed anywhere else.
    """
    try:
        message_uuid, url = click_read(token)
    except InvalidLink:
        raise _invalid() from None
    if record:  # a HEAD (link checkers) follows without counting as a click
        message_engagement_record(message_uuid=message_uuid, event="clicked")
    return url


def message_open_record(*, token: str) -> None:
    try:
        message_uuid = open_read(token)
    except InvalidLink:
        raise _invalid() from None
    message_engagement_record(message_uuid=message_uuid, event="opened")
