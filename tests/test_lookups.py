"""``__any``: the same rows as ``__in``, with the whole list sent as one array parameter."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from customers.models import Customer
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def test_any_selects_what_in_selects_with_one_parameter():
    customers = CustomerFactory.create_batch(30)
    ids = [c.pk for c in customers[::3]] + [customers[-1].pk + 1_000]  # one id that matches nothing
    names = [c.external_id for c in customers[:5]]

    by_any = Customer.objects.filter(pk__any=ids)
    assert sorted(by_any.values_list("pk", flat=True)) == sorted(
        Customer.objects.filter(pk__in=ids).values_list("pk", flat=True)
    )
    assert sorted(Customer.objects.filter(external_id__any=names).values_list("external_id", flat=True)) == sorted(
        names
    )

    sql, params = by_any.query.sql_with_params()
    assert "= ANY(%s)" in sql
    assert params == (ids,)


def test_empty_lists_and_nulls_behave_as_in():
    customer = CustomerFactory()
    with CaptureQueriesContext(connection) as queries:
        assert list(Customer.objects.filter(pk__any=[])) == []
    assert len(queries) == 0  # nothing can match: no query at all, as with __in
    assert list(Customer.objects.filter(pk__any=[None, customer.pk])) == [customer]


def test_any_in_an_update():
    first, second, third = CustomerFactory.create_batch(3)
    assert Customer.objects.filter(pk__any=[first.pk, third.pk]).update(tier="gold") == 2
    assert sorted(Customer.objects.filter(tier="gold").values_list("pk", flat=True)) == [first.pk, third.pk]
    second.refresh_from_db()
    assert second.tier != "gold"
