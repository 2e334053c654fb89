"""Reading a customers CSV and writing it set-based, for ``manage.py import_customers`` (SPEC §7).

One line per customer, keyed on ``external_id``. Each row is validated in Python with the shared
input rules (``retention_crm.validation``, the cleaners ``customer_upsert`` uses), by a
reading thread while the previous batch is written. A batch of valid rows goes into a temporary
table with COPY, then each step is one statement whatever the batch's size: lock the stored
customers the batch changes, update them, insert the new ones, link referrers, upsert consents
with their history; and the welcome bonus of the new customers through the loyalty services. A
row that changes nothing writes nothing (not even a row lock); a bad row writes nothing and the
others of its batch are still written.

What a cell means: an empty cell leaves the stored value as it is (a new customer gets the
default). ``tags`` are separated by ``|``; ``attributes`` is a JSON object and ``attr.<name>``
columns set one key each (as text); both are merged into the stored attributes, key by key.
``consent.<channel>`` takes true/false/yes/no/1/0, recorded with source ``import`` at the time in
``consent.<channel>.at`` (default: when the import started).

Memory stays flat in the file's size: a batch is held at a time, and the ids already seen in this
file (to refuse a customer's second line) are kept in a temporary table, not in Python. Rows whose
referrer comes later in the file wait for it (at most ``MAX_WAITING_ROWS`` at a time).
"""

import contextlib
import datetime as dt
import json
import math
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from django.db import DatabaseError, connection, reset_queries, transaction
from django.utils import timezone

from campaigns.exits import entries_exit_for_customers  # campaigns: journeys end on a revoked consent
from customers.csv_common import (
    CsvImportError,
    CsvSource,
    RowError,
    batches,
    collector_relaxed,
    column_list,
    statistics_refresh,
)
from customers.csv_common import mapping_parse as mapping_parse_for
from customers.loyalty.services import points_welcome_for_customers
from customers.models import Channel, ConsentSource, Customer
from customers.services.bulk import UNEXPECTED_AT_INSERT
from customers.services.customers import _CLEANERS as CUSTOMER_CLEANERS
from retention_crm import validation as v
from retention_crm.errors import ApplicationError

FIELDS = (
    "external_id",
    "email",
    "phone",
    "first_name",
    "last_name",
    "birth_date",
    "timezone",
    "tags",
    "attributes",
    "referred_by",
    "created_at",
)
ATTRIBUTE_PREFIX = "attr."
CONSENT_PREFIX = "consent."
CONSENT_TIME_SUFFIX = ".at"
TAG_SEPARATOR = "|"
CONSENT_WORDS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
TEXT_FIELDS = ("email", "phone", "first_name", "last_name", "birth_date", "timezone")  # one cleaner each
BATCH_ROWS = 5_000
MAX_BATCH_ROWS = 50_000
MAX_WAITING_ROWS = 100_000  # rows held for a referrer further down the file

CREATED, UPDATED, UNCHANGED, ERROR = "created", "updated", "unchanged", "error"
STATUSES = (CREATED, UPDATED, UNCHANGED, ERROR)


def fields_described() -> str:
    channels = "|".join(Channel.values)
    return f"{', '.join(FIELDS)}, attr.<name>, consent.<{channels}>, consent.<channel>.at"


def field_problem(name: str) -> str | None:
    """Why ``name`` is not a customer field of the file, or None when it is one."""
    if name in FIELDS:
        return None
    if name.startswith(ATTRIBUTE_PREFIX):
        key = name.removeprefix(ATTRIBUTE_PREFIX)
        if not key:
            return "an attribute column needs a name, e.g. attr.plan"
        return v.text_problem(key)
    if name.startswith(CONSENT_PREFIX):
        channel = name.removeprefix(CONSENT_PREFIX).removesuffix(CONSENT_TIME_SUFFIX)
        if channel not in Channel.values:
            return f"unknown consent channel {channel!r}; the channels are {', '.join(Channel.values)}"
        return None
    return "unknown field"


def mapping_parse(pairs: Iterable[str]) -> dict[str, str]:
    """``["external_id=client_no", ...]`` as ``{"external_id": "client_no"}``; refuses unknown fields
    (this file's fields include patterns, ``attr.<name>`` and ``consent.<channel>``)."""

    def problem(name: str) -> str | None:
        reason = field_problem(name)
        return None if reason is None else f"{name!r}: {reason}"

    return mapping_parse_for(
        pairs, field_problem=problem, fields_text=fields_described(), example="external_id=client_no"
    )


@dataclass(frozen=True)
class Layout:
    """Which column of the file holds which customer field."""

    columns: dict[str, str]  # field -> column name in the file
    positions: dict[str, int]  # field -> index of that column in a row
    width: int  # number of columns in the header
    attributes: tuple[tuple[str, str], ...]  # (attribute key, its field attr.<key>)
    consents: tuple[tuple[str, str, str | None], ...]  # (channel, its field, the field of its time or None)


def _unknown_column(index: int, name: str) -> str:
    if not name:
        return f"(unnamed column {index + 1})"
    problem = field_problem(name)
    return repr(name) if problem == "unknown field" else f"{name!r} ({problem})"


def layout_from_header(header: list[str], mapping: dict[str, str], *, ignore_unknown_columns: bool) -> Layout:
    """Match the header to the fields: ``mapping`` first, then columns named like a field."""
    names = [name.strip() for name in header]
    repeated = [name for name in dict.fromkeys(names) if names.count(name) > 1]
    if repeated:
        raise CsvImportError(f"the header has these columns more than once: {column_list(repeated)}")
    for name, column in mapping.items():
        if column not in names:
            raise CsvImportError(
                f"--map {name}={column}: the file has no column {column!r}; its columns are {column_list(names)}"
            )
    columns = dict(mapping)
    claimed = set(mapping.values())
    for name in names:
        # A column mapped to another field is not also read as the field it is named after.
        if name not in claimed and name not in columns and field_problem(name) is None:
            columns[name] = name
    if "external_id" not in columns:
        raise CsvImportError(
            f"missing required column: external_id; the file's columns are {column_list(names)} "
            "(name a differently called column with --map external_id=column)"
        )
    for name in columns:
        if name.endswith(CONSENT_TIME_SUFFIX) and name.removesuffix(CONSENT_TIME_SUFFIX) not in columns:
            raise CsvImportError(f"column for {name} without one for {name.removesuffix(CONSENT_TIME_SUFFIX)}")
    used = set(columns.values())
    unknown = [_unknown_column(i, name) for i, name in enumerate(names) if name not in used]
    if unknown and not ignore_unknown_columns:
        raise CsvImportError(
            f"unknown columns: {', '.join(unknown)}; map them with --map field=column or pass "
            f"--ignore-unknown-columns (the fields are {fields_described()})"
        )
    consents = []
    for channel in Channel.values:
        name = f"{CONSENT_PREFIX}{channel}"
        if name in columns:
            time_name = f"{name}{CONSENT_TIME_SUFFIX}"
            consents.append((channel, name, time_name if time_name in columns else None))
    return Layout(
        columns=columns,
        positions={name: names.index(column) for name, column in columns.items()},
        width=len(names),
        attributes=tuple(
            (name.removeprefix(ATTRIBUTE_PREFIX), name) for name in columns if name.startswith(ATTRIBUTE_PREFIX)
        ),
        consents=tuple(consents),
    )


class CustomerCsv(CsvSource[Layout]):
    """One customers CSV (see CsvSource), one customer a row."""

    def __init__(self, path: str | Path, **options: Any) -> None:
        super().__init__(path, layout_from_header=layout_from_header, **options)


# --- One row -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowResult:
    external_id: str
    status: str  # one of STATUSES
    line: int
    end_line: int
    errors: tuple[RowError, ...] = ()


@dataclass(slots=True)
class CustomerRow:
    """A valid row, cleaned: only the fields whose cells were not empty."""

    line: int
    end_line: int
    external_id: str
    values: dict[str, Any]  # customer column -> cleaned value
    attributes: dict[str, Any] | None  # keys to merge into the stored attributes
    consents: dict[str, tuple[bool, dt.datetime]]  # channel -> (granted, at)
    referrer: str | None  # the referrer's external_id

    def failed(self, name: str, message: str, *, layout: Layout, code: str = "invalid") -> RowResult:
        error = RowError(self.line, self.external_id, name, layout.columns.get(name, ""), code, message)
        return RowResult(self.external_id, ERROR, self.line, self.end_line, (error,))


class _RowCleaner:
    """Collects every problem of one row, each at its field and column."""

    def __init__(self, layout: Layout, line: int, cells: list[str]) -> None:
        self.layout, self.line, self.cells = layout, line, cells
        self.external_id = ""
        self.errors: list[RowError] = []

    def cell(self, name: str) -> str:
        position = self.layout.positions.get(name)
        return "" if position is None else self.cells[position].strip()

    def error(self, name: str, message: str, code: str = "invalid") -> None:
        self.errors.append(
            RowError(self.line, self.external_id, name, self.layout.columns.get(name, ""), code, message)
        )

    def clean(self, name: str, cleaner: Callable[..., Any], *args: Any) -> Any:
        """``cleaner(*args)``, or None after recording the ApplicationError it raised at ``name``."""
        try:
            return cleaner(*args)
        except ApplicationError as exc:
            messages = [m for ms in exc.fields.values() for m in (ms if isinstance(ms, list | tuple) else [ms])]
            for message in messages or [exc.message]:
                self.error(name, str(message), exc.code)
            return None


def _finite_number(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):  # 1e400: jsonb stores no infinity
        raise ValueError(f"the number {text} is too large")
    return number


def _json_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")  # NaN, Infinity: Python reads them, jsonb does not


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text, parse_float=_finite_number, parse_constant=_json_constant)
    except (ValueError, RecursionError) as exc:
        if isinstance(exc, json.JSONDecodeError):
            detail = f" ({exc.msg} at character {exc.pos + 1})"
        else:
            detail = " (nested too deeply)" if isinstance(exc, RecursionError) else f" ({exc})"
        raise v.invalid("attributes", f'must be a JSON object, e.g. {{"plan": "gold"}}{detail}') from None
    if not isinstance(value, dict):
        raise v.invalid("attributes", 'must be a JSON object, e.g. {"plan": "gold"}')
    return value


def _attribute_text(text: str, name: str) -> str:
    if problem := v.text_problem(text):
        raise v.invalid(name, problem)
    return text


def _consent_word(text: str, name: str) -> bool:
    granted = CONSENT_WORDS.get(text.lower())
    if granted is None:
        raise v.invalid(name, "must be true, false, yes, no, 1 or 0 (or empty to leave it unchanged)")
    return granted


def row_clean(
    layout: Layout, line: int, end_line: int, cells: list[str], *, consented_at: dt.datetime
) -> CustomerRow | RowResult:
    """The row as a CustomerRow, or its errors as a failed RowResult; never raises for bad input.

    ``consented_at``: the time of a consent whose row gives none."""
    row = _RowCleaner(layout, line, cells)
    position = layout.positions["external_id"]
    row.external_id = v.printable(cells[position].strip()) if position < len(cells) else ""
    if len(cells) != layout.width:
        message = f"has {len(cells)} cells but the header has {layout.width}; is a delimiter or quote out of place?"
        row.error("", message, "line_width")
        return RowResult(row.external_id, ERROR, line, end_line, tuple(row.errors))
    external_id = row.clean("external_id", v.clean_external_id, row.cell("external_id"))
    values = _row_values(row)
    attributes = _row_attributes(row)
    consents = _row_consents(row, consented_at)
    referrer = None
    if text := row.cell("referred_by"):
        referrer = row.clean("referred_by", v.clean_external_id, text, "referred_by")
        if referrer is not None and referrer == external_id:
            row.error("referred_by", "a customer cannot refer themselves")
    if row.errors:
        return RowResult(row.external_id, ERROR, line, end_line, tuple(row.errors))
    return CustomerRow(line, end_line, external_id, values, attributes, consents, referrer)


def _row_values(row: _RowCleaner) -> dict[str, Any]:
    """The customer columns whose cells are not empty, through the cleaners customer_upsert uses."""
    values: dict[str, Any] = {}
    for name in TEXT_FIELDS:
        if text := row.cell(name):
            values[name] = row.clean(name, CUSTOMER_CLEANERS[name], text)
    if text := row.cell("tags"):
        values["tags"] = row.clean("tags", CUSTOMER_CLEANERS["tags"], text.split(TAG_SEPARATOR))
    if text := row.cell("created_at"):
        values["created_at"] = row.clean("created_at", v.clean_happened_at, text, "created_at")
    return values


def _row_attributes(row: _RowCleaner) -> dict[str, Any] | None:
    """The JSON column's object with the ``attr.`` cells on top; None when the row gives none."""
    given = False
    attributes: dict[str, Any] = {}
    if text := row.cell("attributes"):
        given = True
        attributes = row.clean("attributes", _json_object, text) or {}
    for key, name in row.layout.attributes:
        if text := row.cell(name):
            given = True
            attributes[key] = row.clean(name, _attribute_text, text, name)
    if not given:
        return None
    return row.clean("attributes", v.clean_attributes, attributes)


def _row_consents(row: _RowCleaner, consented_at: dt.datetime) -> dict[str, tuple[bool, dt.datetime]]:
    consents: dict[str, tuple[bool, dt.datetime]] = {}
    for channel, name, time_name in row.layout.consents:
        text, time_text = row.cell(name), row.cell(time_name) if time_name else ""
        if not text:
            if time_name and time_text:
                row.error(time_name, f"a time needs a consent value in {name}")
            continue
        granted = row.clean(name, _consent_word, text, name)
        at = row.clean(time_name, v.clean_happened_at, time_text, time_name) if time_name and time_text else None
        consents[channel] = (granted, at or consented_at)
    return consents


# --- Writing a batch -----------------------------------------------------------------------------
#
# A batch goes into a temporary table with COPY (far cheaper than binding thousands of values as
# arrays), and each step is one statement reading it. ``stage.customer_id`` is the row's customer,
# found (and locked) before the COPY or inserted from it.

_STAGE_TABLE = "customer_import_stage"
# Each customer column given by the file: its SQL type and what an update makes of it (c: the
# stored row, s: the staged one; NULL is an empty cell, which keeps the stored value).
_CUSTOMER_COLUMNS = {
    "email": ("varchar(254)", "COALESCE(s.email, c.email)"),
    "phone": ("varchar(16)", "COALESCE(s.phone, c.phone)"),
    "first_name": ("varchar(150)", "COALESCE(s.first_name, c.first_name)"),
    "last_name": ("varchar(150)", "COALESCE(s.last_name, c.last_name)"),
    "birth_date": ("date", "COALESCE(s.birth_date, c.birth_date)"),
    "timezone": ("varchar(64)", "COALESCE(s.timezone, c.timezone)"),
    "tags": ("jsonb", "COALESCE(s.tags, c.tags)"),
    "attributes": ("jsonb", "c.attributes || COALESCE(s.attributes, '{}'::jsonb)"),
    "created_at": ("timestamptz", "COALESCE(s.created_at, c.created_at)"),
}
_JSON_COLUMNS = ("tags", "attributes")
_CONSENT_COLUMNS = {
    f"{channel}_{part}": kind
    for channel in Channel.values
    for part, kind in (("granted", "boolean"), ("at", "timestamptz"))
}
_STAGE_COLUMNS = {
    "customer_id": "bigint",  # set for stored customers before the COPY, for new ones by the insert
    "external_id": "varchar(64) NOT NULL",
    **{name: kind for name, (kind, _) in _CUSTOMER_COLUMNS.items()},
    **_CONSENT_COLUMNS,
    "referrer": "varchar(64)",
}
_STAGE_CREATE = f"""
    CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGE_TABLE}
        ({", ".join(f"{name} {kind}" for name, kind in _STAGE_COLUMNS.items())})
"""
_STAGE_COPY = f"COPY {_STAGE_TABLE} ({', '.join(_STAGE_COLUMNS)}) FROM STDIN"

# The batch's stored customers are read without a lock: only those a row changes get locked
# (below), so a re-run of an unchanged file writes nothing at all, not even row locks.
# Every lookup into the customers and consents is a per-row index probe (a LATERAL subquery the
# planner cannot turn into a join): an import grows these tables faster than their statistics
# follow, and a hash join over a million customers for a few thousand rows would make each batch
# slower than the one before.
_FIND_STORED = """
    SELECT c.id, c.external_id, c.erased_at IS NOT NULL FROM unnest(%s::varchar[]) AS given(external_id)
    CROSS JOIN LATERAL (
        SELECT id, external_id, erased_at FROM customers_customer WHERE external_id = given.external_id OFFSET 0
    ) AS c
"""
_STORED_IDS = """
    SELECT c.external_id FROM unnest(%s::varchar[]) AS given(external_id)
    CROSS JOIN LATERAL (SELECT external_id FROM customers_customer WHERE external_id = given.external_id OFFSET 0) AS c
"""

_VALUES_CHANGE = f"""
    ({", ".join(expression for _, expression in _CUSTOMER_COLUMNS.values())})
    IS DISTINCT FROM ({", ".join(f"c.{name}" for name in _CUSTOMER_COLUMNS)})
"""
_CONSENTS_STAGED = ", ".join(f"('{channel}', s.{channel}_granted, s.{channel}_at)" for channel in Channel.values)
_CONSENT_STORED = """
    (SELECT stored.granted FROM customers_consent AS stored
     WHERE stored.customer_id = {customer} AND stored.channel = given.channel)
"""
_CONSENTS_CHANGE = f"""
    EXISTS (
        SELECT 1 FROM (VALUES {_CONSENTS_STAGED}) AS given(channel, granted, at)
        WHERE given.granted IS NOT NULL
          AND given.granted IS DISTINCT FROM {_CONSENT_STORED.format(customer="c.id")}
    )
"""
# The stored customers whose values, referrer or consents the batch changes, locked in id order
# (as every writer of customers locks, so concurrent writers queue up instead of deadlocking). The
# conditions are checked again under the lock, and an erasure that came in between is seen here.
_LOCK_CHANGING = f"""
    SELECT c.id, c.erased FROM (
        SELECT * FROM {_STAGE_TABLE} WHERE customer_id = ANY(%(stored)s::bigint[]) ORDER BY customer_id
    ) AS s
    CROSS JOIN LATERAL (
        SELECT c.id, c.erased_at IS NOT NULL AS erased FROM customers_customer AS c
        WHERE c.id = s.customer_id
          AND (c.erased_at IS NOT NULL OR {_VALUES_CHANGE}
               OR (s.referrer IS NOT NULL AND c.referred_by_id IS NULL) OR {_CONSENTS_CHANGE})
        FOR NO KEY UPDATE
    ) AS c
"""

# Only rows whose values change are written: an unchanged row makes no new row version.
_UPDATE_STORED = f"""
    UPDATE customers_customer AS c SET
        {", ".join(f"{name} = {expression}" for name, (_, expression) in _CUSTOMER_COLUMNS.items())},
        updated_at = %(now)s
    FROM {_STAGE_TABLE} AS s
    WHERE c.id = ANY(%(locked)s::bigint[]) AND s.customer_id = c.id AND {_VALUES_CHANGE}
    RETURNING c.id
"""

# A new customer's columns the file does not give come from the model's defaults. The new ids go
# back into the stage for the steps after this one.
_DEFAULTED_COLUMNS = ("orders_count", "total_spent", "points_balance", "tier")
_INSERT_NEW = f"""
    WITH inserted AS (
        INSERT INTO customers_customer
            (external_id, {", ".join(_CUSTOMER_COLUMNS)}, updated_at, {", ".join(_DEFAULTED_COLUMNS)})
        SELECT s.external_id, {", ".join(f"COALESCE(s.{name}, %(default_{name})s)" for name in _CUSTOMER_COLUMNS)},
               %(now)s, {", ".join(f"%(default_{name})s" for name in _DEFAULTED_COLUMNS)}
        FROM {_STAGE_TABLE} AS s WHERE s.customer_id IS NULL
        ON CONFLICT (external_id) DO NOTHING
        RETURNING id, external_id
    )
    UPDATE {_STAGE_TABLE} AS s SET customer_id = inserted.id FROM inserted
    WHERE s.external_id = inserted.external_id
    RETURNING s.customer_id, s.external_id
"""

# The first referrer counts (as in customer_upsert): a stored one is never replaced.
_LINK_REFERRERS = f"""
    UPDATE customers_customer AS c SET referred_by_id = link.referrer_id, updated_at = %(now)s
    FROM (
        SELECT s.customer_id, referrer.id AS referrer_id FROM {_STAGE_TABLE} AS s
        CROSS JOIN LATERAL (
            SELECT id FROM customers_customer WHERE external_id = s.referrer OFFSET 0
        ) AS referrer
        WHERE s.referrer IS NOT NULL AND s.customer_id = ANY(%(writable)s::bigint[])
    ) AS link
    WHERE c.id = ANY(%(writable)s::bigint[]) AND c.id = link.customer_id AND c.referred_by_id IS NULL
    RETURNING c.id
"""

# consent_set's rule for a whole batch: a new or changed consent is written and appended to the
# history; a repeat writes nothing (and is not even locked: it is left out before the upsert).
_SET_CONSENTS = f"""
    WITH given AS (
        SELECT s.customer_id, given.channel, given.granted, given.at
        FROM {_STAGE_TABLE} AS s CROSS JOIN LATERAL (VALUES {_CONSENTS_STAGED}) AS given(channel, granted, at)
        WHERE s.customer_id = ANY(%(writable)s::bigint[]) AND given.granted IS NOT NULL
          AND given.granted IS DISTINCT FROM {_CONSENT_STORED.format(customer="s.customer_id")}
    ), changed AS (
        INSERT INTO customers_consent AS consent (customer_id, channel, granted, source, updated_at)
        SELECT customer_id, channel, granted, %(source)s, at FROM given
        ON CONFLICT (customer_id, channel) DO UPDATE
            SET granted = excluded.granted, source = excluded.source, updated_at = excluded.updated_at
            WHERE consent.granted IS DISTINCT FROM excluded.granted
        RETURNING customer_id, channel, granted, source, updated_at
    ), history AS (
        INSERT INTO customers_consentevent (customer_id, channel, granted, source, recorded_at)
        SELECT customer_id, channel, granted, source, updated_at FROM changed
    )
    SELECT customer_id, channel, granted FROM changed
"""


def _new_customer_defaults() -> dict[str, Any]:
    defaults = {}
    for name in (*_CUSTOMER_COLUMNS, *_DEFAULTED_COLUMNS):
        value = Customer._meta.get_field(name).get_default()
        defaults[f"default_{name}"] = json.dumps(value) if name in _JSON_COLUMNS else value
    return defaults


def _staged(row: CustomerRow, customer_id: int | None) -> tuple[Any, ...]:
    """The row as the stage's columns, in their order."""
    values = [customer_id, row.external_id]
    for name in _CUSTOMER_COLUMNS:
        value = row.attributes if name == "attributes" else row.values.get(name)
        values.append(json.dumps(value) if value is not None and name in _JSON_COLUMNS else value)
    for channel in Channel.values:
        values.extend(row.consents.get(channel, (None, None)))
    values.append(row.referrer)
    return tuple(values)


def _stage_load(rows: list[CustomerRow], ids: dict[str, int]) -> None:
    with connection.cursor() as cursor:
        cursor.execute(_STAGE_CREATE)
        cursor.execute(f"TRUNCATE {_STAGE_TABLE}")
        with cursor.copy(_STAGE_COPY) as copy:
            for row in rows:
                copy.write_row(_staged(row, ids.get(row.external_id)))


def _stored_find(external_ids: list[str]) -> dict[str, tuple[int, bool]]:
    """external_id -> (id, erased) of the stored customers among these."""
    with connection.cursor() as cursor:
        cursor.execute(_FIND_STORED, [external_ids])
        return {external_id: (pk, erased) for pk, external_id, erased in cursor.fetchall()}


def _changing_lock(stored_ids: list[int]) -> dict[int, bool]:
    """id -> erased of the stored customers the staged rows change, now locked."""
    with connection.cursor() as cursor:
        cursor.execute(_LOCK_CHANGING, {"stored": stored_ids})
        return dict(cursor.fetchall())


def _returned_ids(sql: str, params: dict[str, Any]) -> set[int]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {row[0] for row in cursor.fetchall()}


@dataclass(frozen=True)
class BatchWritten:
    created: frozenset[str]
    updated: frozenset[str]
    erased: frozenset[str]  # refused: erased customers take no new personal data


def customers_write(rows: list[CustomerRow], *, now: dt.datetime) -> BatchWritten:
    """Write valid rows with distinct external ids, whose referrers are stored or among them.

    A fixed number of statements whatever the batch's size. The caller holds the transaction.
    """
    stored = _stored_find([row.external_id for row in rows])
    erased = {external_id for external_id, (_, is_erased) in stored.items() if is_erased}
    ids = {external_id: pk for external_id, (pk, is_erased) in stored.items() if not is_erased}
    rows = [row for row in rows if row.external_id not in erased]
    if not rows:
        return BatchWritten(frozenset(), frozenset(), frozenset(erased))
    _stage_load(rows, ids)
    locked = _changing_lock(list(ids.values())) if ids else {}
    erased_since = {external_id for external_id, pk in ids.items() if locked.get(pk)}
    changing = [pk for pk, is_erased in locked.items() if not is_erased]
    writable = list(changing)  # the customers this batch may write: the changing and the new ones
    created: dict[str, int] = {}
    if len(ids) < len(rows):
        with connection.cursor() as cursor:
            cursor.execute(_INSERT_NEW, {"now": now, **_new_customer_defaults()})
            created = {external_id: pk for pk, external_id in cursor.fetchall()}
        writable += created.values()
    changed = _returned_ids(_UPDATE_STORED, {"now": now, "locked": changing}) if changing else set()
    if any(row.referrer for row in rows):
        changed |= _returned_ids(_LINK_REFERRERS, {"now": now, "writable": writable})
    if any(row.consents for row in rows):
        changed |= _consents_set(writable)
    if created:
        points_welcome_for_customers(customer_ids=list(created.values()), now=now)
    ids.update(created)
    updated = {row.external_id for row in rows if ids.get(row.external_id) in changed} - set(created)
    written = BatchWritten(frozenset(created), frozenset(updated), frozenset(erased | erased_since))
    raced = [row for row in rows if row.external_id not in ids]
    if raced:
        # Created by another writer since they were looked up: written again, now as stored customers.
        again = customers_write(raced, now=now)
        written = BatchWritten(
            written.created | again.created, written.updated | again.updated, written.erased | again.erased
        )
    return written


def _consents_set(writable: list[int]) -> set[int]:
    """Set the staged consents of these customers; returns those whose consents changed."""
    with connection.cursor() as cursor:
        cursor.execute(_SET_CONSENTS, {"source": ConsentSource.IMPORT, "writable": writable})
        changed = cursor.fetchall()
    revoked: dict[str, list[int]] = {}
    for customer_id, channel, granted in changed:
        if not granted:
            revoked.setdefault(channel, []).append(customer_id)
    for channel, customer_ids in revoked.items():
        # Journeys on this channel end now (SPEC §4.1), as consent_set does for one customer.
        entries_exit_for_customers(customer_ids=customer_ids, reason="no_consent", channel=channel)
    return {customer_id for customer_id, _, _ in changed}


# --- The whole file ------------------------------------------------------------------------------

_SEEN_TABLE = "customer_import_seen"
_SEEN_CREATE = f"""
    DROP TABLE IF EXISTS pg_temp.{_SEEN_TABLE};
    CREATE TEMPORARY TABLE {_SEEN_TABLE} (external_id varchar(64) PRIMARY KEY, line integer NOT NULL)
"""
# The ids claimed before (with the line that claimed them) come back; the others are claimed now.
_SEEN_CLAIM = f"""
    WITH earlier AS (
        SELECT seen.external_id, seen.line FROM unnest(%(id)s::varchar[]) AS claim(external_id)
        CROSS JOIN LATERAL (
            SELECT * FROM {_SEEN_TABLE} WHERE external_id = claim.external_id OFFSET 0
        ) AS seen
    ), claimed AS (
        INSERT INTO {_SEEN_TABLE} SELECT * FROM unnest(%(id)s::varchar[], %(line)s::integer[])
        ON CONFLICT (external_id) DO NOTHING
    )
    SELECT external_id, line FROM earlier
"""
_SEEN_LINES = f"""
    SELECT seen.external_id, seen.line FROM unnest(%s::varchar[]) AS wanted(external_id)
    CROSS JOIN LATERAL (SELECT * FROM {_SEEN_TABLE} WHERE external_id = wanted.external_id OFFSET 0) AS seen
"""


def _session_lost() -> bool:
    """Whether the database session this import started on is gone (a server restart, a network
    cut). Django connects again by itself, but the import's temporary tables were the old session's."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT to_regclass(%s)", [f"pg_temp.{_SEEN_TABLE}"])
            return cursor.fetchone()[0] is None
    except DatabaseError:
        return True


Batch = tuple[list[CustomerRow], list[RowResult]]  # a batch's valid rows, and the results of its invalid ones


def rows_clean(layout: Layout, records: Iterable[tuple[int, int, list[str]]], *, consented_at: dt.datetime) -> Batch:
    """A batch of records as its valid rows and the failed results of the others."""
    rows: list[CustomerRow] = []
    failed: list[RowResult] = []
    for line, end_line, cells in records:
        outcome = row_clean(layout, line, end_line, cells, consented_at=consented_at)
        (failed if isinstance(outcome, RowResult) else rows).append(outcome)
    return rows, failed


_END = object()


def _in_background(items: Iterator[Batch], *, ahead: int = 1) -> Iterator[Batch]:
    """``items``, computed by a thread of their own at most ``ahead`` items ahead of the caller.

    Reading and validating a batch is Python work, writing one is mostly waiting for PostgreSQL
    (which releases the GIL): so the next batch is read while this one is written, and memory
    holds ``ahead`` batches more. An exception ``items`` raises is raised here, in its place.
    """
    handoff: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=ahead)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                handoff.put((True, item))
            handoff.put((True, _END))
        except BaseException as exc:  # handed to the caller, who decides
            handoff.put((False, exc))

    thread = threading.Thread(target=produce, name="customer-import-reader", daemon=True)
    thread.start()
    try:
        while True:
            ok, item = handoff.get()
            if not ok:
                raise item
            if item is _END:
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # a producer waiting to hand over an item is let go
            with contextlib.suppress(queue.Empty):
                handoff.get(timeout=0.05)
        thread.join()


class CustomerImport:
    """Batches of a file's rows, written set-based; results come back per batch.

    A row whose referrer is neither stored nor earlier in its batch waits until the referrer is
    written (it may come later in the file), then goes with the next batch. Rows still waiting at
    the end fail, each with the reason.
    """

    def __init__(self, layout: Layout, *, started_at: dt.datetime, batch_rows: int) -> None:
        self.layout, self.started_at, self.batch_rows = layout, started_at, batch_rows
        self.waiting: dict[str, list[CustomerRow]] = {}  # referrer external_id -> rows naming it
        self.waiting_rows = 0
        self.ready: list[CustomerRow] = []  # rows whose referrer has been written since they waited

    def batch(self, rows: list[CustomerRow], failed: list[RowResult]) -> list[RowResult]:
        """Write a batch of cleaned rows (``failed``: its rows that did not pass validation)."""
        rows, results = self._claim(rows, list(failed))
        ready, self.ready = self.ready, []
        for chunk in batches(ready + rows, self.batch_rows):
            results += self._write(chunk)
        return sorted(results, key=lambda result: result.line)

    def finish(self) -> list[RowResult]:
        """Write what waited for referrers written by the last batches; fail the rows still waiting."""
        results: list[RowResult] = []
        while self.ready:
            ready, self.ready = self.ready, []
            for chunk in batches(ready, self.batch_rows):
                results += self._write(chunk)
        leftovers = {row.external_id: row for rows in self.waiting.values() for row in rows}
        self.waiting, self.waiting_rows = {}, 0
        for chunk in batches(leftovers.values(), self.batch_rows):
            results += self._never_referred(chunk, leftovers)
        return sorted(results, key=lambda result: result.line)

    def _claim(self, rows: list[CustomerRow], results: list[RowResult]) -> tuple[list[CustomerRow], list[RowResult]]:
        """One line per customer: a later line with the same external_id fails, naming the first.

        Failed rows claim their id too, so that a second line is refused whichever line failed."""
        claims = [(row.external_id, row.line) for row in rows]
        claims += [(result.external_id, result.line) for result in results if _has_valid_id(result)]
        first: dict[str, int] = {}
        for external_id, line in claims:
            first.setdefault(external_id, line)
        if not first:
            return rows, results
        with connection.cursor() as cursor:
            cursor.execute(_SEEN_CLAIM, {"id": list(first), "line": list(first.values())})
            first.update(cursor.fetchall())  # a line of an earlier batch came first
        kept: list[CustomerRow] = []
        for row in rows:
            if first[row.external_id] == row.line:
                kept.append(row)
            else:
                message = _duplicate_message(first[row.external_id])
                results.append(row.failed("external_id", message, layout=self.layout, code="duplicate"))
        for index, result in enumerate(results):
            line = first.get(result.external_id, result.line) if _has_valid_id(result) else result.line
            if line != result.line and result.errors[0].code != "duplicate":
                column = self.layout.columns["external_id"]
                error = RowError(
                    result.line, result.external_id, "external_id", column, "duplicate", _duplicate_message(line)
                )
                results[index] = replace(result, errors=(error, *result.errors))
        return kept, results

    def _write(self, rows: list[CustomerRow]) -> list[RowResult]:
        """Write the rows that can be written now; the others wait for their referrer."""
        rows, results = self._hold_for_referrers(rows)
        if not rows:
            return results
        try:
            with transaction.atomic():
                written = customers_write(rows, now=timezone.now())
        except UNEXPECTED_AT_INSERT as exc:
            if _session_lost():
                raise  # the database went away: no row can be written, nor should each say so
            if len(rows) > 1:
                # Something the validation let through: each row alone, so it fails only itself.
                for row in rows:
                    results += self._write([row])
                return results
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            return [
                *results,
                rows[0].failed("", f"could not be stored: {detail}", layout=self.layout, code="database_error"),
            ]
        for row in rows:
            if row.external_id in written.erased:
                message = "this customer was erased; their record takes no new personal data"
                results.append(row.failed("external_id", message, layout=self.layout, code="erased"))
            elif row.external_id in written.created:
                results.append(RowResult(row.external_id, CREATED, row.line, row.end_line))
            else:
                status = UPDATED if row.external_id in written.updated else UNCHANGED
                results.append(RowResult(row.external_id, status, row.line, row.end_line))
            # The customer is stored now: the rows that waited for them as their referrer can follow.
            released = self.waiting.pop(row.external_id, [])
            self.waiting_rows -= len(released)
            self.ready += released
        return results

    def _hold_for_referrers(self, rows: list[CustomerRow]) -> tuple[list[CustomerRow], list[RowResult]]:
        """The rows writable now (no referrer, a stored one, or one written with them); the others
        wait for their referrer, or fail when too many rows wait already."""
        referrers = list({row.referrer for row in rows if row.referrer})
        if not referrers:
            return rows, []
        with connection.cursor() as cursor:
            cursor.execute(_STORED_IDS, [referrers])
            stored = {external_id for (external_id,) in cursor.fetchall()}
        writable: set[str] = set()
        grew = True
        while grew:  # a row of the batch can be a referrer once its own referrer is writable
            grew = False
            for row in rows:
                if row.external_id not in writable and (
                    not row.referrer or row.referrer in stored or row.referrer in writable
                ):
                    writable.add(row.external_id)
                    grew = True
        results: list[RowResult] = []
        for row in rows:
            if row.external_id in writable:
                continue
            if self.waiting_rows >= MAX_WAITING_ROWS:
                message = (
                    f"customer {row.referrer!r} is not stored yet, and {MAX_WAITING_ROWS:,} rows already wait for "
                    "referrers further down the file: import the referrers first"
                )
                results.append(row.failed("referred_by", message, layout=self.layout, code="referrer_not_found"))
            else:
                self.waiting.setdefault(row.referrer or "", []).append(row)
                self.waiting_rows += 1
        return [row for row in rows if row.external_id in writable], results

    def _never_referred(self, rows: list[CustomerRow], leftovers: dict[str, CustomerRow]) -> list[RowResult]:
        """The rows still waiting at the end: each fails with why its referrer never came."""
        with connection.cursor() as cursor:
            cursor.execute(_SEEN_LINES, [list({row.referrer for row in rows})])
            lines = dict(cursor.fetchall())
        results = []
        for row in rows:
            referrer = row.referrer or ""
            if referrer in leftovers:
                cycle = _referral_cycle(row, leftovers)
                if cycle:
                    message = (
                        f"the referrals {' → '.join(cycle)} form a cycle, so none of them can be stored first; "
                        "leave referred_by empty on one of them"
                    )
                else:
                    message = f"customer {referrer!r} (line {leftovers[referrer].line}) was not imported either"
            elif referrer in lines:
                message = f"customer {referrer!r} (line {lines[referrer]}) was not imported; see its error"
            else:
                message = f"no customer with external_id {referrer!r}, stored or in this file"
            results.append(row.failed("referred_by", message, layout=self.layout, code="referrer_not_found"))
        return results


def _has_valid_id(result: RowResult) -> bool:
    """Whether a failed row's external_id is one (a shifted line's first cell may not be)."""
    return bool(result.external_id) and not any(error.field in ("external_id", "") for error in result.errors)


def _duplicate_message(line: int) -> str:
    return f"this customer is already on line {line} of this file; each customer takes one line"


def _referral_cycle(row: CustomerRow, leftovers: dict[str, CustomerRow]) -> list[str]:
    """The cycle of referrals ``row`` is part of (A, B, ..., A), or [] when it only leads into one."""
    path = [row.external_id]
    current = row
    while current.referrer in leftovers:
        current = leftovers[current.referrer]
        if current.external_id == row.external_id:
            return [*path, row.external_id]
        if current.external_id in path:
            return []
        path.append(current.external_id)
    return []


def customers_import(
    source: CustomerCsv, *, dry_run: bool = False, batch_rows: int | None = None
) -> Iterator[RowResult]:
    """Import the file's rows batch by batch and yield each row's result.

    Each batch is written in its own transaction, so an import stopped halfway keeps what it
    wrote and a re-run is safe. A dry run writes everything in one transaction that is rolled back
    at the end, so it reports exactly what a real run would; it holds the locks of the customers it
    touched until it ends.
    """
    importer = CustomerImport(source.layout, started_at=timezone.now(), batch_rows=batch_rows or BATCH_ROWS)
    with collector_relaxed(), transaction.atomic() if dry_run else contextlib.nullcontext():
        with connection.cursor() as cursor:
            cursor.execute(_SEEN_CREATE)
        try:
            try:
                cleaned = (
                    rows_clean(source.layout, records, consented_at=importer.started_at)
                    for records in batches(source.records(), importer.batch_rows)
                )
                for rows, failed in _in_background(cleaned):
                    yield from importer.batch(rows, failed)
                    # The import grows the tables faster than autovacuum analyzes them: the other
                    # services' statements (welcome bonus, journeys) plan with fresh statistics.
                    statistics_refresh()
                    reset_queries()  # under DEBUG, the query log would keep every batch's statements
            except CsvImportError:
                # The rest of the file cannot be read: rows that waited for a referrer written
                # before that point are still written, then the error stops the command.
                yield from importer.finish()
                raise
            yield from importer.finish()
        finally:
            if not dry_run:  # a dry run's rollback takes the table with it
                with connection.cursor() as cursor:
                    cursor.execute(f"DROP TABLE IF EXISTS pg_temp.{_SEEN_TABLE}, pg_temp.{_STAGE_TABLE}")
        if dry_run:
            transaction.set_rollback(True)
