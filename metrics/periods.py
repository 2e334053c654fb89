"""Time for metrics: the store's calendar, periods, the activity window W, and parameter checks.

Day and month boundaries are those of the store's TIME_ZONE (SPEC §5). Shifting a moment by
whole days is done on the store's wall clock, so "90 days before midnight" is midnight again on
both sides of a daylight-saving change.
"""

import datetime as dt
import zoneinfo
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.utils import timezone

from retention_crm import validation as v
from retention_crm.errors import ApplicationError

DEFAULT_WINDOW_DAYS = 90
MIN_WINDOW_DAYS = 1
MAX_WINDOW_DAYS = 3650
DEFAULT_PERIOD_DAYS = 30
# Ten years is more history than any figure here needs; longer ranges are a typo or an attack.
MAX_PERIOD_DAYS = 3660
DEFAULT_COHORT_MONTHS = 12
MAX_COHORT_MONTHS = 120


def store_tz() -> zoneinfo.ZoneInfo:
    """Read on every call, not at import: tests and the admin may change TIME_ZONE."""
    return zoneinfo.ZoneInfo(settings.TIME_ZONE)


def local_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=store_tz())


def local_day_of_midnight(moment: dt.datetime) -> dt.date | None:
    """The store-local date ``moment`` is the midnight of, or None when it is not a local midnight."""
    day = moment.astimezone(store_tz()).date()
    return day if local_midnight(day) == moment else None


def shift_days(moment: dt.datetime, days: int) -> dt.datetime:
    """``moment`` plus ``days`` on the store's wall clock (aware arithmetic in one zone is wall time)."""
    return moment.astimezone(store_tz()) + dt.timedelta(days=days)


def month_start(moment: dt.datetime) -> dt.datetime:
    local = moment.astimezone(store_tz())
    return local_midnight(local.date().replace(day=1))


def add_months(moment: dt.datetime, months: int) -> dt.datetime:
    """The first instant of the store-local month ``months`` after the one ``moment`` falls in."""
    local = moment.astimezone(store_tz())
    index = local.year * 12 + local.month - 1 + months
    return local_midnight(dt.date(index // 12, index % 12 + 1, 1))


def today_start() -> dt.datetime:
    return local_midnight(timezone.now().astimezone(store_tz()).date())


@dataclass(frozen=True)
class Period:
    """``[start, end)``, both aware."""

    start: dt.datetime
    end: dt.datetime

    @property
    def days(self) -> float:
        return (self.end - self.start).total_seconds() / 86_400


def parse_moment(value: Any, field: str) -> dt.datetime:
    """A date (midnight, store time) or an ISO 8601 datetime (naive ones read in store time)."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return local_midnight(value)
    return v.clean_datetime(value, field)


def parse_window(value: Any, field: str = "window_days") -> int:
    if value in (None, ""):
        return DEFAULT_WINDOW_DAYS
    try:
        window = int(str(value).strip())
    except ValueError:
        raise v.invalid(field, "must be a whole number of days") from None
    if not MIN_WINDOW_DAYS <= window <= MAX_WINDOW_DAYS:
        raise v.invalid(field, f"must be between {MIN_WINDOW_DAYS} and {MAX_WINDOW_DAYS}")
    return window


def parse_period(
    start: Any, end: Any, *, default_days: int = DEFAULT_PERIOD_DAYS, max_days: int = MAX_PERIOD_DAYS
) -> Period:
    """Both ends optional: ``end`` defaults to midnight starting today, ``start`` to ``default_days`` before it."""
    end_at = today_start() if end in (None, "") else parse_moment(end, "end")
    start_at = shift_days(end_at, -default_days) if start in (None, "") else parse_moment(start, "start")
    if end_at <= start_at:
        raise ApplicationError("end must be after start.", code="invalid", fields={"end": ["must be after start"]})
    if end_at - start_at > dt.timedelta(days=max_days):
        raise ApplicationError(
            f"The period is longer than {max_days} days.",
            code="invalid",
            fields={"end": [f"at most {max_days} days after start"]},
        )
    return Period(start_at, end_at)


def parse_as_of(value: Any, field: str = "as_of") -> dt.datetime:
    return timezone.now() if value in (None, "") else parse_moment(value, field)


def parse_cohort_period(start: Any, end: Any) -> Period:
    """``end`` defaults to midnight starting today, ``start`` to the first day of the month
    ``DEFAULT_COHORT_MONTHS - 1`` months before ``end``'s; at most ``MAX_COHORT_MONTHS`` months."""
    end_at = today_start() if end in (None, "") else parse_moment(end, "end")
    if start in (None, ""):
        start_at = add_months(end_at - dt.timedelta(microseconds=1), -(DEFAULT_COHORT_MONTHS - 1))
    else:
        start_at = parse_moment(start, "start")
    if end_at <= start_at:
        raise ApplicationError("end must be after start.", code="invalid", fields={"end": ["must be after start"]})
    if add_months(start_at, MAX_COHORT_MONTHS) < end_at:
        raise ApplicationError(
            f"At most {MAX_COHORT_MONTHS} months of cohorts.",
            code="invalid",
            fields={"end": [f"at most {MAX_COHORT_MONTHS} months after start"]},
        )
    return Period(start_at, end_at)
