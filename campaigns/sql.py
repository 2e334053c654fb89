"""A tiny SQL builder: text with ``%s`` placeholders plus its parameters, composable with ``+``.

Campaign evaluation is one statement assembled from parts (the trigger's candidates, the audience,
the contact policy). Keeping each part's parameters next to its text makes the parts composable
without string formatting of values, and lets a part embed a Django queryset compiled to SQL (the
loyalty and metrics selectors), whose placeholders are positional too.
"""

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db.models import QuerySet


@dataclass(frozen=True)
class Sql:
    text: str
    params: tuple[Any, ...] = field(default_factory=tuple)

    def __add__(self, other: "Sql | str") -> "Sql":
        if isinstance(other, str):
            return Sql(self.text + other, self.params)
        return Sql(self.text + other.text, self.params + other.params)

    def __radd__(self, other: str) -> "Sql":
        return Sql(other + self.text, self.params)

    @staticmethod
    def format(template: str, **parts: "Sql | str") -> "Sql":
        """``template`` with each ``{name}`` replaced by a part; parameters follow in text order.

        Literal braces are not supported (SQL here has none); ``%`` in the template must be ``%%``.
        """
        result = Sql("")
        position = 0
        for match in re.finditer(r"\{(\w+)\}", template):
            part = parts[match.group(1)]
            result = result + template[position : match.start()] + part
            position = match.end()
        return result + template[position:]

    @staticmethod
    def join(parts: Iterable["Sql | str"], separator: str) -> "Sql":
        result = Sql("")
        for index, part in enumerate(parts):
            result = result + (separator if index else "") + part
        return result

    def wrap(self) -> "Sql":
        return "(" + self + ")"


def value(param: Any, cast: str = "") -> Sql:
    """One parameter, optionally cast (``value(now, "timestamptz")``)."""
    return Sql(f"%s::{cast}" if cast else "%s", (param,))


def queryset_sql(queryset: QuerySet) -> Sql:
    """A queryset compiled to SQL, to embed as a subquery (another app's selector)."""
    text, params = queryset.query.sql_with_params()
    return Sql(text, tuple(params))


def epoch_us(expression: str) -> str:
    """A timestamp as whole microseconds since the epoch: an exact, compact text key part."""
    return f"floor(extract(epoch FROM {expression}) * 1000000)::bigint"


def all_of(conditions: Sequence[Sql | str]) -> Sql:
    return Sql.join([part.wrap() if isinstance(part, Sql) else f"({part})" for part in conditions], " AND ")


def quiet_release(moment: Sql, tz: Sql, start: dt.time, end: dt.time) -> Sql:
    """The first time at or after ``moment`` outside the quiet hours [start, end) in time zone ``tz``.

    start == end means no quiet hours; start > end spans midnight (21:00-09:00). Which case applies is
    known in Python, so the SQL carries only the branch needed. A local time that does not exist
    (a DST gap) is read by PostgreSQL's AT TIME ZONE rules, i.e. shifted forward.
    """
    if start == end:
        return moment
    parts = {"m": moment, "tz": tz, "start": value(start, "time"), "end": value(end, "time")}
    if start > end:
        return Sql.format(
            "CASE WHEN ({m} AT TIME ZONE {tz})::time >= {start}"
            " THEN ((({m} AT TIME ZONE {tz})::date + 1) + {end}) AT TIME ZONE {tz}"
            " WHEN ({m} AT TIME ZONE {tz})::time < {end}"
            " THEN (({m} AT TIME ZONE {tz})::date + {end}) AT TIME ZONE {tz}"
            " ELSE {m} END",
            **parts,
        )
    return Sql.format(
        "CASE WHEN ({m} AT TIME ZONE {tz})::time >= {start} AND ({m} AT TIME ZONE {tz})::time < {end}"
        " THEN (({m} AT TIME ZONE {tz})::date + {end}) AT TIME ZONE {tz}"
        " ELSE {m} END",
        **parts,
    )
