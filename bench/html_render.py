"""Benchmark HTML email rendering (SPEC §4.2): 100,000 messages through the sender's own path.

    DEBUG=true .venv/bin/python bench/html_render.py [--messages 100000] [--no-write]

Each message goes through ``campaigns.content.rendering.email_html_and_text`` exactly as the
sender calls it: the sandboxed ``body_html`` template rendered with autoescaping for one customer
(name, a three-item cart, an offer), its links rewritten to signed click redirects, the result put
into the shop's layout and its CSS inlined by css-inline, and the plain part made from the HTML.
Customers vary (1,000 distinct contexts), so nothing is rendered once and reused.

For scale, the same run times css-inline alone on the finished documents (the inliner's share,
which no rendering can undercut) and the template render alone. No database is needed: the layout
is an unsaved EmailLayout, as the sender holds it for a batch. Writes the table between
``<!-- html-render:start -->`` and ``<!-- html-render:end -->`` in docs/PERFORMANCE.md.
"""

import argparse
import datetime as dt
import os
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "retention_crm.settings")

import django  # noqa: E402

django.setup()

from django.utils import timezone  # noqa: E402

from bench.report import performance_section_write  # noqa: E402
from campaigns.content.html_email import INLINER, LayoutParts  # noqa: E402
from campaigns.content.models import EmailLayout  # noqa: E402
from campaigns.content.rendering import MessageContent, email_html_and_text, message_variables  # noqa: E402
from campaigns.templating import cart_context, customer_context, points_context, render, template_compile  # noqa: E402

DISTINCT_CUSTOMERS = 1_000
BODY_HTML = """
<h1>{{ customer.first_name }}, you left something behind</h1>
<p>Your cart is waiting: {{ cart.items|length }} item{{ cart.items|length|pluralize }}, {{ cart.total }} in all.</p>
<table class="cart">
{% for item in cart.items %}<tr><td>{{ item.name }}</td><td>{{ item.quantity }} &times; {{ item.unit_price }}</td></tr>
{% endfor %}</table>
<p><a class="button" href="https://shop.example.com/cart?utm_source=email&amp;utm_campaign=cart">Your cart</a></p>
<p>Use <strong>{{ offer.discount_code }}</strong> for {{ offer.discount_percent }}% off, or see
<a href="https://shop.example.com/new">what is new</a> and <a href="https://shop.example.com/sale">the sale</a>.</p>
<p>You have {{ points.balance }} points.</p>
"""


def contexts(content: MessageContent) -> list[tuple[str, dict]]:
    now = timezone.now()
    rows = []
    for number in range(DISTINCT_CUSTOMERS):
        message_uuid = str(uuid.uuid4())
        customer = customer_context(
            {
                "external_id": f"customer-{number}",
                "first_name": ["Ada", "Grace", "Alan", "Edsger", "Barbara"][number % 5] + f" {number}",
                "last_name": "Tester",
                "email": f"customer{number}@example.com",
                "phone": "",
                "tier": "silver",
                "points_balance": number * 7,
                "orders_count": 3,
                "total_spent": Decimal("120.00"),
                "first_purchase_at": now - dt.timedelta(days=300),
                "last_purchase_at": now - dt.timedelta(days=20),
                "birth_date": None,
                "created_at": now - dt.timedelta(days=400),
                "tags": [],
                "attributes": {},
                "timezone": "UTC",
            }
        )
        items = [
            {
                "sku": f"SKU-{number}-{i}",
                "name": f"Tea no. {i} <{number}>",
                "category": "tea",
                "quantity": i + 1,
                "unit_price": Decimal("4.50") + i,
            }
            for i in range(3)
        ]
        context = {
            "customer": customer,
            "cart": cart_context(f"cart-{number}", now, items),
            "points": points_context(number * 7, 0, None, 14),
            "offer": {"discount_percent": 10, "discount_code": f"CART-{number:08X}"},
            "purchase": None,
            "campaign": {"name": "Abandoned cart"},
            "unsubscribe_url": f"https://shop.example.com/unsubscribe/{message_uuid}",
            **message_variables(content, message_uuid),
        }
        rows.append((message_uuid, context))
    return rows


def timed(label: str, count: int, work) -> tuple[str, int, float]:
    started = time.perf_counter()
    work()
    return label, count, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    args = parser.parse_args()
    count = args.messages

    content = MessageContent(
        layout_parts=LayoutParts.of(EmailLayout(shop_name="Tea & Co", shop_address="1 High Street, London"))
    )
    rows = contexts(content)
    template = template_compile(BODY_HTML, "body_html")
    key = ("message", "")
    content.html_template(key, BODY_HTML)
    documents: list[str] = []

    def full() -> None:
        for number in range(count):
            message_uuid, context = rows[number % DISTINCT_CUSTOMERS]
            html, _ = email_html_and_text(
                content,
                key=key,
                source=BODY_HTML,
                context=context,
                subject="You left something behind",
                text="",
                tz="UTC",
                message_uuid=message_uuid,
            )
            if number < DISTINCT_CUSTOMERS:
                documents.append(html)

    def render_only() -> None:
        for number in range(count):
            render(template, rows[number % DISTINCT_CUSTOMERS][1], "UTC", autoescape=True)

    def inline_only() -> None:
        # The finished documents again: their CSS is inline already, so this is the parse and
        # serialise cost css-inline pays on any document of this size, with nothing left to apply.
        for number in range(count):
            INLINER.inline(documents[number % DISTINCT_CUSTOMERS])

    results = [timed("full path: render, rewrite links, layout, inline CSS, text part", count, full)]
    results.append(timed("template render only (sandboxed, autoescaped)", count, render_only))
    results.append(timed("css-inline only, on the finished documents", count, inline_only))
    size = sum(len(document) for document in documents) / len(documents)

    lines = [
        "## HTML email rendering",
        "",
        f"Measured by `bench/html_render.py`: {count:,} messages in one process on the same 2-core machine,",
        f"each a {size / 1024:.1f} KB document (a three-item cart, three tracked links, the layout's footer).",
        "",
        "| step | messages | seconds | messages/s |",
        "| --- | ---: | ---: | ---: |",
    ]
    for label, number, seconds in results:
        lines.append(f"| {label} | {number:,} | {seconds:.1f} | {number / seconds:,.0f} |")
    per_message = {label: seconds / number * 1e6 for label, number, seconds in results}
    full_us, render_us, inline_us = per_message.values()
    lines += [
        "",
        f"A message costs about {full_us:,.0f} µs on the full path: the sandboxed template render (with its",
        f"budget checks) {render_us:,.0f} µs, css-inline's parse and serialise about {inline_us:,.0f} µs, the rest",
        "the link signing, the layout and the text part. One worker process renders about",
        f"{1e6 / full_us:,.0f} HTML emails a second.",
    ]
    table = "\n".join(lines)
    print(table)
    if not args.no_write:
        performance_section_write("html-render", table)


if __name__ == "__main__":
    main()
