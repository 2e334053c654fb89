"""Money as staff read it, everywhere in the admin: the store's currency, two decimals, grouped
thousands ("$1,852.27", "12.00 CHF")."""

from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.template.defaultfilters import floatformat

# Currencies written with a symbol before the amount; any other code follows it ("12.00 CHF").
CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹", "CAD": "CA$", "AUD": "A$"}


@dataclass(frozen=True)
class Currency:
    """How the store's currency is written around an amount; templates use it with floatformat."""

    code: str
    prefix: str
    suffix: str


def store_currency() -> Currency:
    code = settings.STORE_CURRENCY
    symbol = CURRENCY_SYMBOLS.get(code)
    if symbol:
        return Currency(code=code, prefix=symbol, suffix="")
    return Currency(code=code, prefix="", suffix=f" {code}")


def money(amount: Decimal | int | float | str | None) -> str:
    """An amount in the store's currency, two decimals and grouped thousands: "$1,852.27"."""
    if amount is None:
        return "—"
    currency = store_currency()
    return f"{currency.prefix}{floatformat(Decimal(str(amount)), '2g')}{currency.suffix}"
