"""manage.py metrics_report in its three formats, and its refusals."""

import csv
import io
import json

import pytest
from django.core.management import CommandError, call_command

from tests.metrics.test_retention import textbook_shop

pytestmark = pytest.mark.django_db
PERIOD = {"start": "2026-03-01", "end": "2026-04-01", "window": "90"}


def report(**options) -> str:
    out = io.StringIO()
    call_command("metrics_report", stdout=out, **options)
    return out.getvalue()


@pytest.fixture
def shop():
    textbook_shop(at_start=30, new=8, lost=2)


def test_table(shop):
    text = report(**PERIOD, format="table")
    lines = [line.split() for line in text.splitlines()]
    assert ["crr", "93.3", "%"] in lines
    assert ["churn_rate", "6.7", "%"] in lines
    assert ["customers_start", "30"] in lines
    assert ["aov", "50.00"] in lines
    assert ["nps", "—"] in lines


def test_json(shop):
    figures = json.loads(report(**PERIOD, format="json"))
    assert figures["retention"]["crr"] == pytest.approx(28 / 30)
    assert figures["retention"]["start"] == "2026-03-01T00:00:00Z"
    assert figures["summary"]["revenue"] == "1800.00"  # 36 March orders of 50.00
    assert figures["summary"]["nps"] is None


def test_csv(shop):
    rows = list(csv.reader(io.StringIO(report(**PERIOD, format="csv"))))
    assert rows[0] == ["section", "figure", "value"]
    values = {(section, figure): value for section, figure, value in rows[1:]}
    assert values[("retention", "lost")] == "2"
    assert float(values[("retention", "crr")]) == pytest.approx(0.933333, abs=1e-6)
    assert values[("summary", "aov")] == "50.00"
    assert values[("summary", "clv")] == "86.84"  # (28 x 100 + 2 x 50 + 8 x 50) / 38 customers


@pytest.mark.parametrize(
    "options",
    [
        {"start": "2026-04-01", "end": "2026-03-01"},
        {"start": "not-a-date"},
        {"window": "0"},
        {"window": "many"},
    ],
)
def test_bad_options_are_command_errors(options):
    with pytest.raises(CommandError):
        report(**options)
