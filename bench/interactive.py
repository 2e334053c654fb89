"""Interactive reads: p50/p95 of every page and API read a user waits for, on the data set of
bench/generate.py, plus the data set's size on disk per table and per index.

    DEBUG=true DATABASE_URL=postgres://postgres@127.0.0.1:5432/retention_crm_bench \\
        .venv/bin/python bench/interactive.py [--runs 7] [--only 'metrics.*'] [--no-write] [--list]

Each read goes through Django's test client against the real URL (admin pages and API views, a
logged-in superuser, middleware included), so what is timed is what the user waits for minus the
network. One warm-up call, then ``--runs`` timed calls; p50 and p95 are nearest-rank percentiles
(with 7 runs, p95 is the slowest run). Next to the times: the SQL statements one call ran and what
it returned (the figures, or the rows on the page), so a faster but different answer shows.

Reads are a registry (``READS``: name and variant to a callable). Variant ``view`` is the request
to the URL, whatever path the view takes; ``live`` is the reference selector (``<name>_live``
where a fast path took over ``<name>``) called with the view's default parameters. A new fast
path registers as one more variant of the same name (``register(name, ..., variant="fast")``).
Variants of one read are timed alternately in the same run, and the table says, for each, whether
it returned what ``live`` returned, run by run.

Fixtures, all removed at the end: a superuser for the session, and (for the dashboard, the
campaign report and the message lists) a reactivation campaign evaluated now, its messages moved
100 days back and the queued ones marked sent then, so the report's conversion and still-active
probes all run.
``--only`` runs a subset and leaves docs/PERFORMANCE.md alone; otherwise the table goes into its
``interactive`` section (``--no-write`` prints it only).
"""

import argparse
import datetime as dt
import fnmatch
import math
import os
import random
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "retention_crm.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.db import DatabaseError, connection, transaction  # noqa: E402
from django.http import HttpResponse  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.urls import resolve, reverse  # noqa: E402
from django.utils import timezone  # noqa: E402

from bench.report import performance_section_write  # noqa: E402
from campaigns import selectors as campaign_selectors  # noqa: E402
from campaigns.models import Campaign, ContactPolicy  # noqa: E402
from campaigns.services import campaign_create, campaign_evaluate  # noqa: E402
from metrics import cohorts as cohorts_module  # noqa: E402
from metrics import retention as retention_module  # noqa: E402
from metrics import rfm  # noqa: E402
from metrics import summary as summary_module  # noqa: E402
from metrics.periods import parse_as_of, parse_cohort_period, parse_period, parse_window  # noqa: E402
from metrics.serializers import RetentionSerializer, SummarySerializer  # noqa: E402

BENCH_USER = "bench-interactive"
BENCH_CAMPAIGN = "bench interactive: reactivation"
CAMPAIGN_SENT_DAYS_AGO = 100  # past the 90-day still-active checkpoint: every report probe runs
RFM_PAGE = {"limit": "50", "offset": "1000"}
SIZE_FLOOR = 1024 * 1024  # tables and indexes under 1 MB are summed into one line


# --- The registry ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    status: int
    figures: str  # what came back, compactly: the same read must return the same figures


class Skipped(Exception):
    """The read cannot run here: its endpoint is not built yet, or its fixture is missing."""


@dataclass
class Fixture:
    client: Client
    buyers: list[tuple[int, str]]  # (id, external_id): the warm-up's, then one per run
    top: tuple[int, str]  # the customer with the most orders
    purchase_external_id: str
    campaign_id: int | None = None
    message_customer: str | None = None

    def buyer(self, run: int) -> tuple[int, str]:
        """Run -1 is the warm-up."""
        return self.buyers[run + 1]


@dataclass(frozen=True)
class Read:
    name: str
    variant: str
    label: str
    call: Callable[[Fixture, int], Outcome]
    per_run_input: bool  # a different customer each run: figures differ between runs by design
    uses_campaign: bool
    note: str = ""


READS: dict[str, Read] = {}


def register(
    name: str,
    label: str,
    *,
    variant: str,
    note: str = "",
    per_run_input: bool = False,
    uses_campaign: bool = False,
) -> Callable[[Callable[[Fixture, int], Outcome]], Callable[[Fixture, int], Outcome]]:
    """Add ``call`` as the ``variant`` of read ``name``; ``note`` says what it calls, for the table."""

    def decorator(call: Callable[[Fixture, int], Outcome]) -> Callable[[Fixture, int], Outcome]:
        READS[f"{name}:{variant}"] = Read(name, variant, label, call, per_run_input, uses_campaign, note)
        return call

    return decorator


# --- Requests and what they returned -----------------------------------------------------------------


def http_get(fx: Fixture, path: str, params: dict[str, str] | None = None) -> HttpResponse:
    return fx.client.get(path, params or {})


def failure(response: HttpResponse) -> Outcome:
    body = response.content.decode(errors="replace")
    return Outcome(response.status_code, " ".join(body.split())[:120])


def api_read(fx: Fixture, path: str, figures: Callable[[Any], str], params: dict[str, str] | None = None) -> Outcome:
    response = http_get(fx, path, params)
    if response.status_code != 200:
        return failure(response)
    return Outcome(200, figures(response.json()))


def page_read(fx: Fixture, path: str, figures: Callable[[str], str], params: dict[str, str] | None = None) -> Outcome:
    response = http_get(fx, path, params)
    if response.status_code != 200:
        return failure(response)
    return Outcome(200, figures(response.content.decode()))


def n(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def pick(body: dict[str, Any], *keys: str) -> str:
    return ", ".join(f"{key} {n(body.get(key))}" for key in keys)


def changelist_figures(html: str) -> str:
    """Rows on the page, and the count in the paginator line ("1000000 customers", "10,000+ customers")."""
    table = re.search(r'<table id="result_list".*?<tbody>(.*?)</tbody>', html, re.S)
    rows = len(re.findall(r"<tr\b", table.group(1))) if table else 0
    paginator = re.search(r'<p class="paginator">(.*?)</p>', html, re.S)
    text = " ".join(re.sub(r"<[^>]+>", " ", paginator.group(1)).split()) if paginator else ""
    count = re.search(r"(\d[\d,]*)(\+?)\s+[a-z ]+?\s*(?:Show all)?$", text)
    total = f"{int(count.group(1).replace(',', '')):,}{count.group(2)}" if count else f"? ({text[-40:]})"
    return f"{rows} shown, count {total}"


def dashboard_figures(html: str) -> str:
    cards = dict(re.findall(r'data-figure="(\w+)">([^<]*)<', html))
    cohorts = re.findall(r'<tr data-cohort="[^"]*"><th>[^<]*</th><td>(\d+)</td>', html)
    shown = [cards.get(key, "?") for key in ("customers_start", "customers_end", "new_customers", "lost", "aov")]
    return f"S/E/N/lost {'/'.join(shown[:4])}, AOV {shown[4]}, {len(cohorts)} cohorts of {sum(map(int, cohorts)):,}"


def customer_page_figures(html: str) -> str:
    orders = re.search(r'data-stat="orders_count">([^<]*)<', html)
    purchases = re.search(r"<h2>Purchases \((\d+)\)</h2>", html)
    return f"orders {orders.group(1) if orders else '?'}, purchases {purchases.group(1) if purchases else '?'}"


# --- The reads ---------------------------------------------------------------------------------------
# Variants: "view" is the request to the URL, whatever path the view takes; "live" is the reference
# selector (``<name>_live`` where the module has one) called with the view's default parameters.


def live_selector(module: ModuleType, name: str) -> Callable[..., Any]:
    """The reference implementation: ``name_live`` once a fast path took over ``name``, else ``name``."""
    return getattr(module, f"{name}_live", None) or getattr(module, name)


def live_note(module: ModuleType, name: str) -> str:
    return f"`{live_selector(module, name).__name__}`"


@register("dashboard", "admin dashboard, default period (30 days, W 90)", variant="view", uses_campaign=True)
def dashboard_page(fx: Fixture, run: int) -> Outcome:
    return page_read(fx, reverse("admin:metrics_dashboard_changelist"), dashboard_figures)


def customer_api(fx: Fixture, customer: tuple[int, str]) -> Outcome:
    return api_read(
        fx,
        f"/api/v1/customers/{customer[1]}",
        lambda body: f"{body['external_id']}: {pick(body, 'orders_count', 'total_spent', 'rfm_segment')}",
    )


def customer_admin(fx: Fixture, customer: tuple[int, str]) -> Outcome:
    path = reverse("admin:customers_customer_change", args=[customer[0]])
    return page_read(fx, path, lambda html: f"{customer[1]}: {customer_page_figures(html)}")


@register(
    "customer360.api.random",
    "GET /api/v1/customers/{id}, a random buyer each run",
    variant="view",
    per_run_input=True,
)
def customer_api_random(fx: Fixture, run: int) -> Outcome:
    return customer_api(fx, fx.buyer(run))


@register("customer360.api.top", "GET /api/v1/customers/{id}, the customer with the most orders", variant="view")
def customer_api_top(fx: Fixture, run: int) -> Outcome:
    return customer_api(fx, fx.top)


@register(
    "customer360.admin.random",
    "admin customer page (360), a random buyer each run",
    variant="view",
    per_run_input=True,
)
def customer_admin_random(fx: Fixture, run: int) -> Outcome:
    return customer_admin(fx, fx.buyer(run))


@register("customer360.admin.top", "admin customer page (360), the customer with the most orders", variant="view")
def customer_admin_top(fx: Fixture, run: int) -> Outcome:
    return customer_admin(fx, fx.top)


def report_figures(body: dict[str, Any]) -> str:
    counts, impact = body["counts"], body["impact"]
    treated, control = impact["treated"], impact["control"]
    return (
        f"sent {counts.get('sent', 0):,}, held out {counts.get('held_out', 0):,}; converted treated"
        f" {treated['converted']:,} / control {control['converted']:,}; reached the 90-day checkpoint"
        f" {treated['still_active']['90d']['customers']:,}"
    )


REPORT = "GET /api/v1/campaigns/{id}/report, the bench campaign"


def bench_campaign(fx: Fixture) -> int:
    if fx.campaign_id is None:
        raise Skipped("skipped: no bench campaign")
    return fx.campaign_id


@register("campaign.report", REPORT, variant="view", uses_campaign=True)
def campaign_report_view(fx: Fixture, run: int) -> Outcome:
    return api_read(fx, f"/api/v1/campaigns/{bench_campaign(fx)}/report", report_figures)


@register("campaign.report", REPORT, variant="live", note=live_note(campaign_selectors, "campaign_report"))
def campaign_report_live(fx: Fixture, run: int) -> Outcome:
    campaign = Campaign.objects.get(pk=bench_campaign(fx))
    return Outcome(200, report_figures(live_selector(campaign_selectors, "campaign_report")(campaign=campaign)))


RETENTION = "GET /api/v1/metrics/retention, default: 30 days to today, W 90"
RETENTION_KEYS = ("customers_start", "customers_end", "new_customers", "retained", "reactivated", "lost")


@register("metrics.retention", RETENTION, variant="view")
def metrics_retention_view(fx: Fixture, run: int) -> Outcome:
    return api_read(fx, "/api/v1/metrics/retention", lambda body: pick(body, *RETENTION_KEYS))


@register("metrics.retention", RETENTION, variant="live", note=live_note(retention_module, "retention"))
def metrics_retention_live(fx: Fixture, run: int) -> Outcome:
    period, window = parse_period(None, None), parse_window(None)
    table = live_selector(retention_module, "retention")(start=period.start, end=period.end, window_days=window)
    return Outcome(200, pick(RetentionSerializer(table.as_dict()).data, *RETENTION_KEYS))


SUMMARY = "GET /api/v1/metrics/summary, default: 30 days to today"
SUMMARY_KEYS = ("purchasing_customers", "orders", "revenue", "customers_end", "clv_customers", "nps_answers")


@register("metrics.summary", SUMMARY, variant="view")
def metrics_summary_view(fx: Fixture, run: int) -> Outcome:
    return api_read(fx, "/api/v1/metrics/summary", lambda body: pick(body, *SUMMARY_KEYS))


@register("metrics.summary", SUMMARY, variant="live", note=live_note(summary_module, "summary"))
def metrics_summary_live(fx: Fixture, run: int) -> Outcome:
    period, window = parse_period(None, None), parse_window(None)
    figures = live_selector(summary_module, "summary")(start=period.start, end=period.end, window_days=window)
    return Outcome(200, pick(SummarySerializer(figures.as_dict()).data, *SUMMARY_KEYS))


def cohort_figures(body: dict[str, Any]) -> str:
    cohorts = body["cohorts"]
    sizes = sum(c["size"] for c in cohorts)
    cells = sum(sum(c.get("active", [])) for c in cohorts)
    return f"{len(cohorts)} cohorts, sizes {sizes:,}, active cells {cells:,}"


COHORTS = "GET /api/v1/metrics/cohorts, default: 12 months"


@register("metrics.cohorts", COHORTS, variant="view")
def metrics_cohorts_view(fx: Fixture, run: int) -> Outcome:
    return api_read(fx, "/api/v1/metrics/cohorts", cohort_figures)


@register("metrics.cohorts", COHORTS, variant="live", note=live_note(cohorts_module, "cohort_matrix"))
def metrics_cohorts_live(fx: Fixture, run: int) -> Outcome:
    period = parse_cohort_period(None, None)
    cohorts = live_selector(cohorts_module, "cohort_matrix")(start=period.start, end=period.end)
    return Outcome(200, cohort_figures({"cohorts": [cohort.as_dict() for cohort in cohorts]}))


@register(
    "metrics.rfm.counts",
    "RFM segment counts as of now (no URL of its own: the RFM API and the unscored dashboard run it)",
    variant="live",
    note=live_note(rfm, "segment_counts"),
)
def metrics_rfm_counts(fx: Fixture, run: int) -> Outcome:
    counts = live_selector(rfm, "segment_counts")(as_of=parse_as_of(None))
    return Outcome(200, f"{sum(counts.values()):,} customers, Champions {counts.get('Champions', 0):,}")


def rfm_page_figures(body: dict[str, Any]) -> str:
    results = body["results"]
    first = results[0]["customer"] if results else "-"
    return f"{len(results)} scores from {first}, of {body['count']:,}; Champions {body['segments']['Champions']:,}"


RFM_PAGE_LABEL = "GET /api/v1/metrics/rfm?limit=50&offset=1000, as of now (with the segment counts)"


@register("metrics.rfm.page", RFM_PAGE_LABEL, variant="view")
def metrics_rfm_page_view(fx: Fixture, run: int) -> Outcome:
    return api_read(fx, "/api/v1/metrics/rfm", rfm_page_figures, RFM_PAGE)


@register(
    "metrics.rfm.page",
    RFM_PAGE_LABEL,
    variant="live",
    note=f"{live_note(rfm, 'segment_counts')} + {live_note(rfm, 'scored_page')}",
)
def metrics_rfm_page_live(fx: Fixture, run: int) -> Outcome:
    as_of = parse_as_of(None)
    counts = live_selector(rfm, "segment_counts")(as_of=as_of)
    rows = live_selector(rfm, "scored_page")(as_of=as_of, offset=int(RFM_PAGE["offset"]), limit=int(RFM_PAGE["limit"]))
    body = {"results": [row.as_dict() for row in rows], "count": sum(counts.values()), "segments": counts}
    return Outcome(200, rfm_page_figures(body))


@register("metrics.rfm.flow", "GET /api/v1/metrics/rfm/flow, 30 days ago to today", variant="view")
def metrics_rfm_flow(fx: Fixture, run: int) -> Outcome:
    path = "/api/v1/metrics/rfm/flow"
    if resolve(path).func is resolve("/api/no-such-path").func:  # only the API's catch-all 404 answers
        raise Skipped("not built: no route")
    today = timezone.localdate()
    params = {"from": (today - dt.timedelta(days=30)).isoformat(), "to": today.isoformat()}

    def figures(body: dict[str, Any]) -> str:
        flow = body["flow"]
        return f"{sum(sum(row.values()) for row in flow.values()):,} customers from {len(flow)} segments"

    return api_read(fx, path, figures, params)


def admin_list(model: str, label: str, params: Callable[[Fixture], dict[str, str]], shown: str, **options: Any) -> None:
    """Register one changelist read: ``/admin/<app>/<model>/`` with the query ``params`` makes."""
    app, name = model.split(".")
    suffix = "" if label == "first page" else f".{label}"

    def call(fx: Fixture, run: int) -> Outcome:
        return page_read(fx, reverse(f"admin:{app}_{name}_changelist"), changelist_figures, params(fx))

    title = f"admin {name} list, {label}{f' ({shown})' if shown else ''}"
    register(f"admin.{name}{suffix}", title, variant="view", **options)(call)


admin_list("customers.customer", "first page", lambda fx: {}, "")
admin_list(
    "customers.customer",
    "filtered",
    lambda fx: {"has_purchased": "yes", "consent_email": "yes"},
    "has purchased, email consent",
)
admin_list("customers.customer", "searched", lambda fx: {"q": fx.top[1]}, "the top customer's external id")
admin_list("customers.purchase", "first page", lambda fx: {}, "")
admin_list("customers.purchase", "filtered", lambda fx: {"status__exact": "refunded"}, "status refunded")
admin_list(
    "customers.purchase", "searched", lambda fx: {"q": fx.purchase_external_id}, "a random purchase's external id"
)
admin_list("campaigns.message", "first page", lambda fx: {}, "", uses_campaign=True)
admin_list(
    "campaigns.message",
    "filtered",
    lambda fx: {"status__exact": "sent", **({"campaign__id__exact": str(fx.campaign_id)} if fx.campaign_id else {})},
    "status sent, the bench campaign",
    uses_campaign=True,
)
admin_list(
    "campaigns.message",
    "searched",
    lambda fx: {"q": fx.message_customer or fx.top[1]},
    "a messaged customer's external id",
    uses_campaign=True,
)


# --- Fixtures ----------------------------------------------------------------------------------------


def fetch(sql: str, params: Any = None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def execute(sql: str, params: Any = None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def random_buyers(count: int, rng: random.Random) -> list[tuple[int, str]]:
    """``count`` buyers at random: the first buyer at or after each of ``count`` random ids."""
    low, high = fetch("SELECT min(id), max(id) FROM customers_customer")[0]
    starts = [rng.randint(low, high) for _ in range(count)]
    rows = fetch(
        """SELECT c.id, c.external_id FROM unnest(%s::bigint[]) WITH ORDINALITY AS r(id, n)
           CROSS JOIN LATERAL (SELECT id, external_id FROM customers_customer c
                               WHERE c.id >= r.id AND c.orders_count > 0 ORDER BY c.id LIMIT 1) c
           ORDER BY r.n""",
        [starts],
    )
    if len(rows) < count:  # a draw past the last buyer: take the last buyers instead
        rows += fetch(
            "SELECT id, external_id FROM customers_customer WHERE orders_count > 0 ORDER BY id DESC LIMIT %s",
            [count - len(rows)],
        )
    return rows


def random_purchase(rng: random.Random) -> str:
    low, high = fetch("SELECT min(id), max(id) FROM customers_purchase")[0]
    return fetch(
        "SELECT external_id FROM customers_purchase WHERE id >= %s ORDER BY id LIMIT 1", [rng.randint(low, high)]
    )[0][0]


def campaign_fixture(timeout_seconds: int) -> tuple[int, int, str | None]:
    """A reactivation campaign (inactive 90 days, 10 % control, email) evaluated now, then its
    messages moved ``CAMPAIGN_SENT_DAYS_AGO`` days back and the queued ones marked sent then: a
    large campaign whose report has every probe to run (conversion windows, both still-active
    checkpoints). Returns its id, its messages and one messaged customer. The evaluation is cancelled
    after ``timeout_seconds``."""
    policy, _ = ContactPolicy.objects.get_or_create(pk=1)
    saved = (policy.quiet_hours_start, policy.quiet_hours_end)
    policy.quiet_hours_start = policy.quiet_hours_end = dt.time(0)  # every message planned at once
    policy.save()
    try:
        campaign = campaign_create(
            data={
                "name": BENCH_CAMPAIGN,
                "trigger": "reactivation",
                "channel": "email",
                "status": "active",
                "subject": "We miss you, {{ customer.first_name }}",
                "body": "Hello {{ customer.first_name }}, come back: {{ unsubscribe_url }}",
                "params": {"inactive_days": 90},
                "holdout_percent": 10,
            }
        )
        started = time.perf_counter()
        with transaction.atomic():  # the evaluation's own transaction nests in this one, under the timeout
            execute("SELECT set_config('statement_timeout', %s, true)", [f"{timeout_seconds}s"])
            # An emptied, vacuumed message table has 0 pages, so the planner reads the frequency cap
            # with a sequential scan per entered customer, over the rows the statement itself is
            # inserting: quadratic. The fixture is not what is measured; keep it linear.
            execute("SET LOCAL enable_seqscan = off")
            campaign_evaluate(campaign_id=campaign.pk)
        print(f"  campaign_evaluate: {time.perf_counter() - started:.1f} s", flush=True)
    finally:
        policy.quiet_hours_start, policy.quiet_hours_end = saved
        policy.save()
    execute(
        """UPDATE campaigns_message SET created_at = created_at - %(back)s, scheduled_at = scheduled_at - %(back)s,
                  send_at = send_at - %(back)s,
                  status = CASE WHEN status = 'queued' THEN 'sent' ELSE status END,
                  sent_at = CASE WHEN status = 'queued' THEN scheduled_at - %(back)s ELSE sent_at END,
                  claimed_at = CASE WHEN status = 'queued' THEN scheduled_at - %(back)s ELSE claimed_at END,
                  touched_at = CASE WHEN status = 'queued' THEN scheduled_at - %(back)s
                                    ELSE touched_at - %(back)s END,
                  attempts = CASE WHEN status = 'queued' THEN 1 ELSE attempts END
           WHERE campaign_id = %(campaign)s""",
        {"back": dt.timedelta(days=CAMPAIGN_SENT_DAYS_AGO), "campaign": campaign.pk},
    )
    execute("VACUUM (ANALYZE) campaigns_message")
    messages, customer = fetch(
        """SELECT (SELECT count(*) FROM campaigns_message WHERE campaign_id = %(c)s),
                  (SELECT k.external_id FROM campaigns_message m JOIN customers_customer k ON k.id = m.customer_id
                   WHERE m.campaign_id = %(c)s ORDER BY m.id LIMIT 1)""",
        {"c": campaign.pk},
    )[0]
    return campaign.pk, messages, customer


def cleanup() -> None:
    """Remove what any run of this bench created, an interrupted one's included."""
    ids = list(Campaign.objects.filter(name=BENCH_CAMPAIGN).values_list("pk", flat=True))
    if ids:
        for table in ("campaigns_attribution", "campaigns_message", "campaigns_entry", "campaigns_stepcount"):
            execute(f"DELETE FROM {table} WHERE campaign_id = ANY(%s)", [ids])
        Campaign.objects.filter(pk__in=ids).delete()
        execute("VACUUM (ANALYZE) campaigns_message")
    get_user_model().objects.filter(username=BENCH_USER).delete()
    execute("DELETE FROM axes_accesslog WHERE username = %s", [BENCH_USER])


def logged_in_client() -> Client:
    user, _ = get_user_model().objects.update_or_create(
        username=BENCH_USER, defaults={"is_staff": True, "is_superuser": True, "is_active": True}
    )
    user.set_unusable_password()
    user.save()
    # SERVER_NAME: a host the settings allow (the test client's default "testserver" is not).
    client = Client(SERVER_NAME="localhost", raise_request_exception=True)
    client.force_login(user)
    return client


# --- Timing ------------------------------------------------------------------------------------------


@dataclass
class Result:
    read: Read
    seconds: list[float] = field(default_factory=list)
    queries: list[int] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    error: str | None = None

    def percentile(self, p: float) -> float:
        ordered = sorted(self.seconds)
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def timed_call(read: Read, fx: Fixture, run: int) -> tuple[float, int, Outcome]:
    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        outcome = read.call(fx, run)
        seconds = time.perf_counter() - started
    return seconds, len(queries), outcome


def measure(reads: list[Read], fx: Fixture, runs: int, live_runs: int | None = None) -> list[Result]:
    """Each read: one warm-up, then ``runs`` timed calls; a read's variants alternate run by run.
    ``live_runs`` caps the live selectors' calls (each is a scan: at 100M purchases, tens of seconds)."""
    results = {f"{read.name}:{read.variant}": Result(read) for read in reads}
    by_name: dict[str, list[Result]] = {}
    for result in results.values():
        by_name.setdefault(result.read.name, []).append(result)
    for name, variants in by_name.items():
        print(f"{name} ...", flush=True)
        for run in range(-1, runs):
            for result in variants:
                if result.error or (live_runs is not None and result.read.variant == "live" and run >= live_runs):
                    continue
                try:
                    seconds, queries, outcome = timed_call(result.read, fx, run)
                except Skipped as reason:
                    result.error = str(reason)
                    continue
                except Exception as problem:  # a crash is a result to report, not the end of the bench
                    result.error = f"{type(problem).__name__}: {' '.join(str(problem).split())[:160]}"
                    continue
                if run >= 0:
                    result.seconds.append(seconds)
                    result.queries.append(queries)
                    result.outcomes.append(outcome)
        for result in variants:
            if result.error:
                print(f"  {result.read.variant}: {result.error}", flush=True)
            else:
                last = result.outcomes[-1]
                print(
                    f"  {result.read.variant}: p50 {ms(result.percentile(50))}, p95 {ms(result.percentile(95))} ms, "
                    f"{result.queries[-1]} queries, HTTP {last.status}: {last.figures}",
                    flush=True,
                )
    return list(results.values())


def ms(seconds: float) -> str:
    value = seconds * 1000
    return f"{value:,.1f}" if value < 10 else f"{value:,.0f}"


# --- Size on disk ------------------------------------------------------------------------------------


def disk_sizes() -> dict[str, Any]:
    tables = fetch(
        """SELECT c.relname, pg_relation_size(c.oid), pg_table_size(c.oid) - pg_relation_size(c.oid),
                  pg_indexes_size(c.oid), greatest(c.reltuples, 0)::bigint
           FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
           WHERE s.nspname = 'public' AND c.relkind IN ('r', 'p')
           ORDER BY pg_total_relation_size(c.oid) DESC, c.relname"""
    )
    indexes = fetch(
        """SELECT i.indexrelname, i.relname, pg_relation_size(i.indexrelid), i.idx_scan,
                  pg_get_indexdef(i.indexrelid)
           FROM pg_stat_user_indexes i WHERE i.schemaname = 'public'
           ORDER BY pg_relation_size(i.indexrelid) DESC, i.indexrelname"""
    )
    database, stats_reset = fetch(
        "SELECT pg_database_size(current_database()), stats_reset FROM pg_stat_database"
        " WHERE datname = current_database()"
    )[0]
    return {"tables": tables, "indexes": indexes, "database": database, "stats_reset": stats_reset}


def mb(size: int) -> str:
    return f"{size / 2**20:,.1f}"


def index_shape(definition: str) -> str:
    """``CREATE INDEX x ON t USING btree (a, b) WHERE c`` -> ``btree (a, b) WHERE c``."""
    found = re.search(r" USING (.*)$", definition)
    shape = found.group(1) if found else definition
    return ("unique " if definition.startswith("CREATE UNIQUE") else "") + shape.replace("|", "\\|")


def sizes_markdown(sizes: dict[str, Any], purchases: int) -> list[str]:
    tables, indexes = sizes["tables"], sizes["indexes"]
    lines = [
        "### Size on disk",
        "",
        f"Database: {mb(sizes['database'])} MB"
        + (f", {sizes['database'] / purchases:,.0f} bytes per purchase" if purchases else "")
        + ". Heap is the table's main fork; TOAST etc. adds its TOAST table, free-space and visibility maps.",
        "",
        "| table | rows (estimate) | heap MB | TOAST etc. MB | indexes MB | total MB |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    small = [0, 0, 0, 0]
    small_count = 0
    for name, heap, toast, index, rows in tables:
        if heap + toast + index < SIZE_FLOOR:
            small = [small[0] + heap, small[1] + toast, small[2] + index, small[3] + rows]
            small_count += 1
            continue
        lines.append(f"| {name} | {rows:,} | {mb(heap)} | {mb(toast)} | {mb(index)} | {mb(heap + toast + index)} |")
    if small_count:
        lines.append(
            f"| {small_count} smaller tables | {small[3]:,} | {mb(small[0])} | {mb(small[1])} | {mb(small[2])} "
            f"| {mb(sum(small[:3]))} |"
        )
    reset = sizes["stats_reset"]
    lines += [
        "",
        "Per index (scans: `pg_stat_user_indexes.idx_scan` since the statistics were reset"
        + (f" on {reset:%Y-%m-%d}" if reset else "")
        + "; they include the benchmarks' and the load's own statements, so 0 means no statement used it, not"
        " that none would):",
        "",
        "| index | table | MB | scans | definition |",
        "| --- | --- | ---: | ---: | --- |",
    ]
    small_size, small_count = 0, 0
    for name, table, size, scans, definition in indexes:
        if size < SIZE_FLOOR:
            small_size, small_count = small_size + size, small_count + 1
            continue
        lines.append(f"| {name} | {table} | {mb(size)} | {scans:,} | {index_shape(definition)} |")
    if small_count:
        lines.append(f"| {small_count} smaller indexes | | {mb(small_size)} | | |")
    return lines


# --- Report ------------------------------------------------------------------------------------------


def same_as_live(result: Result, results: list[Result]) -> str:
    """For a non-live variant: did it return what the live read returned, run by run?"""
    if result.read.variant == "live":
        return ""
    live = next((r for r in results if r.read.name == result.read.name and r.read.variant == "live"), None)
    if live is None or live.error or result.error:
        return ""
    runs = min(len(live.outcomes), len(result.outcomes))  # the live selector may have run fewer times
    same = live.outcomes[:runs] == result.outcomes[:runs]
    return " (same as live)" if same else " (**differs from live**)"


def returned(result: Result) -> str:
    statuses = sorted({outcome.status for outcome in result.outcomes})
    if statuses != [200]:
        return f"**HTTP {', '.join(map(str, statuses))}**: {result.outcomes[-1].figures}"
    figures = {outcome.figures for outcome in result.outcomes}
    if result.read.per_run_input:
        return f"{len(figures)} customers, e.g. {result.outcomes[0].figures}"
    if len(figures) > 1:
        return f"**differs between runs**: {' / '.join(sorted(figures))}"
    return result.outcomes[0].figures


def cell(text: str) -> str:
    """Text that stays inside one cell of a markdown table."""
    return " ".join(text.split()).replace("|", "\\|")


def results_markdown(results: list[Result]) -> list[str]:
    lines = [
        "| read | variant | p50 ms | p95 ms | runs | SQL statements | returned |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for result in results:
        read = result.read
        variant = f"{read.variant}: {read.note}" if read.note else read.variant
        if result.error:
            lines.append(f"| `{read.name}`: {read.label} | {variant} | | | | | {cell(result.error)} |")
            continue
        lines.append(
            f"| `{read.name}`: {read.label} | {variant} | {ms(result.percentile(50))} | "
            f"{ms(result.percentile(95))} | {len(result.seconds)} | {max(result.queries)} | "
            f"{cell(returned(result))}{same_as_live(result, results)} |"
        )
    return lines


def server_settings() -> str:
    version, buffers, work_mem, workers, jit = fetch(
        "SELECT current_setting('server_version'), current_setting('shared_buffers'), current_setting('work_mem'),"
        " current_setting('max_parallel_workers_per_gather'), current_setting('jit')"
    )[0]
    return (
        f"PostgreSQL {version.split()[0]} (shared_buffers {buffers}, work_mem {work_mem}, {workers} parallel"
        f" workers per gather, jit {jit})"
    )


def report(context: dict[str, Any], results: list[Result], sizes: dict[str, Any]) -> str:
    load_start, load_end = context["load"]
    lines = [
        "## Interactive reads",
        "",
        f"Measured by `bench/interactive.py` on {context['customers']:,} customers / {context['purchases']:,}"
        f" purchases (bench/generate.py), {context['when']:%Y-%m-%d %H:%M} UTC. Every read is a request through"
        " Django's test client to the real URL, as a logged-in superuser (middleware, view, serializer or"
        f" template), so the time is what a user waits for minus the network: one warm-up, then {context['runs']}"
        " timed calls; p50 and p95 are nearest-rank (with 7 runs, p95 is the slowest). *SQL statements* is the"
        " most one call ran; *returned* is what the answer held, so a faster but different answer shows.",
        "",
        f"Machine: {os.cpu_count()} cores shared with PostgreSQL and other engineers' work (load average"
        f" {load_start:.1f} at the start, {load_end:.1f} at the end), {server_settings()}; DEBUG on. RFM"
        f" segments on the dashboard: {context['segments']}. {context['campaign']}",
        "",
        *results_markdown(results),
        "",
        "Goal (issue 18): every read within 1 s at p95 at 10M customers / 100M purchases. Reads marked *not"
        " built* have no endpoint yet.",
        "",
        *sizes_markdown(sizes, context["purchases"]),
    ]
    return "\n".join(lines)


def select(patterns: list[str] | None) -> list[Read]:
    if not patterns:
        return list(READS.values())
    chosen = [
        read
        for key, read in READS.items()
        if any(fnmatch.fnmatchcase(key, p) or fnmatch.fnmatchcase(read.name, p) for p in patterns)
    ]
    if not chosen:
        raise SystemExit(f"--only {','.join(patterns)} matches no read; --list shows them.")
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7, help="timed calls per read, after one warm-up")
    parser.add_argument(
        "--only", type=lambda text: [p for p in text.split(",") if p], help="read names or name:variant, globs"
    )
    parser.add_argument("--no-write", action="store_true", help="print the section, leave docs/PERFORMANCE.md alone")
    parser.add_argument("--no-campaign", action="store_true", help="no bench campaign: skips the campaign report")
    parser.add_argument("--campaign-timeout", type=int, default=300, help="seconds the fixture's evaluation may take")
    parser.add_argument("--seed", type=int, default=18, help="for the random customers and purchase")
    parser.add_argument("--live-runs", type=int, help="timed calls of the live selectors (default: --runs)")
    parser.add_argument(
        "--section", default="interactive", help="the docs/PERFORMANCE.md section to write (one per data set size)"
    )
    parser.add_argument("--list", action="store_true", help="print the registered reads and stop")
    args = parser.parse_args()
    if args.list:
        for key, read in READS.items():
            print(f"{key:36} {read.label}")
        return
    if args.runs < 1:
        raise SystemExit("--runs must be at least 1.")
    if settings.EMBEDDED_DATABASE:
        raise SystemExit("Set DATABASE_URL to the benchmark's PostgreSQL database (not the embedded demo's).")
    reads = select(args.only)
    customers, purchases = fetch(
        "SELECT (SELECT count(*) FROM customers_customer), (SELECT count(*) FROM customers_purchase)"
    )[0]
    if not purchases:
        raise SystemExit("No purchases: load the data set with bench/generate.py first.")
    print(f"{customers:,} customers, {purchases:,} purchases; {len(reads)} reads x {args.runs} runs", flush=True)
    context: dict[str, Any] = {
        "customers": customers,
        "purchases": purchases,
        "runs": args.runs,
        "when": dt.datetime.now(dt.UTC),
    }
    load_start = os.getloadavg()[0]
    sizes = disk_sizes()  # before the fixtures: the data set's own size
    scored = fetch("SELECT EXISTS (SELECT 1 FROM metrics_customerscore)")[0][0]
    context["segments"] = "the stored nightly scores" if scored else "computed live (no nightly scores stored)"
    rng = random.Random(args.seed)
    cleanup()
    try:
        fx = Fixture(
            client=logged_in_client(),
            buyers=random_buyers(args.runs + 1, rng),
            top=fetch("SELECT id, external_id FROM customers_customer ORDER BY orders_count DESC, id LIMIT 1")[0],
            purchase_external_id=random_purchase(rng),
        )
        context["campaign"] = "No campaign."
        if not args.no_campaign and any(read.uses_campaign for read in reads):
            print("campaign fixture ...", flush=True)
            started = time.perf_counter()
            try:
                fx.campaign_id, messages, fx.message_customer = campaign_fixture(args.campaign_timeout)
            except DatabaseError as problem:  # the evaluation ran past the timeout: measure the rest
                print(f"  no campaign: {' '.join(str(problem).split())[:160]}", flush=True)
                context["campaign"] = (
                    f"No campaign: evaluating the reactivation campaign took longer than {args.campaign_timeout} s"
                    " and was cancelled."
                )
            else:
                print(f"  {messages:,} messages in {time.perf_counter() - started:.1f} s", flush=True)
                context["campaign"] = (
                    f"One reactivation campaign (email, 10 % control) evaluated now, its {messages:,} messages"
                    f" moved {CAMPAIGN_SENT_DAYS_AGO} days back and the queued ones marked sent then: the report,"
                    " the dashboard's campaign impact and the message lists read it."
                )
        results = measure(reads, fx, args.runs, args.live_runs)
        fx.client.logout()
    finally:
        cleanup()
    context["load"] = (load_start, os.getloadavg()[0])
    text = report(context, results, sizes)
    print()
    print(text)
    if args.no_write or args.only:
        print("\n(docs/PERFORMANCE.md not written: --no-write or --only)")
    else:
        performance_section_write(args.section, text)


if __name__ == "__main__":
    main()
