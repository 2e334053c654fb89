"""A cursor for the set-based batch statements: parameters sent apart from the statement.

Django's PostgreSQL cursors bind on the client: psycopg quotes every parameter into the text of
the statement. A batch statement's parameters are arrays of thousands of values (``sql_array``),
so that costs a pass over each of them to quote it, and another to look the whole, ever-different
text up in psycopg's statement cache; in an import it was about a tenth of the Python time. With
server-side binding the statement goes as written and the arrays as parameters beside it.

The cursor is wrapped as Django wraps its own (the same connection and transaction, and the
query log and ``assertNumQueries`` see its statements). Placeholders are the same ``%s`` and
``%(name)s``; a text parameter has no type of its own, so every array keeps its cast
(``%s::bigint[]``).
"""

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
