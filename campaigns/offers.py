"""Offers a campaign can carry: bonus points, or a discount with a code unique to each message.

- ``{"bonus_points": 100}``: credited once per sent message through the loyalty ledger, whose
  idempotency key (``campaign:message:<uuid>``) makes a re-send credit nothing more;
- ``{"discount_percent": 10, "code_prefix": "BACK"}``: the message gets its own code,
  ``BACK-<message id in base 36><6 signed characters>``: unique by construction (the id part is
  unique and the suffix has a fixed length), not guessable from another customer's code, and the
  same on every attempt to send the same message.
"""

import re
import uuid
from typing import Any

from django.utils.crypto import salted_hmac

from retention_crm.errors import ApplicationError

OFFER_KEYS = ("bonus_points", "discount_percent", "code_prefix")
MAX_BONUS_POINTS = 1_000_000
DEFAULT_CODE_PREFIX = "CRM"
CODE_PREFIX_PATTERN = re.compile(r"^[A-Z0-9]{1,12}$")
CODE_SUFFIX_LENGTH = 6
_BASE36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _invalid(field: str, message: str) -> ApplicationError:
    return ApplicationError(f"offer.{field}: {message}", code="invalid", fields={f"offer.{field}": [message]})


def _whole(raw: Any, field: str, minimum: int, maximum: int) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise _invalid(field, "must be a whole number")
    try:
        number = float(raw) if isinstance(raw, str) else raw
    except ValueError:
        raise _invalid(field, "must be a whole number") from None
    if number != number or number != int(number):  # NaN, or a fraction
        raise _invalid(field, "must be a whole number")
    if not minimum <= number <= maximum:
        raise _invalid(field, f"must be between {minimum} and {maximum}")
    return int(number)


def offer_clean(raw: Any) -> dict[str, Any]:
    """The offer, validated: {} or bonus points or a discount percent (with an optional code prefix)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ApplicationError("offer: must be an object", code="invalid", fields={"offer": ["must be an object"]})
    unknown = sorted(set(raw) - set(OFFER_KEYS))
    if unknown:
        raise _invalid(unknown[0], f"unknown offer field; use {', '.join(OFFER_KEYS)}")
    offer: dict[str, Any] = {}
    if raw.get("bonus_points") not in (None, 0, ""):
        offer["bonus_points"] = _whole(raw["bonus_points"], "bonus_points", 1, MAX_BONUS_POINTS)
    if raw.get("discount_percent") not in (None, 0, ""):
        offer["discount_percent"] = _whole(raw["discount_percent"], "discount_percent", 1, 100)
        prefix = raw.get("code_prefix") or DEFAULT_CODE_PREFIX
        if not isinstance(prefix, str) or not CODE_PREFIX_PATTERN.match(prefix):
            raise _invalid("code_prefix", "must be 1-12 capital letters or digits")
        offer["code_prefix"] = prefix
    elif raw.get("code_prefix"):
        raise _invalid("code_prefix", "only with discount_percent")
    if "bonus_points" in offer and "discount_percent" in offer:
        raise _invalid("discount_percent", "an offer is bonus points or a discount, not both")
    return offer


def _base36(number: int) -> str:
    digits = ""
    while True:
        number, remainder = divmod(number, 36)
        digits = _BASE36[remainder] + digits
        if not number:
            return digits


def discount_code(*, prefix: str, message_id: int, message_uuid: uuid.UUID | str) -> str:
    suffix = salted_hmac("campaigns.discount_code", str(message_uuid)).hexdigest()[:CODE_SUFFIX_LENGTH].upper()
    return f"{prefix}-{_base36(message_id)}{suffix}"


def bonus_key(message_uuid: uuid.UUID | str) -> str:
    """The loyalty ledger's idempotency key for a message's bonus points: once per message, ever."""
    return f"campaign:message:{message_uuid}"


def offer_context(offer: dict[str, Any], code: str | None) -> dict[str, Any]:
    """What templates see as ``offer``."""
    if "bonus_points" in offer:
        return {"bonus_points": offer["bonus_points"]}
    if "discount_percent" in offer:
        return {"discount_percent": offer["discount_percent"], "discount_code": code or ""}
    return {}
