"""Signed unsubscribe tokens (django.core.signing): the message's UUID and an HMAC of it.

Nothing is stored: the signature proves the link came from us, the UUID finds the message (and so
the customer and channel). A token with a bad signature, or a good one naming no message, is refused.
Links do not expire: an unsubscribe link must keep working in an old email.
"""

import uuid

from django.conf import settings
from django.core import signing
from django.urls import reverse

SALT = "campaigns.unsubscribe"


class InvalidToken(Exception):
    pass


def unsubscribe_token(message_uuid: uuid.UUID | str) -> str:
    return signing.Signer(salt=SALT).sign(uuid.UUID(str(message_uuid)).hex)


def unsubscribe_token_read(token: str) -> uuid.UUID:
    """The message UUID a token names; raises InvalidToken if it was tampered with or is malformed."""
    try:
        return uuid.UUID(hex=signing.Signer(salt=SALT).unsign(token))
    except (signing.BadSignature, ValueError, TypeError):
        raise InvalidToken("The unsubscribe link is not valid.") from None


PLACEHOLDER = "TOKEN"


def unsubscribe_url_prefix() -> str:
    """The link up to the token: reversed once per batch, not once per message (reverse is slow)."""
    return settings.SITE_URL + reverse("campaigns-unsubscribe", kwargs={"token": PLACEHOLDER}).removesuffix(PLACEHOLDER)


def unsubscribe_url(message_uuid: uuid.UUID | str, prefix: str | None = None) -> str:
    return (prefix or unsubscribe_url_prefix()) + unsubscribe_token(message_uuid)
