"""Redemptions racing on one account, against real PostgreSQL connections (one per thread).

The balance must never go below zero and the sums must be exact: the database decides (a row
lock plus a conditional UPDATE on the balance), never a read-then-write in Python.
"""

import datetime as dt
import threading
from collections import Counter
from collections.abc import Callable

import pytest
from django.db import connection
from django.utils import timezone

from customers.loyalty.services import InsufficientPoints, points_adjust, points_redeem
from customers.loyalty.services.daily import points_expire_due
from customers.models import PointsEntry
from tests.loyalty_support import assert_ledger_consistent, balance, buy, program_set

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 24


def run_at_once(jobs: list[Callable[[], str]]) -> Counter:
    """Start every job in its own thread, released together by a barrier; count their outcomes.
    Each thread closes its own database connection when done."""
    barrier = threading.Barrier(len(jobs))
    outcomes: list[str] = []
    lock = threading.Lock()

    def run(job: Callable[[], str]) -> None:
        try:
            barrier.wait(timeout=30)
            outcome = job()
        except InsufficientPoints:
            outcome = "insufficient"
        except Exception as error:  # a deadlock or any other surprise fails the test below
            outcome = f"error: {error!r}"
        finally:
            connection.close()
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    return Counter(outcomes)


@pytest.fixture(autouse=True)
def plain_program():
    program_set(tiers=[("bronze", "Bronze", "0", "1")])


def test_concurrent_redemptions_on_one_account_never_overdraw_and_sum_exactly():
    now = timezone.now()
    # 1,000 points in four lots, so every redemption has FIFO work to do.
    for days, total in ((40, "100.00"), (30, "250.00"), (20, "400.00"), (10, "250.00")):
        buy("hot", total, placed_at=now - dt.timedelta(days=days))
    assert balance("hot") == 1_000

    def redeem(number: int) -> Callable[[], str]:
        def job() -> str:
            points_redeem(customer="hot", points=60, order_total="1000.00", idempotency_key=f"checkout-{number}")
            return "redeemed"

        return job

    outcomes = run_at_once([redeem(n) for n in range(THREADS)])

    # 24 x 60 = 1,440 asked of 1,000: exactly 16 fit, the other 8 are refused, none errors.
    assert outcomes == Counter({"redeemed": 16, "insufficient": 8})
    assert balance("hot") == 40
    assert_ledger_consistent("hot")
    redemptions = PointsEntry.objects.filter(kind="redeem")
    assert redemptions.count() == 16
    # Serialised by the database: each redemption saw the one before it.
    assert sorted(redemptions.values_list("balance_after", flat=True)) == list(range(40, 1_000, 60))
    lots = list(PointsEntry.objects.filter(kind="earn").order_by("expires_at").values_list("remaining", flat=True))
    assert lots == [0, 0, 0, 40]  # the oldest lots went first


def test_the_same_idempotency_key_racing_redeems_once():
    buy("hot", "500.00")
    job = lambda: (  # noqa: E731
        "replayed"
        if points_redeem(customer="hot", points=100, order_total="1000.00", idempotency_key="same").replayed
        else "redeemed"
    )
    outcomes = run_at_once([job] * THREADS)
    assert outcomes == Counter({"redeemed": 1, "replayed": THREADS - 1})
    assert balance("hot") == 400
    assert_ledger_consistent("hot")


def test_redemptions_adjustments_and_the_expiry_pass_racing_keep_the_ledger_exact():
    now = timezone.now()
    buy("hot", "300.00", placed_at=now - dt.timedelta(days=366 - 1))  # expires tomorrow
    buy("hot", "700.00", placed_at=now - dt.timedelta(days=5))
    tomorrow = now + dt.timedelta(days=2)

    jobs: list[Callable[[], str]] = []
    for number in range(20):
        jobs.append(
            lambda n=number: (
                points_redeem(customer="hot", points=45, order_total="1000.00", idempotency_key=f"r-{n}").entry.kind
            )
        )
    for number in range(4):
        jobs.append(
            lambda n=number: (
                points_adjust(
                    customer="hot", points=-30 if n % 2 else 25, reason="race", idempotency_key=f"a-{n}", actor="test"
                ).entry.kind
            )
        )
    jobs.append(lambda: f"expired {points_expire_due(now=tomorrow).lots}")
    outcomes = run_at_once(jobs)

    assert not [outcome for outcome in outcomes if outcome.startswith("error")], outcomes
    assert_ledger_consistent("hot")
    assert not PointsEntry.objects.filter(remaining__gt=0, expires_at__lte=tomorrow).exists()
    assert PointsEntry.objects.filter(kind="expire").count() <= 1
    assert min(PointsEntry.objects.values_list("balance_after", flat=True)) >= 0
