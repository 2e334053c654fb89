"""Campaign templates: the Django template language in a sandbox, rendered under a budget.

The sandbox is three things. The engine knows only a safe subset of the built-in tags (no ``load``,
``include``, ``extends``, ``url``, ``debug``: nothing that reads files, other templates or the
process), an allow-list of filters with capped arguments (``template_sandbox``), and no loaders.
The context holds plain data only — dicts, lists, strings, numbers, dates — never a model
instance, so a template cannot reach a method that touches the database. And every render runs
under a budget (SPEC §8): loops nest at most ``MAX_LOOP_NESTING`` deep and blocks
``MAX_BLOCK_NESTING``; the output is capped (a subject at 998 characters, a body at 512 KB) and
counted while it is produced, so it is refused before it fills the memory; the clock is read at
every loop turn and every piece of output, so a render stops after about ``RENDER_SECONDS``.

Over budget raises ``BudgetExceeded``. Templates are checked when a campaign is saved: compiled,
then rendered against a sample context, so a syntax error, a bad filter argument or a template
over budget is a 400 / a form error; at send time the same error makes the message ``failed``
with the reason, and the worker moves on.
"""

import datetime as dt
import re
import time
import zoneinfo
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from django.template import Context, Engine, Node, NodeList, Template, TemplateSyntaxError
from django.template.defaulttags import FilterNode, ForNode
from django.utils import timezone

from campaigns.template_sandbox import MAX_VALUE_LENGTH, BudgetExceeded
from campaigns.triggers.points_expiring import DEFAULT_EXPIRING_DAYS
from customers.models import Channel
from retention_crm import validation as v
from retention_crm.errors import ApplicationError

MAX_TEMPLATE_LENGTH = 20_000
MAX_SUBJECT_OUTPUT = 998  # RFC 5322 line limit
MAX_BODY_OUTPUT = MAX_VALUE_LENGTH  # 512 KB
MAX_LOOP_NESTING = 3
MAX_BLOCK_NESTING = 32
RENDER_SECONDS = 1.0
CONTEXT_NAMES = (
    "customer",
    "cart",
    "points",
    "offer",
    "purchase",
    "campaign",
    "unsubscribe_url",
    "preferences_url",
    "nps_links",
)


class SandboxEngine(Engine):
    # Replaces Django's default builtins (which include load/include/extends) with the sandbox's.
    default_builtins = ["campaigns.template_sandbox"]


ENGINE = SandboxEngine(loaders=[], autoescape=False, string_if_invalid="", debug=False)


# --- The budget -----------------------------------------------------------------------------------


class Budget:
    """One template's render: the output it may still produce and the moment it must be done."""

    def __init__(self, *, limit: int, deadline: float) -> None:
        self.limit = limit
        self.deadline = deadline
        self.output = 0

    def spend(self, characters: int) -> None:
        self.output += characters
        if self.output > self.limit:
            raise BudgetExceeded(f"the output is longer than {self.limit} characters")
        if time.monotonic() > self.deadline:
            raise BudgetExceeded(f"rendering took longer than {RENDER_SECONDS:g} s")


class _LoopTurn(Node):
    """Put first in every loop body: reads the clock at each turn, also of a loop that outputs nothing."""

    child_nodelists = ()

    def render(self, context: Context) -> str:
        budget = getattr(context, "budget", None)
        if budget is not None:
            budget.spend(0)
        return ""

    render_annotated = render


def _counted(render_annotated: Any) -> Any:
    def counted(context: Context) -> str:
        output = render_annotated(context)
        budget = getattr(context, "budget", None)
        if budget is not None:
            budget.spend(len(output))
        return output

    return counted


def _budget_nodes(template: Template) -> None:
    """Check the nesting and make every piece of output count against the budget.

    Output is counted where it is made: at the leaves (text, variables, tags such as ``cycle``)
    and at ``{% filter %}``, whose filters may grow what its body made. Containers (``if``,
    ``with``, ``for``) only pass their children's output on, so counting them again would count
    it twice.
    """
    stack: list[tuple[NodeList, int, int]] = [(template.nodelist, 0, 0)]
    while stack:
        nodelist, depth, loops = stack.pop()
        if depth > MAX_BLOCK_NESTING:
            raise BudgetExceeded(f"blocks nest more than {MAX_BLOCK_NESTING} deep")
        for node in list(nodelist):
            if isinstance(node, _LoopTurn):
                continue
            children = [child for name in node.child_nodelists if (child := getattr(node, name, None))]
            inner_loops = loops
            if isinstance(node, ForNode):
                inner_loops += 1
                if inner_loops > MAX_LOOP_NESTING:
                    raise BudgetExceeded(f"loops nest more than {MAX_LOOP_NESTING} deep")
                # A for loop's body is a NodeList; the stubs also allow a list of strings.
                node.nodelist_loop.insert(0, _LoopTurn())  # type: ignore[arg-type]
            if not children or isinstance(node, FilterNode):
                # Deliberate: this node's output now counts against the budget.
                node.render_annotated = _counted(node.render_annotated)  # type: ignore[method-assign]
            stack.extend((child, depth + 1, inner_loops) for child in children)


def _output_limit(field: str) -> int:
    return MAX_SUBJECT_OUTPUT if field.endswith("subject") else MAX_BODY_OUTPUT


def uses(source: str, name: str) -> bool:
    """Whether a template may read ``name`` (conservative: any mention counts).

    Lets the sender skip the queries for carts or points a campaign's templates never show.
    """
    return re.search(rf"\b{re.escape(name)}\b", source) is not None


def storable_text(value: str, field: str) -> str:
    """Text PostgreSQL can store: no NUL characters and no lone surrogates (which JSON can carry)."""
    if problem := v.text_problem(value):
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
        template = ENGINE.from_string(source)
        _budget_nodes(template)
    except (TemplateSyntaxError, BudgetExceeded) as error:
        raise template_error(field, error) from None
    except RecursionError:
        raise template_error(field, "blocks nest too deeply") from None
    template.output_limit = _output_limit(field)  # type: ignore[attr-defined]  # ours, read when rendering
    return template


def template_error(field: str, error: Exception | str) -> ApplicationError:
    message = f"template error: {error}"
    return ApplicationError(f"{field}: {message}", code="invalid_template", fields={field: [message]})


def _zone(tz: str) -> dt.tzinfo:
    try:
        return zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return timezone.get_default_timezone()


def _render_budgeted(template: Template, context: dict[str, Any], deadline: float, autoescape: bool = False) -> str:
    budget = Budget(limit=getattr(template, "output_limit", MAX_BODY_OUTPUT), deadline=deadline)
    # autoescape: on for HTML email bodies, so a customer's name cannot become markup.
    budgeted = Context(context, autoescape=autoescape)
    budgeted.budget = budget  # type: ignore[attr-defined]  # ours, read by the counted nodes
    try:
        output = template.render(budgeted)
    except RecursionError:
        raise BudgetExceeded("blocks nest too deeply") from None
    if len(output) > budget.limit:  # anything the counting missed
        raise BudgetExceeded(f"the output is longer than {budget.limit} characters")
    return output


def render(template: Template, context: dict[str, Any], tz: str, *, autoescape: bool = False) -> str:
    """Render in the customer's time zone, so ``{{ customer.last_purchase_at|date }}`` is their local time.

    Raises BudgetExceeded past the time or output budget (a template compiled by ``template_compile``).
    """
    with timezone.override(_zone(tz)):
        return _render_budgeted(template, context, time.monotonic() + RENDER_SECONDS, autoescape)


def render_all(templates: tuple[Template, ...], context: dict[str, Any], tz: str) -> tuple[str, ...]:
    """Several templates against one context, in one time zone switch (the sender's hot path).

    They share one time budget: one message renders in about ``RENDER_SECONDS`` at most.
    """
    deadline = time.monotonic() + RENDER_SECONDS
    with timezone.override(_zone(tz)):
        return tuple(_render_budgeted(template, context, deadline) for template in templates)


def templates_validate(*, subject: str, body: str, channel: str, body_html: str = "") -> None:
    """Compile and trial-render the templates; raises ApplicationError naming the field. An email
    with an HTML body may leave the text body empty: its text part is made from the HTML."""
    if channel == Channel.EMAIL and not (subject or "").strip():
        raise ApplicationError(
            "subject: an email needs a subject", code="invalid", fields={"subject": ["an email needs a subject"]}
        )
    if body_html and channel != Channel.EMAIL:
        raise ApplicationError(
            "body_html: only email has an HTML body", code="invalid", fields={"body_html": ["only email has one"]}
        )
    if not (body or "").strip() and not (body_html or "").strip():
        raise ApplicationError("body: is required", code="invalid", fields={"body": ["is required"]})
    for field, source in (("subject", subject or ""), ("body", body or ""), ("body_html", body_html or "")):
        template = template_compile(source, field)
        try:
            render(template, sample_context(), "UTC", autoescape=field == "body_html")
        except Exception as error:  # over budget, or any error a filter raises at render time
            raise template_error(field, error) from None


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


def cart_context(external_id: str, updated_at: dt.datetime, items: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
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
        "points": points_context(1200, 300, now + dt.timedelta(days=10), DEFAULT_EXPIRING_DAYS),
        "offer": {"bonus_points": 100, "discount_percent": 10, "discount_code": "CRM-SAMPLE1"},
        "purchase": {"external_id": "sample-order", "placed_at": now - dt.timedelta(days=7), "total": Decimal("59.90")},
        "campaign": {"name": "Sample campaign"},
        "unsubscribe_url": "https://shop.example.com/unsubscribe/sample",
        "preferences_url": "https://shop.example.com/preferences/sample",
        "nps_links": "\n".join(f"{score}: https://shop.example.com/nps/sample-{score}" for score in range(11)),
    }
