"""The contact policy (SPEC §4): the frequency cap, its deferral, quiet hours and the customer's time
zone, as the SQL parts both the planning of messages (entering and advancing journeys) and the
send-time check (sending) are built from. One home, so the two verdicts cannot drift apart.
"""

import datetime as dt
from dataclasses import dataclass
from functools import cache

from django.conf import settings
from django.db import connection

from campaigns.models import ContactPolicy
from campaigns.sql import Sql, quiet_release, value

ADVISORY_LOCK_CLASS = 72_001  # first key of the per-customer cap locks (pg_advisory_xact_lock(int, int))

# Customers in id order: two senders locking overlapping customers queue up, never deadlock.
LOCK_CUSTOMERS_SQL = """
    SELECT pg_advisory_xact_lock(%s, mod(customer_id, 2147483647)::int)
    FROM unnest(%s::bigint[]) AS customer_id
"""


@dataclass(frozen=True)
class Policy:
    max_messages: int
    cap_days: int
    max_defer_hours: int
    quiet_hours_start: dt.time
    quiet_hours_end: dt.time

    @property
    def cap_window(self) -> dt.timedelta:
        return dt.timedelta(days=self.cap_days)

    @property
    def max_defer(self) -> dt.timedelta:
        return dt.timedelta(hours=self.max_defer_hours)

    def outside_quiet_hours(self, moment: Sql, tz: Sql) -> Sql:
        """The first time at or after ``moment`` when the customer may be contacted."""
        return quiet_release(moment, tz, self.quiet_hours_start, self.quiet_hours_end)

    def over_defer_limit(self, *, release: str, planned: str) -> Sql:
        """Whether a capped message would wait longer than ``max_defer_hours``: then it is suppressed."""
        return Sql.format(f"{release} > {planned} + {{max_defer}}", max_defer=value(self.max_defer, "interval"))

    def deferred_send_at(self, *, release: str, tz: str) -> Sql:
        """When a capped message goes out: its slot frees up, then quiet hours end."""
        return self.outside_quiet_hours(Sql(release), Sql(tz))


def contact_policy_get() -> Policy:
    policy, _ = ContactPolicy.objects.get_or_create(pk=ContactPolicy.SINGLETON_ID)
    return Policy(
        max_messages=policy.max_messages,
        cap_days=policy.cap_days,
        max_defer_hours=policy.max_defer_hours,
        quiet_hours_start=policy.quiet_hours_start,
        quiet_hours_end=policy.quiet_hours_end,
    )


@cache
def database_timezones() -> tuple[str, ...]:
    """The time zone names PostgreSQL knows (read once per process: the view reads files)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_timezone_names")
        return tuple(sorted(name for (name,) in cursor.fetchall()))


def customer_tz_sql(alias: str = "c") -> Sql:
    """The customer's time zone, or the store's if PostgreSQL does not know the name.

    Names are validated on every write, but the application's and the database's time zone data
    may differ in version; one unknown name must not abort every evaluation. The IN list is a
    hashed subplan, computed once per statement.
    """
    return Sql.format(
        f"CASE WHEN {alias}.timezone IN (SELECT unnest({{names}})) THEN {alias}.timezone ELSE {{store}} END",
        names=value(list(database_timezones()), "text[]"),
        store=value(settings.TIME_ZONE, "text"),
    )


def recent_sends_sql(*, customers: Sql | str, now: dt.datetime, policy: Policy) -> Sql:
    """For the customers ``customers`` selects, how many messages count against their cap
    (``sent``) and when, oldest first (``times``), one row per customer with any.

    Sending materialises it once per batch (at most a batch's customers); planning a journey's
    messages runs it per row as a lateral lookup on the cap index (``customers`` = that row's
    customer), which stays linear however many entries move at once.
    """
    return Sql.format(
        "SELECT w.customer_id, count(*) AS sent, array_agg(w.cap_at ORDER BY w.cap_at) AS times"
        " FROM campaigns_message w"
        " WHERE w.cap_at > {window_start} AND w.customer_id IN ({customers})"
        " GROUP BY w.customer_id",
        window_start=value(now - policy.cap_window, "timestamptz"),
        customers=customers if isinstance(customers, Sql) else Sql(customers),
    )


def cap_release_sql(*, recent: str, now: dt.datetime, policy: Policy, extra: str = "0") -> Sql:
    """When the customer's cap frees a slot for one more message; NULL when it has room now.

    ``recent`` is the alias of a row of ``recent_sends_sql`` (NULL columns: nothing in the window);
    ``extra`` counts messages ahead of this one that are not in the ledger's window yet. With n
    messages in the window (oldest first t1..tn) and ``extra`` ahead, this one needs
    n + extra + 1 <= max; otherwise the (n + extra + 1 - max)-th oldest must leave the window first,
    at t_k + cap_days. If that one is itself among ``extra`` (k > n), it leaves cap_days after now.
    """
    return Sql.format(
        f"CASE WHEN coalesce({recent}.sent, 0) + {extra} + 1 > {{max}}"
        f" THEN coalesce({recent}.times[(coalesce({recent}.sent, 0) + {extra} + 1 - {{max}})::int], {{now}})"
        " + {cap} END",
        max=value(policy.max_messages, "integer"),
        now=value(now, "timestamptz"),
        cap=value(policy.cap_window, "interval"),
    )
