"""Signed Telegram deep links: ``https://t.me/<bot>?start=<token>`` (SPEC §4.2).

Telegram passes the ``start`` parameter to the bot as ``/start <token>`` and allows at most 64
characters of ``A-Za-z0-9_-`` there, which rules out ``django.core.signing``'s own format (it uses
``:``). The token is ``<customer id>-<issued at>-<signature>``: both numbers in base 62, then the
first 22 characters (132 bits) of the URL-safe base64 HMAC-SHA256 that ``signing.Signer`` computes
with this module's salt, about 40 characters in all. Nothing is stored; a link expires after
``LINK_MAX_AGE``, so one leaked from an old message cannot link a stranger's chat for ever.
"""

import datetime as dt
import re
import time

from django.conf import settings
from django.core import signing
from django.utils.crypto import constant_time_compare

SALT = "campaigns.telegram-link"
LINK_MAX_AGE = dt.timedelta(days=7)
SIGNATURE_LENGTH = 22
MAX_TOKEN_LENGTH = 64
TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class InvalidLink(Exception):
    pass


def _signature(payload: str) -> str:
    return signing.Signer(salt=SALT, algorithm="sha256").signature(payload)[:SIGNATURE_LENGTH]


def telegram_start_token(customer_id: int, *, issued_at: float | None = None) -> str:
    issued = int(time.time() if issued_at is None else issued_at)
    payload = f"{signing.b62_encode(customer_id)}-{signing.b62_encode(issued)}"
    return f"{payload}-{_signature(payload)}"


def telegram_start_token_read(token: str, *, now: float | None = None) -> int:
    """The customer id a token names; raises InvalidLink if it is malformed, tampered with or expired."""
    if not isinstance(token, str) or not TOKEN_PATTERN.match(token) or len(token) <= SIGNATURE_LENGTH + 1:
        raise InvalidLink("malformed")
    payload, separator, signature = (
        token[: -SIGNATURE_LENGTH - 1],
        token[-SIGNATURE_LENGTH - 1],
        token[-SIGNATURE_LENGTH:],
    )
    if separator != "-" or not constant_time_compare(signature, _signature(payload)):
        raise InvalidLink("bad signature")
    customer, _, issued = payload.partition("-")
    try:
        customer_id, issued_at = signing.b62_decode(customer), signing.b62_decode(issued)
    except (ValueError, IndexError):
        raise InvalidLink("malformed") from None
    age = (time.time() if now is None else now) - issued_at
    if customer_id <= 0 or not -60 <= age <= LINK_MAX_AGE.total_seconds():
        raise InvalidLink("expired")
    return customer_id


def telegram_deep_link(customer_id: int) -> str:
    bot = settings.TELEGRAM_BOT_NAME.removeprefix("@")
    return f"https://t.me/{bot}?start={telegram_start_token(customer_id)}"
