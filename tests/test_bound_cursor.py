"""retention_crm.bound_cursor: the batch statements' cursor binds on the server, inside Django's
transaction, and Django still sees its statements."""

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from retention_crm.bound_cursor import bound_cursor, sql_array

pytestmark = pytest.mark.django_db


def test_parameters_go_apart_from_the_statement_and_values_survive():
    awkward = ["plain", 'a "quoted" one', "back\\slash", "{braces}", "semi;colon", "ünïcode"]
    with bound_cursor() as cursor:
        cursor.execute(
            "SELECT unnest(%s::text[]), %s::timestamptz", [sql_array(awkward), dt.datetime(2026, 1, 2, tzinfo=dt.UTC)]
        )
        rows = cursor.fetchall()
        assert cursor.cursor._query.params is not None  # sent as parameters, not quoted into the text
    assert [value for value, _ in rows] == awkward
    assert {moment for _, moment in rows} == {dt.datetime(2026, 1, 2, tzinfo=dt.UTC)}


def test_its_statements_are_counted_and_run_in_the_callers_transaction():
    with CaptureQueriesContext(connection) as captured, transaction.atomic():
        with bound_cursor() as cursor:
            cursor.execute("CREATE TEMPORARY TABLE bound_probe (n int)")
        with bound_cursor() as cursor:
            cursor.execute("INSERT INTO bound_probe SELECT unnest(%s::int[])", [sql_array([1, 2, 3])])
        transaction.set_rollback(True)
    statements = [query["sql"] for query in captured.captured_queries]
    assert "CREATE TEMPORARY TABLE bound_probe (n int)" in statements
    assert any(sql.startswith("INSERT INTO bound_probe") for sql in statements)
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('pg_temp.bound_probe')")
        assert cursor.fetchone() == (None,)  # rolled back with the caller's transaction


@pytest.mark.parametrize(
    ("values", "sql_type"),
    [
        ([1, -2, 9_007_199_254_740_993], "bigint"),
        ([Decimal("0.00"), Decimal("12.50"), Decimal("99999999.99")], "numeric"),
        (
            [dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC), dt.datetime(1900, 1, 1, tzinfo=dt.UTC)],
            "timestamptz",
        ),
        ([dt.datetime(2026, 3, 29, 2, 30, tzinfo=ZoneInfo("America/Sao_Paulo"))], "timestamptz"),
        ([1, None, 3], "bigint"),
        ([Decimal("1.50"), 2, None], "numeric"),
        ([True, False], "boolean"),
        (["a", None, 'say "hi"'], "text"),
        ([], "bigint"),
    ],
)
def test_sql_array_keeps_every_kind_of_column_exact(values, sql_type):
    with bound_cursor() as cursor:
        cursor.execute(f"SELECT unnest(%s::{sql_type}[])", [sql_array(values)])
        assert [value for (value,) in cursor.fetchall()] == values
