"""Telegram: the deep link a customer follows to the shop's bot, and what the bot's webhook receives
(SPEC §4.2).

- ``/start <token>`` (sent by Telegram when the customer opens the deep link): the chat is stored as
  the customer's telegram address and the telegram consent granted, source ``telegram``. A chat
  linked to another customer before moves to this one (that customer's telegram consent is revoked).
- ``/stop``, or the customer blocking the bot (a ``my_chat_member`` update to ``kicked``): the
  telegram consent of the chat's customer is revoked, source ``telegram``.
- Anything else is ignored: the webhook answers 2xx, so Telegram does not deliver it again.

Only private chats count: a bot added to a group never links the group to a customer.
"""

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction

from campaigns.telegram_links import InvalidLink, telegram_deep_link, telegram_start_token_read
from customers.models import Channel, ConsentSource, Customer
from customers.services import consent_set, customer_get
from retention_crm.errors import ApplicationError, Conflict

LINKED_TEXT = "You will now get the shop's messages here. Send /stop to turn them off."
STOPPED_TEXT = "You will get no more messages here. Open the shop's link again to turn them back on."
INVALID_LINK_TEXT = "This link is not valid any more. Please ask the shop for a new one."
NO_LINK_TEXT = "Please open the link from the shop to receive its messages here."


@dataclass(frozen=True)
class TelegramReply:
    chat_id: int
    text: str


def telegram_link_url(*, external_id: str) -> str:
    """The signed deep link for a customer (valid for ``telegram_links.LINK_MAX_AGE``)."""
    if not settings.TELEGRAM_BOT_NAME:
        raise ApplicationError(
            "Telegram is not configured: set TELEGRAM_BOT_NAME.", code="telegram_not_configured", status=409
        )
    customer = customer_get(external_id=external_id)
    if customer.is_erased:
        raise Conflict("This customer was erased; they cannot link a chat.", code="erased")
    return telegram_deep_link(customer.pk)


def telegram_update_handle(*, update: dict[str, Any]) -> TelegramReply | None:
    """Apply one webhook update; returns the bot's answer to send back, or None."""
    member = update.get("my_chat_member")
    if isinstance(member, dict):
        chat_id = _private_chat_id(member)
        new_member = member.get("new_chat_member")
        status = new_member.get("status") if isinstance(new_member, dict) else None
        if chat_id is not None and status == "kicked":
            telegram_chat_stop(chat_id=chat_id)
        return None
    message = update.get("message")
    if not isinstance(message, dict) or not isinstance(message.get("text"), str):
        return None
    chat_id = _private_chat_id(message)
    if chat_id is None:
        return None
    command, _, argument = message["text"].strip().partition(" ")
    command = command.split("@", 1)[0].lower()  # "/start@ShopBot" in a client that adds the bot's name
    if command == "/start":
        if not argument.strip():
            return TelegramReply(chat_id, NO_LINK_TEXT)
        linked = telegram_chat_link(chat_id=chat_id, token=argument.strip())
        return TelegramReply(chat_id, LINKED_TEXT if linked else INVALID_LINK_TEXT)
    if command == "/stop":
        telegram_chat_stop(chat_id=chat_id)
        return TelegramReply(chat_id, STOPPED_TEXT)
    return None


@transaction.atomic
def telegram_chat_link(*, chat_id: int, token: str) -> bool:
    """Link the chat to the customer the token names and grant telegram consent; False for a token
    that is tampered with, expired or names no (or an erased) customer."""
    try:
        customer_id = telegram_start_token_read(token)
    except InvalidLink:
        return False
    customer = Customer.objects.select_for_update(no_key=True).filter(pk=customer_id, erased_at__isnull=True).first()
    if customer is None:
        return False
    chat = str(chat_id)
    for previous in (
        Customer.objects.select_for_update(no_key=True).filter(telegram_chat_id=chat).exclude(pk=customer.pk)
    ):
        consent_set(customer=previous, channel=Channel.TELEGRAM, granted=False, source=ConsentSource.TELEGRAM)
        Customer.objects.filter(pk=previous.pk).update(telegram_chat_id="")
    Customer.objects.filter(pk=customer.pk).update(telegram_chat_id=chat)
    try:
        consent_set(customer=customer, channel=Channel.TELEGRAM, granted=True, source=ConsentSource.TELEGRAM)
    except Conflict:  # erased meanwhile
        transaction.set_rollback(True)
        return False
    return True


@transaction.atomic
def telegram_chat_stop(*, chat_id: int) -> int:
    """Revoke the telegram consent of the chat's customer; returns how many were revoked (0 or 1)."""
    customers = list(Customer.objects.select_for_update(no_key=True).filter(telegram_chat_id=str(chat_id)))
    for customer in customers:
        consent_set(customer=customer, channel=Channel.TELEGRAM, granted=False, source=ConsentSource.TELEGRAM)
    return len(customers)


def _private_chat_id(container: dict[str, Any]) -> int | None:
    chat = container.get("chat")
    if not isinstance(chat, dict) or chat.get("type", "private") != "private":
        return None
    chat_id = chat.get("id")
    return chat_id if isinstance(chat_id, int) and not isinstance(chat_id, bool) else None
