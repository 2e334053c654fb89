"""manage.py metrics_report: the retention table and the period's figures as a table, JSON or CSV.

manage.py metrics_report --start 2026-03-01 --end 2026-04-01 --window 90 --format table
"""

import csv
import json
from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.serializers.json import DjangoJSONEncoder

from metrics.periods import parse_period, parse_window
from metrics.retention import retention
from metrics.summary import summary
from retention_crm.errors import ApplicationError

FORMATS = ("table", "json", "csv")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


class Command(BaseCommand):
    help = "Print CRR, churn and the period's summary figures (SPEC §5) as a table, JSON or CSV."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--start", help="Date (midnight, store time) or ISO datetime; default: end - 30 days")
        parser.add_argument("--end", help="Date or ISO datetime, exclusive; default: midnight starting today")
        parser.add_argument("--window", help="W in days, 1 to 3650; default 90")
        parser.add_argument("--format", choices=FORMATS, default="table")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            period = parse_period(options["start"], options["end"])
            window = parse_window(options["window"], "window")
        except ApplicationError as error:
            raise CommandError(error.message if not error.fields else f"{error.message} {error.fields}") from None
        figures = {
            "retention": retention(start=period.start, end=period.end, window_days=window).as_dict(),
            "summary": summary(start=period.start, end=period.end, window_days=window).as_dict(),
        }
        render = {"table": self._table, "json": self._json, "csv": self._csv}[options["format"]]
        render(figures)

    def _rows(self, figures: dict[str, dict[str, Any]]) -> list[tuple[str, str, Any]]:
        rows = []
        for section, values in figures.items():
            for name, value in values.items():
                if section == "summary" and name in ("start", "end", "window_days"):
                    continue  # said once, in the retention section
                rows.append((section, name, value))
        return rows

    def _table(self, figures: dict[str, dict[str, Any]]) -> None:
        rows = self._rows(figures)
        width = max(len(name) for _, name, _ in rows)
        current = None
        for section, name, value in rows:
            if section != current:
                self.stdout.write(("" if current is None else "\n") + section)
                current = section
            shown = "—" if value is None else _text(value)
            if isinstance(value, float) and name in ("crr", "churn_rate", "repeat_purchase_rate"):
                shown = f"{100 * value:.1f} %"
            self.stdout.write(f"  {name:<{width}}  {shown}")

    def _json(self, figures: dict[str, dict[str, Any]]) -> None:
        # Money as strings, as in the API: a float would round it.
        self.stdout.write(json.dumps(figures, cls=DjangoJSONEncoder, indent=2))

    def _csv(self, figures: dict[str, dict[str, Any]]) -> None:
        writer = csv.writer(self.stdout, lineterminator="\n")
        writer.writerow(["section", "figure", "value"])
        for section, name, value in self._rows(figures):
            writer.writerow([section, name, _text(value) if not isinstance(value, Decimal) else str(value)])
