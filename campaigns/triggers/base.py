"""What every trigger module provides: its parameters (validated) and its eligibility SQL.

A trigger's SQL is a part of the one statement ``campaign_evaluate`` runs per campaign: a FROM
clause that binds the alias ``c`` to ``customers_customer``, a WHERE clause with the trigger's
eligibility at ``now``, and the columns of a message: ``dedupe_key``, ``cart_id``,
``purchase_id`` and ``data`` (jsonb facts kept on the message). Consent, erasure, the address and
the audience are added around it by the evaluation, the same for every trigger.
"""

import datetime as dt
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from campaigns.sql import Sql
from retention_crm.errors import ApplicationError


@dataclass(frozen=True)
class Param:
    """One numeric trigger parameter. ``default=None`` makes it optional (unset: no limit)."""

    name: str
    label: str
    help: str
    default: int | float | None
    minimum: float
    maximum: float
    integer: bool = True

    def clean(self, raw: Any) -> int | float:
        field = f"params.{self.name}"
        if isinstance(raw, bool) or not isinstance(raw, int | float | str):
            raise invalid(field, "must be a number")
        try:
            number = float(raw) if isinstance(raw, str) else raw
        except ValueError:
            raise invalid(field, "must be a number") from None
        if isinstance(number, float) and not math.isfinite(number):
            raise invalid(field, "must be a finite number")
        if self.integer:
            if number != int(number):
                raise invalid(field, "must be a whole number")
            number = int(number)
        if not self.minimum <= number <= self.maximum:
            raise invalid(field, f"must be between {_plain(self.minimum)} and {_plain(self.maximum)}")
        return number


def _plain(number: float) -> str:
    return str(int(number)) if number == int(number) else str(number)


def invalid(field: str, message: str) -> ApplicationError:
    return ApplicationError(f"{field}: {message}", code="invalid", fields={field: [message]})


@dataclass(frozen=True)
class EvaluationContext:
    """What a trigger's SQL may read besides its parameters."""

    now: dt.datetime
    store_timezone: str
    # A SQL expression for the customer's time zone, safe to use with AT TIME ZONE.
    customer_tz: Sql


NULL_ID = Sql("NULL::bigint")
NO_DATA = Sql("'{}'::jsonb")


@dataclass(frozen=True)
class Candidates:
    from_: Sql  # binds ``c`` to customers_customer
    where: Sql
    dedupe_key: Sql
    cart_id: Sql = NULL_ID
    purchase_id: Sql = NULL_ID
    data: Sql = NO_DATA


class TriggerDefinition(ABC):
    """Subclasses set the class attributes and implement ``candidates``."""

    name: str
    label: str
    description: str
    params: tuple[Param, ...] = ()

    def clean_params(self, raw: Any) -> dict[str, Any]:
        """The parameters as given, validated; {} means every default. Unknown names are refused."""
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            raise invalid("params", "must be an object")
        known = {param.name: param for param in self.params}
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise ApplicationError(
                f"params: unknown parameter {unknown[0]!r} for trigger {self.name}; use {', '.join(known) or 'none'}",
                code="invalid",
                fields={f"params.{name}": [f"unknown parameter for {self.name}"] for name in unknown},
            )
        cleaned = {name: known[name].clean(value) for name, value in raw.items() if value is not None}
        self.check(self.resolve(cleaned))
        return cleaned

    def resolve(self, params: dict[str, Any]) -> dict[str, Any]:
        """Every parameter with its value: the given one or the default."""
        return {param.name: params.get(param.name, param.default) for param in self.params}

    def check(self, resolved: dict[str, Any]) -> None:  # noqa: B027 - an optional hook
        """Rules between parameters; raise ``invalid`` naming the field."""

    @abstractmethod
    def candidates(self, *, params: dict[str, Any], ctx: EvaluationContext) -> Candidates:
        """Each subclass implements this."""
