"""Input rules shared by every way data comes in (API, admin, CSV import).

Each function returns the cleaned value or raises ApplicationError naming the field, so the
API can answer a 400 with ``fields`` and the import can report the row and column.
"""

import datetime as dt
import math
import re
import zoneinfo
from collections.abc import Iterable, Sequence
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils import timezone

from retention_crm.errors import ApplicationError

# The limits the models' columns are declared with (customers.models imports them from here).
EXTERNAL_ID_MAX_LENGTH = 64
MONEY_DIGITS = 12
MONEY_PLACES = 2
# E.164: a plus sign, a non-zero country digit, at most 15 digits in all.
E164_PATTERN = r"^\+[1-9][0-9]{6,14}$"

MAX_TAGS = 100
MAX_TAG_LENGTH = 64
MAX_QUANTITY = 1_000_000
EARLIEST_DATE = dt.date(1900, 1, 1)
LATEST_YEAR = 2200
MAX_UTC_OFFSET = dt.timedelta(hours=14)  # the widest offset in use on Earth (UTC+14, Kiribati)
# How far ahead of our clock the time of something that happened may be: clocks drift and time
# zones get mixed up, but a purchase, an answer or a sign-up in 2199 is a mistake (SPEC §8).
MAX_FUTURE = dt.timedelta(hours=24)
MAX_ATTRIBUTES_DEPTH = 16
_PHONE_SEPARATORS = re.compile(r"[\s\-().]")
_MONEY_QUANTUM = Decimal(1).scaleb(-MONEY_PLACES)
_MONEY_LIMIT = Decimal(10) ** (MONEY_DIGITS - MONEY_PLACES)


_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f]")
# A lone surrogate: JSON's "\ud800" escape decodes to one, and it cannot be encoded as UTF-8.
_SURROGATES = re.compile("[\ud800-\udfff]")
_ASCII_INTEGER = re.compile(r"[+-]?[0-9]+")
_ASCII_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def text_problem(value: str) -> str | None:
    """Why PostgreSQL cannot store this text (a NUL character, a lone surrogate), or None."""
    if "\x00" in value:
        return "must not contain NUL characters"
    if not value.isascii() and _SURROGATES.search(value):
        return "must be valid Unicode text (no lone surrogates)"
    return None


def invalid(field: str, message: str) -> ApplicationError:
    return ApplicationError(f"{field}: {message}", code="invalid", fields={field: [message]})


def printable(value: Any) -> Any:
    """A value fit for an answer: lone surrogates (echoed from the input) become U+FFFD."""
    if isinstance(value, str):
        return _SURROGATES.sub("\ufffd", value)
    if isinstance(value, dict):
        return {printable(key): printable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [printable(item) for item in value]
    return value


def refuse_unknown_fields(data: dict[str, Any], allowed: Iterable[str]) -> None:
    """Unknown input fields are refused, all of them named, rather than silently dropped."""
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ApplicationError(
            f"Unknown fields: {', '.join(unknown)}.",
            code="unknown_fields",
            fields={name: ["unknown field"] for name in unknown},
        )


def clean_external_id(value: Any, field: str = "external_id") -> str:
    if not isinstance(value, str):
        raise invalid(field, "must be a string")
    value = value.strip()
    if not 1 <= len(value) <= EXTERNAL_ID_MAX_LENGTH:
        raise invalid(field, f"must be 1 to {EXTERNAL_ID_MAX_LENGTH} characters")
    if _CONTROL_CHARACTERS.search(value):
        raise invalid(field, "must not contain control characters")
    if problem := text_problem(value):
        raise invalid(field, problem)
    return value


def clean_text(value: Any, field: str, max_length: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise invalid(field, "must be a string")
    value = value.strip()
    if len(value) > max_length:
        raise invalid(field, f"must be at most {max_length} characters")
    if problem := text_problem(value):
        raise invalid(field, problem)
    return value


def clean_email(value: Any, field: str = "email") -> str:
    value = clean_text(value, field, 254)
    if value:
        try:
            validate_email(value)
        except ValidationError:
            raise invalid(field, "is not a valid email address") from None
    return value


def clean_phone(value: Any, field: str = "phone") -> str:
    value = _PHONE_SEPARATORS.sub("", clean_text(value, field, 32))
    if value and not re.fullmatch(E164_PATTERN, value):
        raise invalid(field, "must be in E.164 form, e.g. +4915112345678")
    return value


@cache
def _timezone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def clean_timezone(value: Any, field: str = "timezone") -> str:
    if value in (None, ""):
        return settings.TIME_ZONE
    if not isinstance(value, str) or value not in _timezone_names():
        raise invalid(field, "must be an IANA time zone name, e.g. Europe/Berlin")
    return value


def clean_tags(value: Any, field: str = "tags") -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid(field, "must be a list of strings")
    tags: list[str] = []
    for tag in value:
        tag = clean_text(tag, field, MAX_TAG_LENGTH)
        if tag and tag not in tags:
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        raise invalid(field, f"at most {MAX_TAGS} tags")
    return tags


def _json_problem(value: Any, max_depth: int) -> str | None:
    """Why a JSON value cannot be stored: too deep, or a key or string PostgreSQL refuses.

    Walks with its own stack, not by recursion: a value nested a thousand deep is refused, not a
    RecursionError.
    """
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if problem := text_problem(item):
                return problem
        elif isinstance(item, float) and not math.isfinite(item):  # JSON's 1e400 parses as inf
            return "numbers must be finite"
        elif isinstance(item, dict | list):
            if depth > max_depth:
                return f"must not nest deeper than {max_depth} levels"
            if isinstance(item, dict):
                for key in item:
                    if not isinstance(key, str):
                        return "keys must be strings"
                    if problem := text_problem(key):
                        return f"keys {problem}"
                items: Iterable[Any] = item.values()
            else:
                items = item
            stack.extend((child, depth + 1) for child in items if isinstance(child, str | float | dict | list))
    return None


def clean_attributes(value: Any, field: str = "attributes") -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid(field, "must be an object")
    if problem := _json_problem(value, MAX_ATTRIBUTES_DEPTH):  # e.g. jsonb cannot store U+0000
        raise invalid(field, problem)
    return value


def clean_date(value: Any, field: str) -> dt.date | None:
    if value in (None, ""):
        return None
    if isinstance(value, dt.datetime):
        value = value.date()
    elif isinstance(value, str):
        try:
            value = dt.date.fromisoformat(value.strip())
        except ValueError:
            raise invalid(field, "must be a date as YYYY-MM-DD") from None
    if not isinstance(value, dt.date):
        raise invalid(field, "must be a date as YYYY-MM-DD")
    if value < EARLIEST_DATE or value.year > LATEST_YEAR:
        raise invalid(field, f"must be between {EARLIEST_DATE.isoformat()} and {LATEST_YEAR}-12-31")
    return value


def clean_birth_date(value: Any, field: str = "birth_date") -> dt.date | None:
    value = clean_date(value, field)
    if value is not None and value > timezone.localdate():
        raise invalid(field, "must not be in the future")
    return value


def clean_datetime(value: Any, field: str) -> dt.datetime:
    """An aware datetime; a naive one is read in the store's TIME_ZONE (SPEC §2)."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = dt.datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
        except ValueError:
            raise invalid(field, "must be an ISO 8601 date-time") from None
    elif isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time())
    if not isinstance(value, dt.datetime):
        raise invalid(field, "must be an ISO 8601 date-time")
    if value.year < EARLIEST_DATE.year or value.year > LATEST_YEAR:
        raise invalid(field, f"must be between {EARLIEST_DATE.year} and {LATEST_YEAR}")
    if timezone.is_naive(value):
        try:
            value = timezone.make_aware(value, zoneinfo.ZoneInfo(settings.TIME_ZONE))
        except (ValueError, OverflowError):
            raise invalid(field, "is not a valid time in the store's time zone") from None
    elif (offset := value.utcoffset()) is not None and abs(offset) > MAX_UTC_OFFSET:  # aware: never None
        raise invalid(field, "has a UTC offset beyond ±14:00")
    return value


def clean_happened_at(value: Any, field: str) -> dt.datetime:
    """The time something happened (a purchase, an answer, a sign-up): ``clean_datetime``, and at
    most ``MAX_FUTURE`` ahead of now."""
    value = clean_datetime(value, field)
    if value > timezone.now() + MAX_FUTURE:
        raise invalid(field, "must not be more than 24 hours in the future")
    return value


def clean_money(value: Any, field: str) -> Decimal:
    """A non-negative amount with at most two decimal places."""
    if isinstance(value, bool) or value is None:
        raise invalid(field, "must be a decimal amount")
    if isinstance(value, float):
        value = repr(value)  # the shortest text that round-trips, not the binary expansion
    text = str(value).strip()
    if text.lower().lstrip("+-") in ("nan", "snan", "inf", "infinity"):
        raise invalid(field, "must be a finite amount")
    if not _ASCII_DECIMAL.fullmatch(text):  # Decimal() also reads "1_0" and digits of other scripts
        raise invalid(field, "must be a decimal amount")
    try:
        amount = Decimal(text)
    except (InvalidOperation, ValueError):
        raise invalid(field, "must be a decimal amount") from None
    if amount.is_signed():  # also "-0.00": a sign the shop sent means something went wrong
        raise invalid(field, "must not be negative")
    if amount >= _MONEY_LIMIT:
        raise invalid(field, f"must be less than {_MONEY_LIMIT}")
    if amount != amount.quantize(_MONEY_QUANTUM):
        raise invalid(field, f"must have at most {MONEY_PLACES} decimal places")
    return amount.quantize(_MONEY_QUANTUM)


def clean_count(value: Any, field: str, *, minimum: int = 0, maximum: int = 2**31 - 1) -> int:
    if isinstance(value, bool):
        raise invalid(field, "must be a whole number")
    if isinstance(value, str):
        value = value.strip()
        if not _ASCII_INTEGER.fullmatch(value):  # int() also reads "1_0" and digits of other scripts
            raise invalid(field, "must be a whole number")
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        raise invalid(field, "must be a whole number") from None
    if isinstance(value, float) and value != number:
        raise invalid(field, "must be a whole number")
    if not minimum <= number <= maximum:
        raise invalid(field, f"must be between {minimum} and {maximum}")
    return number


def clean_choice(value: Any, field: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise invalid(field, f"must be one of {', '.join(choices)}")
    return value


def clean_currency(value: Any, field: str = "currency") -> str:
    """The store's currency; any other is refused (SPEC §2)."""
    if value in (None, ""):
        return settings.STORE_CURRENCY
    if not isinstance(value, str) or value.strip().upper() != settings.STORE_CURRENCY:
        raise ApplicationError(
            f"currency: this store takes {settings.STORE_CURRENCY} only",
            code="currency_mismatch",
            fields={field: [f"must be {settings.STORE_CURRENCY}"]},
        )
    return settings.STORE_CURRENCY
