"""Campaign templates: the Django template language in a sandbox.

The sandbox is two things. The engine knows only a safe subset of the built-in tags (no ``load``,
``include``, ``extends``, ``url``, ``debug``: nothing that reads files, other templates or the
process) and no loaders. And the context holds plain data only — dicts, lists, strings, numbers,
dates — never a model instance, so a template cannot reach a method that touches the database.

Templates are checked when a campaign is saved: compiled, then rendered against a sample context,
so a syntax error or a bad filter argument is a 400 / a form error, not a failed send.
"""

import datetime as dt
import re
import zoneinfo
from decimal import Decimal
from typing import Any

from django.template import Context, Engine, Template, TemplateSyntaxError
from django.utils import timezone

from customers.models import Channel
from retention_crm.errors import ApplicationError

MAX_TEMPLATE_LENGTH = 20_000
MAX_SUBJECT_OUTPUT = 998  # RFC 5322 line limit
CONTEXT_NAMES = ("customer", "cart", "points", "offer", "purchase", "campaign", "unsubscribe_url")


class SandboxEngine(Engine):
    # Replaces Django's default builtins (which include load/include/extends) with the sandbox's.
    default_builtins = ["campaigns.template_sandbox"]


ENGINE = SandboxEngine(loaders=[], autoescape=False, string_if_invalid="", debug=False)


def uses(source: str, name: str) -> bool:
    """Whether a template may read ``name`` (conservative: any mention counts).

    Lets the sender skip the queries for carts or points a campaign's templates never show.
    """
    return re.search(rf"\b{re.escape(name)}\b", source) is not None


def storable_text(value: str, field: str) -> str:
    """Text PostgreSQL can store: no NUL characters and no lone surrogates (which JSON can carry)."""
    problem = None
    if "\x00" in value:
        problem = "must not contain NUL characters"
    else:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            problem = "must be valid Unicode text"
    if problem:
        raise ApplicationError(f"{field}: {problem}", code="invalid", fields={field: [problem]})
    return value


def template_compile(source: str, field: str) -> Template:
    if not isinstance(source, str):
        raise ApplicationError(f"{field}: must be text", code="invalid", fields={field: ["must be text"]})
    storable_text(source, field)
    if len(source) > MAX_TEMPLATE_LENGTH:
        message = f"at most {MAX_TEMPLATE_LENGTH} characters"
        raise ApplicationError(f"{field}: {message}", code="invalid", fields={field: [message]})
    try:
        return ENGINE.from_string(source)
    except TemplateSyntaxError as error:
        message = f"template error: {error}"
        raise ApplicationError(f"{field}: {message}", code="invalid_template", fields={field: [message]}) from None


def _zone(tz: str) -> dt.tzinfo:
    try:
        return zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return timezone.get_default_timezone()


def render(template: Template, context: dict[str, Any], tz: str) -> str:
    """Render in the customer's time zone, so ``{{ customer.last_purchase_at|date }}`` is their local time."""
    with timezone.override(_zone(tz)):
        return template.render(Context(context, autoescape=False))


def render_all(templates: tuple[Template, ...], context: dict[str, Any], tz: str) -> tuple[str, ...]:
    """Several templates against one context, in one time zone switch (the sender's hot path)."""
    with timezone.override(_zone(tz)):
        return tuple(template.render(Context(context, autoescape=False)) for template in templates)


def templates_validate(*, subject: str, body: str, channel: str) -> None:
    """Compile and trial-render both templates; raises ApplicationError naming the field."""
    if channel == Channel.EMAIL and not (subject or "").strip():
        raise ApplicationError(
            "subject: an email needs a subject", code="invalid", fields={"subject": ["an email needs a subject"]}
        )
    if not (body or "").strip():
        raise ApplicationError("body: is required", code="invalid", fields={"body": ["is required"]})
    for field, source in (("subject", subject or ""), ("body", body)):
        template = template_compile(source, field)
        try:
            render(template, sample_context(), "UTC")
        except Exception as error:  # any error a filter raises at render time
            message = f"template error: {error}"
            raise ApplicationError(f"{field}: {message}", code="invalid_template", fields={field: [message]}) from None


# --- Context -------------------------------------------------------------------------------------


def customer_context(row: dict[str, Any]) -> dict[str, Any]:
    """The ``customer`` variable from a customer's columns (plain values only)."""
    return {
        "external_id": row["external_id"],
        "first_name": row["first_name"],
        "last_name": row["last_name"],
        "name": f"{row['first_name']} {row['last_name']}".strip(),
        "email": row["email"],
        "phone": row["phone"],
        "tier": row["tier"],
        "points_balance": row["points_balance"],
        "orders_count": row["orders_count"],
        "total_spent": row["total_spent"],
        "first_purchase_at": row["first_purchase_at"],
        "last_purchase_at": row["last_purchase_at"],
        "birth_date": row["birth_date"],
        "created_at": row["created_at"],
        "tags": list(row["tags"] or []),
        "attributes": dict(row["attributes"] or {}),
        "timezone": row["timezone"],
    }


def cart_context(external_id: str, updated_at: dt.datetime, items: list[dict[str, Any]]) -> dict[str, Any]:
    lines = [
        {
            "sku": item["sku"],
            "name": item["name"],
            "category": item["category"],
            "quantity": item["quantity"],
            "unit_price": item["unit_price"],
            "total": item["unit_price"] * item["quantity"],
        }
        for item in items
    ]
    return {
        "external_id": external_id,
        "updated_at": updated_at,
        "items": lines,
        "total": sum((line["total"] for line in lines), Decimal("0.00")),
    }


def points_context(balance: int, expiring: int, expiring_at: dt.datetime | None, days: int) -> dict[str, Any]:
    return {"balance": balance, "expiring": expiring, "expiring_at": expiring_at, "expiring_days": days}


def sample_context() -> dict[str, Any]:
    """A full context with made-up values: templates are trial-rendered against it when saved."""
    now = timezone.now()
    customer = customer_context(
        {
            "external_id": "sample-customer",
            "first_name": "Ada",
            "last_name": "Lovelace",
            "email": "ada@example.com",
            "phone": "+442079460958",
            "tier": "silver",
            "points_balance": 1200,
            "orders_count": 4,
            "total_spent": Decimal("212.40"),
            "first_purchase_at": now - dt.timedelta(days=300),
            "last_purchase_at": now - dt.timedelta(days=95),
            "birth_date": dt.date(1990, 12, 10),
            "created_at": now - dt.timedelta(days=400),
            "tags": ["newsletter"],
            "attributes": {"source": "instagram"},
            "timezone": "UTC",
        }
    )
    return {
        "customer": customer,
        "cart": cart_context(
            "sample-cart",
            now - dt.timedelta(hours=2),
            [{"sku": "MUG", "name": "Mug", "category": "kitchen", "quantity": 2, "unit_price": Decimal("12.00")}],
        ),
        "points": points_context(1200, 300, now + dt.timedelta(days=10), 14),
        "offer": {"bonus_points": 100, "discount_percent": 10, "discount_code": "CRM-SAMPLE1"},
        "purchase": {"external_id": "sample-order", "placed_at": now - dt.timedelta(days=7), "total": Decimal("59.90")},
        "campaign": {"name": "Sample campaign"},
        "unsubscribe_url": "https://shop.example.com/unsubscribe/sample",
    }
