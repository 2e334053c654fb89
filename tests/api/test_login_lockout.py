"""Failed staff logins are locked out (django-axes, SPEC §8): LOGIN_FAILURE_LIMIT wrong passwords for
one username from one address, and the right password is refused too until the lockout ends."""

import pytest
from axes.models import AccessAttempt
from django.test import Client

pytestmark = pytest.mark.django_db
LOGIN = "/admin/login/"
PASSWORD = "right-pw-123456789"


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user("clerk", password=PASSWORD, is_staff=True, is_superuser=True)


def login(client: Client, password: str, address: str = "192.0.2.10", username: str = "clerk"):
    return client.post(LOGIN, {"username": username, "password": password, "next": "/admin/"}, REMOTE_ADDR=address)


def test_the_right_password_logs_in(client, staff):
    response = login(client, PASSWORD)
    assert response.status_code == 302 and response["Location"] == "/admin/"


def test_five_wrong_passwords_lock_the_account_out_from_that_address(client, staff):
    answers = [login(client, "wrong").status_code for _ in range(5)]
    assert answers[:4] == [200] * 4  # the form again, with its error
    assert answers[4] == 429
    locked = login(client, PASSWORD)
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session
    assert AccessAttempt.objects.filter(username="clerk", ip_address="192.0.2.10").exists()


def test_the_lockout_is_keyed_on_username_and_address(client, staff):
    for _ in range(5):
        login(client, "wrong")
    assert login(Client(), PASSWORD, address="192.0.2.99").status_code == 302  # another address
    assert login(Client(), "wrong", username="someone-else").status_code == 200  # another username


def test_a_success_before_the_limit_resets_the_count(client, staff):
    for _ in range(4):
        login(client, "wrong")
    assert login(client, PASSWORD).status_code == 302
    client.logout()
    assert [login(client, "wrong").status_code for _ in range(4)] == [200] * 4
