"""Everything the analysts' dashboard shows, gathered in a fixed number of queries."""

import datetime as dt
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.db.models import Exists, OuterRef
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import SafeString

from metrics import charts, jobs, rfm
from metrics.cohorts import Cohort, cohort_matrix_from_rollups
from metrics.jobs import PeriodFigures, dashboard_job_key, figures_load, metrics_job_request, period_figures_compute
from metrics.models import DailySnapshot, MetricsJob, MetricsJobStatus
from metrics.periods import DEFAULT_COHORT_MONTHS, Period, add_months, shift_days, store_tz
from metrics.read_jobs import read_answer
from metrics.retention import Retention, retention_from_rollups
from metrics.rfm_flow import FROM_SEGMENTS, FlowDates, SegmentFlow, parse_flow_dates
from metrics.selectors import snapshot_series, stored_segment_sizes
from metrics.summary import Summary, summary_from_rollups
from retention_crm.money import money

TREND_DAYS = 180


@dataclass(frozen=True)
class CohortRow:
    cohort: Cohort
    cells: list[tuple[float, str]]  # (share, inline style) for months 0, 1, ...


@dataclass(frozen=True)
class CampaignImpactRow:
    campaign_id: int
    name: str
    impact: dict[str, Any]
    chart: SafeString
    # Worded by the campaigns app, exactly as in its campaign editor (one formatting path).
    display: Any

    @property
    def uplift_text(self) -> str:
        text: str = self.display.uplift_summary
        return text


@dataclass(frozen=True)
class FlowSection:
    """The segment flow between two dates. The dashboard never scores them in its own request (it
    reads rollups only): it embeds the chart from ``chart_url`` when the shop is small enough to
    score both dates quickly (``embed``), else links to the flow page. The flow page and the
    embedded chart compute it (``flow`` and ``chart`` set)."""

    dates: FlowDates
    embed: bool = False
    flow: SegmentFlow | None = None
    chart: SafeString | None = None
    # On a large shop a worker scores the two dates (metrics/read_jobs.py): its job, while it runs.
    job: MetricsJob | None = None

    @property
    def computing(self) -> bool:
        return self.flow is None and self.job is not None

    @property
    def query(self) -> str:
        return urlencode({"from": self.dates.start.isoformat(), "to": self.dates.end.isoformat()})

    @property
    def height(self) -> int:
        return FLOW_CHART_HEIGHT

    @property
    def chart_url(self) -> str:
        return f"{reverse('admin:metrics_dashboard_flow_chart')}?{self.query}"


FLOW_CHART_HEIGHT = 330  # the heatmap's height: a heading and nine rows (charts.flow_heatmap)


def flow_page_url(dates: FlowDates, **cell: str) -> str:
    query = {"from": dates.start.isoformat(), "to": dates.end.isoformat(), **cell}
    return f"{reverse('admin:metrics_dashboard_flow')}?{urlencode(query)}"


def flow_scan_is_small(end: dt.datetime) -> bool:
    """Whether scoring as of ``end`` reads few purchases (every one before it): then the flow's
    chart is embedded in the dashboard and a cell's customers are listed during the request."""
    return jobs.live_scan_is_small(first=dt.datetime.min.replace(tzinfo=dt.UTC), end=end)


def default_flow_dates() -> FlowDates:
    """The last quarter, up to now."""
    return parse_flow_dates(None, timezone.now().replace(microsecond=0).isoformat())


def flow_section_planned() -> FlowSection:
    """The dashboard's flow section: the last quarter, embedded or linked, nothing computed."""
    dates = default_flow_dates()
    return FlowSection(dates=dates, embed=flow_scan_is_small(dates.end))


def flow_section(*, dates: FlowDates) -> FlowSection:
    """The flow for ``dates`` as a heatmap whose cells link to their customers: computed now on a
    small shop, else by a worker (no flow while its job runs)."""
    answer = read_answer(read="rfm_flow", start=dates.start, end=dates.end, window_days=0)
    if answer.body is None:
        return FlowSection(dates=dates, job=answer.job)
    flow = SegmentFlow(start=dates.start, end=dates.end, flow=answer.body["flow"])
    chart = charts.flow_heatmap(
        title=f"RFM segment flow, {dates.start:%Y-%m-%d} to {dates.end:%Y-%m-%d}",
        rows=list(FROM_SEGMENTS),
        columns=list(rfm.SEGMENTS),
        counts=flow.flow,
        link=lambda source, target: flow_page_url(dates, from_segment=source, to_segment=target),
    )
    return FlowSection(dates=dates, flow=flow, chart=chart, job=answer.job)


@dataclass(frozen=True)
class Dashboard:
    period: Period
    window_days: int
    # None while a worker computes them (``job`` says how far it got).
    retention: Retention | None
    summary: Summary | None
    snapshots: list[DailySnapshot]
    trend_chart: SafeString | None
    cohorts: list[CohortRow] | None
    cohort_months: int
    segment_counts: dict[str, int]
    segments_as_of: dt.datetime | None
    segments_stored: bool
    segment_chart: SafeString
    nps_chart: SafeString | None
    campaign_impacts: list[CampaignImpactRow]
    flow: FlowSection
    job: MetricsJob | None = None  # the worker's job, when the period's figures come from one

    @property
    def computing(self) -> bool:
        return self.retention is None

    def cards(self) -> list[dict[str, Any]]:
        r, s = self.retention, self.summary
        if r is None or s is None:
            return []
        return [
            {"key": "crr", "label": "CRR", "value": _percent(r.crr)},
            {"key": "churn_rate", "label": "Churn", "value": _percent(r.churn_rate)},
            {"key": "customers_start", "label": "Active at start (S)", "value": f"{r.customers_start:,}"},
            {"key": "customers_end", "label": "Active at end (E)", "value": f"{r.customers_end:,}"},
            {"key": "new_customers", "label": "New", "value": f"{r.new_customers:,}"},
            {"key": "retained", "label": "Retained", "value": f"{r.retained:,}"},
            {"key": "reactivated", "label": "Reactivated", "value": f"{r.reactivated:,}"},
            {"key": "lost", "label": "Lost", "value": f"{r.lost:,}"},
            {"key": "repeat_purchase_rate", "label": "Repeat purchase rate", "value": _percent(s.repeat_purchase_rate)},
            {"key": "aov", "label": "AOV", "value": money(s.aov)},
            {"key": "arpu", "label": "ARPU", "value": money(s.arpu)},
            {"key": "arppu", "label": "ARPPU", "value": money(s.arppu)},
            {"key": "clv", "label": "Historical CLV", "value": money(s.clv)},
            {"key": "nps", "label": "NPS", "value": "—" if s.nps.score is None else f"{s.nps.score:.0f}"},
        ]


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


DASHBOARD_CAMPAIGNS = 5  # the most recent campaigns that have reached anybody


def campaign_impact_rows(*, limit: int = DASHBOARD_CAMPAIGNS) -> list[CampaignImpactRow]:
    """Treated vs control conversion for the latest campaigns that sent or held out anything."""
    # Imported here: the campaigns app itself reads metrics (audiences, the z-test).
    from campaigns.display import impact_display
    from campaigns.models import Campaign, MessageOutcome
    from campaigns.selectors import campaign_impact

    # A campaign reached somebody when a customer has a first member (sent or held-out) message in
    # it: one probe of the outcomes' index per campaign, newest first, where a join with the
    # messages would read every message of the large ones (seconds at millions).
    reached = MessageOutcome.objects.filter(campaign_id=OuterRef("pk"), campaign_first=True)
    rows = []
    for campaign in Campaign.objects.filter(Exists(reached)).order_by("-pk")[:limit]:
        impact = campaign_impact(campaign=campaign)
        chart = charts.rate_bars(
            title=f"Conversion within {impact['attribution_days']} days: {campaign.name}",
            labels=["treated", "control"],
            rates=[impact["treated"]["conversion_rate"], impact["control"]["conversion_rate"]],
        )
        shown = impact_display(impact, holdout_percent=campaign.holdout_percent)
        rows.append(CampaignImpactRow(campaign.pk, campaign.name, impact, chart, shown))
    return rows


def fast_period_figures(*, period: Period, cohort_start: dt.datetime, window_days: int) -> PeriodFigures | None:
    """The period's figures from the rollups alone, or None if any of them would scan purchases."""
    table = retention_from_rollups(start=period.start, end=period.end, window_days=window_days)
    figures = summary_from_rollups(start=period.start, end=period.end, window_days=window_days, scan=False)
    cohorts = cohort_matrix_from_rollups(start=cohort_start, end=period.end)
    if table is None or figures is None or cohorts is None:
        return None
    return PeriodFigures(retention=table, summary=figures, cohorts=cohorts)


def _scan_is_small(*, period: Period, cohort_start: dt.datetime, window_days: int) -> bool:
    """Whether the live selectors would read few purchases (from the earliest moment they read)."""
    return jobs.live_scan_is_small(first=min(shift_days(period.start, -window_days), cohort_start), end=period.end)


def period_figures(
    *, period: Period, cohort_start: dt.datetime, window_days: int
) -> tuple[PeriodFigures | None, MetricsJob | None]:
    """From the rollups; else computed now if the scan is small; else from a worker's job (None
    while it runs)."""
    params: dict[str, Any] = {"period": period, "cohort_start": cohort_start, "window_days": window_days}
    figures = fast_period_figures(**params)
    if figures is not None:
        return figures, None
    if _scan_is_small(**params):
        return period_figures_compute(**params), None
    job = metrics_job_request(key=dashboard_job_key(**params))
    if job.status == MetricsJobStatus.DONE and job.result is not None:
        return figures_load(job.result), job
    return None, job


def dashboard_build(*, period: Period, window_days: int) -> Dashboard:
    """The figures for ``period``, the trend from daily snapshots, the cohorts of the last
    ``DEFAULT_COHORT_MONTHS`` months up to the period's end, and the RFM segment sizes."""
    cohort_start = add_months(period.end - dt.timedelta(microseconds=1), -(DEFAULT_COHORT_MONTHS - 1))
    figures, job = period_figures(period=period, cohort_start=cohort_start, window_days=window_days)

    since = period.end.astimezone(store_tz()).date() - dt.timedelta(days=TREND_DAYS)
    snapshots = snapshot_series(since=since)
    trend = None
    if snapshots:
        trend = charts.line_chart(
            title="CRR and churn, rolling 30 days",
            days=[s.date for s in snapshots],
            series=[
                charts.Series("CRR", [s.crr for s in snapshots]),
                charts.Series("Churn", [s.churn_rate for s in snapshots]),
            ],
        )

    cohorts = None
    if figures is not None:
        cohorts = [
            CohortRow(cohort, [(share, charts.heat_style(share)) for share in cohort.retention])
            for cohort in figures.cohorts
        ]

    stored = stored_segment_sizes()
    if stored.computed_at is not None:
        counts, as_of, from_store = stored.counts, stored.computed_at, True
    else:  # before the first nightly refresh: compute them now
        as_of = timezone.now()
        counts, from_store = rfm.segment_counts(as_of=as_of), False

    nps = figures.summary.nps if figures is not None else None
    return Dashboard(
        period=period,
        window_days=window_days,
        retention=figures.retention if figures is not None else None,
        summary=figures.summary if figures is not None else None,
        snapshots=snapshots,
        trend_chart=trend,
        cohorts=cohorts,
        cohort_months=DEFAULT_COHORT_MONTHS,
        segment_counts=counts,
        segments_as_of=as_of,
        segments_stored=from_store,
        segment_chart=charts.bar_chart(
            title="Customers per RFM segment", labels=list(counts), values=list(counts.values())
        ),
        nps_chart=None
        if nps is None
        else charts.nps_bar(promoters=nps.promoters, passives=nps.passives, detractors=nps.detractors),
        campaign_impacts=campaign_impact_rows(),
        flow=flow_section_planned(),
        job=job,
    )
