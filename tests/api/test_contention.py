"""A request PostgreSQL rolls back to resolve a deadlock answers 503 ``busy`` with Retry-After,
not 500: it wrote nothing and may simply be sent again."""

import threading

import pytest
from django.db import OperationalError, connection, transaction
from rest_framework.views import APIView

from customers.models import Customer
from tests.factories import CustomerFactory

api_exception_handler = APIView().get_exception_handler()  # the handler the API is configured with


def real_deadlock() -> OperationalError:
    """Two transactions locking two customers in opposite orders: PostgreSQL aborts one of them."""
    first, second = CustomerFactory(), CustomerFactory()
    barrier = threading.Barrier(2)
    errors: list[Exception] = []

    def lock(ids: tuple[int, int]) -> None:
        try:
            with transaction.atomic():
                Customer.objects.select_for_update().get(pk=ids[0])
                barrier.wait()
                Customer.objects.select_for_update().get(pk=ids[1])
        except OperationalError as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=lock, args=(pair,)) for pair in ((first.pk, second.pk), (second.pk, first.pk))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(errors) == 1, errors
    return errors[0]


@pytest.mark.django_db(transaction=True)
def test_a_deadlock_answers_503_busy_with_retry_after():
    error = real_deadlock()
    assert error.__cause__.sqlstate == "40P01"

    response = api_exception_handler(error, {})

    assert response.status_code == 503
    assert response.data["error"]["code"] == "busy"
    assert response["Retry-After"] == "1"


def test_other_database_errors_stay_server_errors():
    assert api_exception_handler(OperationalError("the server closed the connection"), {}) is None
