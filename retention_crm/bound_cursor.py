"""A cursor for the set-based batch statements: parameters sent apart from the statement.

Django's PostgreSQL cursors bind on the client: psycopg quotes every parameter into the text of
the statement. A batch statement's parameters are arrays of thousands of values (``sql_array``),
so that costs a pass over each of them to quote it, and another to look the whole, ever-different
text up in psycopg's statement cache; in an import it was about a tenth of the Python time. With
server-side binding the statement goes as written and the arrays as parameters beside it.

The cursor is wrapped as Django wraps its own (the same connection and transaction, and the
query log and ``assertNumQueries`` see its statements). Placeholders are the same ``%s`` and
``%(name)s``; a text parameter has no type of its own, so every array keeps its cast
(``%s::bigint[]``). ``sql_array`` writes such an array's text.
"""

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.db import connection

# The stubs know the backend's psycopg 2 shape only, not its psycopg 3 cursor classes.
from django.db.backends.postgresql.base import TIMESTAMPTZ_OID, ServerBindingCursor  # type: ignore[attr-defined]
from django.db.backends.postgresql.psycopg_any import register_tzloader  # type: ignore[import-untyped]
from django.db.backends.utils import CursorWrapper
from psycopg.pq import Format


def bound_cursor() -> CursorWrapper:
    """A server-side-binding cursor on the default connection (use it as ``with bound_cursor()
    as cursor``)."""
    connection.ensure_connection()
    with connection.wrap_database_errors:
        cursor = ServerBindingCursor(connection.connection)
        # As Django's create_cursor: timestamps come back in the connection's time zone.
        loader = connection.connection.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT)
        if connection.timezone != getattr(loader, "timezone", None):
            register_tzloader(connection.timezone, cursor)
        # Django's own wrapping (debug or plain), which the stubs leave out.
        wrapped: CursorWrapper = connection._prepare_cursor(cursor)  # type: ignore[attr-defined]
        return wrapped


def sql_array(values: Iterable[Any]) -> str:
    """``values`` as the text of a PostgreSQL array, to bind as one parameter cast to the array's
    type (``%s::bigint[]``). A batch's statements bind columns of thousands of values: psycopg
    dumps a list element by element in Python (a datetime ten times slower than a string), this
    joins the text in one pass, about five times faster. None is NULL; datetimes go as ISO 8601."""
    items = values if isinstance(values, list) else list(values)
    kinds = set(map(type, items))
    # A column is all of one type: joined by C code without a Python step per element. Numbers
    # need neither quotes nor escapes (bool is not int here: its type is bool).
    if kinds == {int} or kinds == {Decimal}:
        return "{" + ",".join(map(str, items)) + "}"
    if kinds == {str}:
        joined = "".join(items)
        if '"' not in joined and "\\" not in joined:  # the usual case: nothing to escape, one join
            return '{"' + '","'.join(items) + '"}'
    if kinds == {dt.datetime}:  # ISO 8601 needs no escapes either
        return '{"' + '","'.join(map(dt.datetime.isoformat, items)) + '"}'
    if not items:
        return "{}"
    texts = (
        None
        if value is None
        else value
        if type(value) is str
        else value.isoformat()
        if isinstance(value, dt.datetime)
        else str(value)
        for value in items
    )
    return "{" + ",".join("NULL" if text is None else _array_element(text) for text in texts) + "}"


def _array_element(text: str) -> str:
    if "\\" in text or '"' in text:
        text = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'
