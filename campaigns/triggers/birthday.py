"""Birthday: the customer's birthday (month, day) is the date of ``now + days_before`` in the
customer's own time zone; someone born on 29 February celebrates on 28 February in other years
(SPEC §4). One message per customer and year.

The exact test runs per customer in SQL, but first the birthday index narrows the scan: across all
time zones (UTC-12 to UTC+14) ``now`` falls on at most two or three calendar dates, and only those
(month, day) pairs, plus 29 February where a 28 February is among them, can match.
"""

import datetime as dt
from typing import Any

from campaigns.sql import Sql, value
from campaigns.triggers.base import Candidates, EvaluationContext, Param, TriggerDefinition

EARLIEST_OFFSET = dt.timedelta(hours=-12)
LATEST_OFFSET = dt.timedelta(hours=14)


def possible_birthdays(now: dt.datetime, days_before: int) -> list[tuple[int, int]]:
    """Every (month, day) that is ``now + days_before`` somewhere on Earth."""
    utc = now.astimezone(dt.UTC).replace(tzinfo=None)
    first = (utc + EARLIEST_OFFSET).date() + dt.timedelta(days=days_before)
    last = (utc + LATEST_OFFSET).date() + dt.timedelta(days=days_before)
    pairs: list[tuple[int, int]] = []
    day = first
    while day <= last:
        pairs.append((day.month, day.day))
        if (day.month, day.day) == (2, 28):
            pairs.append((2, 29))
        day += dt.timedelta(days=1)
    return sorted(set(pairs))


class Birthday(TriggerDefinition):
    name = "birthday"
    label = "Birthday"
    description = "The customer's birthday is days_before days from now, in their own time zone."
    params = (Param("days_before", "Days before", "0: on the day; 7: a week ahead", 0, 0, 60),)

    def candidates(self, *, params: dict[str, Any], ctx: EvaluationContext) -> Candidates:
        pairs = possible_birthdays(ctx.now, params["days_before"])
        target = Sql.format(
            "((({now} AT TIME ZONE {tz})::date) + {days})",
            now=value(ctx.now, "timestamptz"),
            tz=ctx.customer_tz,
            days=value(params["days_before"], "integer"),
        )
        where = Sql.format(
            "(c.birth_month, c.birth_day) IN ({pairs})"
            " AND ((c.birth_month = extract(month FROM {t}) AND c.birth_day = extract(day FROM {t}))"
            # Born on 29 February: 28 February of a year without a 29th (the next day is 1 March).
            "      OR (c.birth_month = 2 AND c.birth_day = 29 AND extract(month FROM {t}) = 2"
            "          AND extract(day FROM {t}) = 28 AND extract(month FROM {t} + 1) = 3))",
            pairs=Sql.join([Sql("(%s, %s)", pair) for pair in pairs], ", "),
            t=target,
        )
        return Candidates(
            from_=Sql("customers_customer c"),
            where=where,
            dedupe_key=Sql.format("'c:' || c.id || ':year:' || extract(year FROM {t})::int", t=target),
            data=Sql.format("jsonb_build_object('birthday', {t})", t=target),
        )


TRIGGER = Birthday()
