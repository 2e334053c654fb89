"""A hypothesis state machine drives random sequences of earn, redeem, expire, refund and adjust
through the real services on PostgreSQL, and checks after every step that:

- the cached balance equals the ledger's sum and what the open lots hold, and is never negative;
- each operation moved the balance by exactly what SPEC §3 says (a small reference model);
- spending took from the lots in FIFO order (a reference FIFO in Python over the lots before).
"""

import datetime as dt
import itertools
from decimal import ROUND_FLOOR, Decimal

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from customers.loyalty.services import InsufficientPoints, points_adjust, points_redeem
from customers.loyalty.services.daily import points_expire_due
from customers.models import PointsEntry, Purchase
from customers.services import customer_upsert, purchase_refund
from tests.loyalty_support import assert_ledger_consistent, balance, buy, program_set

pytestmark = pytest.mark.django_db

EXPIRY_DAYS = 30
EARN_RATE = Decimal("0.7")  # not 1, so the floor matters
_machines = itertools.count()


def open_lots(external_id: str) -> list[tuple[int, int]]:
    """(id, remaining) of open lots in FIFO order: earliest expiry first, never-expiring last."""
    lots = PointsEntry.objects.filter(customer__external_id=external_id, remaining__gt=0).values_list(
        "id", "expires_at", "remaining"
    )
    return [(pk, remaining) for pk, _, remaining in sorted(lots, key=lambda lot: (lot[1] is None, lot[1], lot[0]))]


def fifo(lots: list[tuple[int, int]], points: int) -> dict[int, int]:
    """The reference: what each lot holds after taking ``points`` oldest first."""
    after = {}
    for pk, remaining in lots:
        take = min(remaining, points)
        points -= take
        after[pk] = remaining - take
    return after


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        # Every example starts clean: its writes are rolled back in teardown.
        self.savepoint = transaction.savepoint()
        self.customer = f"hyp-{next(_machines)}"
        customer_upsert(external_id=self.customer, data={})
        self.clock = timezone.now()  # purchases are placed at the clock; expiry runs at it
        self.purchases: list[str] = []
        self.keys = itertools.count()

    def teardown(self) -> None:
        transaction.savepoint_rollback(self.savepoint)

    def key(self) -> str:
        return f"k-{next(self.keys)}"

    @rule(cents=st.integers(min_value=0, max_value=200_000))
    def earn(self, cents: int) -> None:
        total = Decimal(cents) / 100
        before = balance(self.customer)
        # The clock runs ahead of the wall clock (expiry passes), but a purchase may not be placed
        # more than a day ahead (SPEC §8): once the clock is past now, purchases are placed now.
        purchase = buy(self.customer, f"{total:.2f}", placed_at=min(self.clock, timezone.now()))
        self.purchases.append(purchase.external_id)
        expected = int((total * EARN_RATE).to_integral_value(rounding=ROUND_FLOOR))
        assert balance(self.customer) == before + expected

    @rule(points=st.integers(min_value=1, max_value=2_000), for_an_order=st.booleans())
    def redeem(self, points: int, for_an_order: bool) -> None:
        before = balance(self.customer)
        lots = open_lots(self.customer)
        completed = Purchase.objects.filter(external_id__in=self.purchases, status="completed").order_by("-id")
        order_id = completed.values_list("external_id", flat=True).first() if for_an_order else None
        try:
            result = points_redeem(
                customer=self.customer,
                points=points,
                order_total="1000000.00",
                order_id=order_id,
                idempotency_key=self.key(),
            )
        except InsufficientPoints:
            assert points > before
            assert balance(self.customer) == before
            return
        assert points <= before
        assert result.balance == balance(self.customer) == before - points
        expected = fifo(lots, points)
        actual = dict(PointsEntry.objects.filter(pk__in=list(expected)).values_list("pk", "remaining"))
        assert actual == expected

    @rule(points=st.integers(min_value=-1_500, max_value=1_500).filter(bool))
    def adjust(self, points: int) -> None:
        before = balance(self.customer)
        try:
            result = points_adjust(
                customer=self.customer, points=points, reason="property test", idempotency_key=self.key(), actor="t"
            )
        except InsufficientPoints:
            assert -points > before
            assert balance(self.customer) == before
            return
        assert result.balance == balance(self.customer) == before + points

    @rule(days=st.integers(min_value=1, max_value=40))
    def expire(self, days: int) -> None:
        self.clock += dt.timedelta(days=days)
        due = sum(
            PointsEntry.objects.filter(
                customer__external_id=self.customer, remaining__gt=0, expires_at__lte=self.clock
            ).values_list("remaining", flat=True)
        )
        before = balance(self.customer)
        points_expire_due(now=self.clock)
        assert balance(self.customer) == before - due

    @precondition(lambda self: self.purchases)
    @rule(data=st.data())
    def refund(self, data: st.DataObject) -> None:
        external_id = data.draw(st.sampled_from(self.purchases))
        purchase = Purchase.objects.get(external_id=external_id)
        before = balance(self.customer)
        redeemed = -sum(
            PointsEntry.objects.filter(kind="redeem", order_id=external_id).values_list("points", flat=True)
        )
        earned = PointsEntry.objects.filter(purchase=purchase, kind="earn").first()
        to_reverse = 0
        if earned is not None:
            expired = -sum(
                PointsEntry.objects.filter(related_entry=earned, kind="expire").values_list("points", flat=True)
            )
            to_reverse = earned.points - expired
        already = purchase.status != "completed"
        purchase_refund(external_id=external_id)
        if already:
            assert balance(self.customer) == before  # a repeat changes nothing
            return
        covered = min(to_reverse, before + redeemed)
        assert balance(self.customer) == before + redeemed - covered
        if to_reverse > 0:
            reversal = PointsEntry.objects.get(idempotency_key=f"reversal:purchase:{purchase.pk}")
            assert (-reversal.points, reversal.uncovered) == (covered, to_reverse - covered)

    @invariant()
    def ledger_is_consistent(self) -> None:
        assert_ledger_consistent(self.customer)


def test_random_sequences_keep_the_ledger_exact():
    program_set(tiers=[("bronze", "Bronze", "0", "1")], earn_rate=EARN_RATE, expiry_days=EXPIRY_DAYS)
    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(
            max_examples=40,
            stateful_step_count=25,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
