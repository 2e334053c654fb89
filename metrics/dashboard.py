"""Everything the analysts' dashboard shows, gathered in a fixed number of queries."""

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.utils import timezone
from django.utils.safestring import SafeString

from metrics import charts, rfm
from metrics.cohorts import Cohort, cohort_matrix
from metrics.models import DailySnapshot
from metrics.periods import DEFAULT_COHORT_MONTHS, Period, add_months, store_tz
from metrics.retention import Retention, retention
from metrics.selectors import snapshot_series, stored_segment_sizes
from metrics.summary import Summary, summary
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
        return self.display.uplift_summary


@dataclass(frozen=True)
class Dashboard:
    period: Period
    window_days: int
    retention: Retention
    summary: Summary
    snapshots: list[DailySnapshot]
    trend_chart: SafeString | None
    cohorts: list[CohortRow]
    cohort_months: int
    segment_counts: dict[str, int]
    segments_as_of: dt.datetime | None
    segments_stored: bool
    segment_chart: SafeString
    nps_chart: SafeString
    campaign_impacts: list[CampaignImpactRow]

    def cards(self) -> list[dict[str, Any]]:
        r, s = self.retention, self.summary
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
    from campaigns.models import Campaign
    from campaigns.selectors import campaign_impact

    rows = []
    for campaign in Campaign.objects.filter(messages__touched_at__isnull=False).distinct().order_by("-pk")[:limit]:
        impact = campaign_impact(campaign=campaign)
        chart = charts.rate_bars(
            title=f"Conversion within {impact['attribution_days']} days: {campaign.name}",
            labels=["treated", "control"],
            rates=[impact["treated"]["conversion_rate"], impact["control"]["conversion_rate"]],
        )
        shown = impact_display(impact, holdout_percent=campaign.holdout_percent)
        rows.append(CampaignImpactRow(campaign.pk, campaign.name, impact, chart, shown))
    return rows


def dashboard_build(*, period: Period, window_days: int) -> Dashboard:
    """The figures for ``period``, the trend from daily snapshots, the cohorts of the last
    ``DEFAULT_COHORT_MONTHS`` months up to the period's end, and the RFM segment sizes."""
    table = retention(start=period.start, end=period.end, window_days=window_days)
    figures = summary(start=period.start, end=period.end, window_days=window_days)

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

    cohort_start = add_months(period.end - dt.timedelta(microseconds=1), -(DEFAULT_COHORT_MONTHS - 1))
    cohorts = [
        CohortRow(cohort, [(share, charts.heat_style(share)) for share in cohort.retention])
        for cohort in cohort_matrix(start=cohort_start, end=period.end)
    ]

    stored = stored_segment_sizes()
    if stored.computed_at is not None:
        counts, as_of, from_store = stored.counts, stored.computed_at, True
    else:  # before the first nightly refresh: compute them now
        as_of = timezone.now()
        counts, from_store = rfm.segment_counts(as_of=as_of), False

    return Dashboard(
        period=period,
        window_days=window_days,
        retention=table,
        summary=figures,
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
        nps_chart=charts.nps_bar(
            promoters=figures.nps.promoters, passives=figures.nps.passives, detractors=figures.nps.detractors
        ),
        campaign_impacts=campaign_impact_rows(),
    )
