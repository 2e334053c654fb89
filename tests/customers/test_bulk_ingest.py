"""purchases_record_bulk: set-based, yet exactly the rules of purchase_record."""

import datetime as dt
import random
import threading
from decimal import Decimal

import pytest
from django.db import DatabaseError, connection

from customers.models import Cart, Customer, PointsEntry, Purchase, PurchaseItem
from customers.services import bulk, cart_upsert, purchases_record_bulk
from retention_crm.errors import ApplicationError
from tests.loyalty_support import assert_ledger_consistent

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


def order(n: int, customer: str, **changes) -> dict:
    return {
        "external_id": f"o-{n}",
        "customer": customer,
        "placed_at": (T0 + dt.timedelta(hours=n)).isoformat(),
        "total": f"{10 + n % 7}.{n % 100:02d}",
        "items": [{"sku": f"SKU-{n % 5}", "quantity": 1 + n % 3, "unit_price": "1.00"}],
        **changes,
    }


def assert_stats_match_purchases() -> None:
    for customer in Customer.objects.all():
        completed = Purchase.objects.filter(customer=customer, status="completed")
        placed = sorted(completed.values_list("placed_at", flat=True))
        assert customer.orders_count == len(placed)
        assert customer.total_spent == sum((p.total for p in completed), Decimal("0.00"))
        assert customer.first_purchase_at == (placed[0] if placed else None)
        assert customer.last_purchase_at == (placed[-1] if placed else None)


def test_a_random_batch_leaves_exact_stats_items_and_statuses():
    rng = random.Random(7)
    batch = [
        order(n, f"c-{rng.randrange(40)}", status=rng.choice(["completed"] * 8 + ["refunded", "cancelled"]))
        for n in range(600)
    ]
    results = purchases_record_bulk(raw_purchases=batch)
    assert [r.status for r in results] == ["created"] * 600
    assert Purchase.objects.count() == 600
    assert PurchaseItem.objects.count() == 600
    assert_stats_match_purchases()


def test_bulk_converts_carts_like_single_records():
    cart_upsert(
        external_id="named", customer="a", items=[{"sku": "A", "quantity": 1, "unit_price": "1"}], updated_at=T0
    )
    cart_upsert(
        external_id="older", customer="b", items=[{"sku": "A", "quantity": 1, "unit_price": "1"}], updated_at=T0
    )
    cart_upsert(
        external_id="newer",
        customer="c",
        items=[{"sku": "A", "quantity": 1, "unit_price": "1"}],
        updated_at=T0 + dt.timedelta(days=30),
    )
    purchases_record_bulk(
        raw_purchases=[
            order(1, "a", placed_at=(T0 - dt.timedelta(days=1)).isoformat(), cart_id="named"),
            order(2, "b"),  # after "older" was last updated
            order(3, "c"),  # before "newer" was last updated
            order(4, "c", status="cancelled", placed_at=(T0 + dt.timedelta(days=40)).isoformat()),
        ]
    )
    statuses = dict(Cart.objects.values_list("external_id", "status"))
    assert statuses == {"named": "converted", "older": "converted", "newer": "open"}
    assert Purchase.objects.get(external_id="o-1").cart.external_id == "named"


def test_the_same_id_twice_in_one_batch():
    results = purchases_record_bulk(raw_purchases=[order(1, "a"), order(1, "a"), order(1, "a", total="99.00")])
    assert [r.status for r in results] == ["created", "exists", "error"]
    assert results[2].error["code"] == "purchase_conflict"


def test_fallback_one_by_one_gives_the_same_answer(monkeypatch):
    def broken(*args, **kwargs):
        raise DatabaseError("simulated failure of the set-based path")

    monkeypatch.setattr(bulk, "_insert_set_based", broken)
    results = purchases_record_bulk(raw_purchases=[order(1, "a"), order(2, "a", total="-1"), order(3, "b")])
    assert [r.status for r in results] == ["created", "error", "created"]
    assert_stats_match_purchases()


def test_an_id_taken_after_the_lookup_still_gets_its_own_answer(monkeypatch):
    """A concurrent request may store an order id between the batch's lookup and its insert: the
    insert then fails as a whole and the batch goes one by one, each item answering for itself."""
    purchases_record_bulk(raw_purchases=[order(1, "a"), order(2, "a")])
    monkeypatch.setattr(bulk, "_stored_digests", lambda external_ids: {})  # the lookup ran before
    results = purchases_record_bulk(raw_purchases=[order(1, "a"), order(2, "a", total="99.00"), order(3, "b")])
    assert [r.status for r in results] == ["exists", "error", "created"]
    assert results[1].error["code"] == "purchase_conflict"
    assert Purchase.objects.count() == 3
    assert_stats_match_purchases()
    for customer in ("a", "b"):
        assert_ledger_consistent(customer)


def test_a_customer_created_after_the_lookup_is_neither_created_twice_nor_lost(monkeypatch):
    purchases_record_bulk(raw_purchases=[order(1, "a")])
    entries_before = PointsEntry.objects.filter(customer__external_id="a").count()
    lookups = []

    def stale_first_lookup(names):  # the first lookup ran before a concurrent request created "a"
        lookups.append(names)
        return {} if len(lookups) == 1 else real_lookup(names)

    real_lookup = bulk._customer_ids
    monkeypatch.setattr(bulk, "_customer_ids", stale_first_lookup)
    results = purchases_record_bulk(raw_purchases=[order(2, "a"), order(3, "b")])
    assert [r.status for r in results] == ["created", "created"]
    assert Customer.objects.filter(external_id="a").count() == 1
    assert Customer.objects.get(external_id="a").orders_count == 2
    # "a" earned points for its second order, and got no second welcome bonus.
    assert list(
        PointsEntry.objects.filter(customer__external_id="a").exclude(kind="bonus").values_list("kind", flat=True)
    ) == ["earn", "earn"]
    assert PointsEntry.objects.filter(customer__external_id="a").count() == entries_before + 1
    assert_stats_match_purchases()


@pytest.mark.django_db(transaction=True)
def test_concurrent_overlapping_batches_neither_deadlock_nor_double_count():
    batches = [
        [order(n, f"c-{n % 10}") for n in range(0, 300)],
        [order(n, f"c-{n % 10}") for n in range(150, 450)],  # overlaps ids 150..299 and every customer
    ]
    outcomes: list[list[str] | Exception] = []
    barrier = threading.Barrier(2)

    def send(batch: list[dict]) -> None:
        try:
            barrier.wait()
            outcomes.append([r.status for r in purchases_record_bulk(raw_purchases=batch)])
        except Exception as error:  # asserted below
            outcomes.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(batch,)) for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert all(isinstance(outcome, list) for outcome in outcomes), outcomes
    created = sum(statuses.count("created") for statuses in outcomes)
    exists = sum(statuses.count("exists") for statuses in outcomes)
    assert (created, exists) == (450, 150)
    assert Purchase.objects.count() == 450
    assert_stats_match_purchases()
    # Both batches created the same ten customers at once: one welcome bonus each, one earning per
    # purchase, and every balance is its ledger's sum.
    assert PointsEntry.objects.filter(idempotency_key__startswith="bonus:welcome:").count() == 10
    assert PointsEntry.objects.filter(kind="earn").count() == 450
    for n in range(10):
        assert_ledger_consistent(f"c-{n}")


def test_bulk_and_single_records_leave_the_same_loyalty_state():
    """Same purchases through both paths: same points, tiers and ledger, customer by customer."""
    from customers.models import PointsEntry
    from customers.services import PurchaseInput, purchase_record

    rng = random.Random(11)
    plan = [(n, rng.randrange(8), f"{rng.randrange(1, 3000)}.{rng.randrange(100):02d}") for n in range(120)]
    for n, who, total in plan:
        purchase_record(data=PurchaseInput.clean(order(n, f"single-{who}", external_id=f"s-{n}", total=total)))
    # A request records its purchases together (one tier recompute per customer per request), so
    # the paths agree when each request holds at most one purchase per customer, in the same order.
    rounds: dict[int, list[dict]] = {}
    seen: dict[int, int] = {}
    for n, who, total in plan:
        seen[who] = seen.get(who, -1) + 1
        rounds.setdefault(seen[who], []).append(order(n, f"bulk-{who}", external_id=f"b-{n}", total=total))
    for number in sorted(rounds):
        purchases_record_bulk(raw_purchases=rounds[number])

    def state(prefix: str) -> dict:
        return {
            customer.external_id.removeprefix(prefix): (
                customer.points_balance,
                customer.tier,
                sorted(PointsEntry.objects.filter(customer=customer).values_list("kind", "points")),
            )
            for customer in Customer.objects.filter(external_id__startswith=prefix)
        }

    assert state("single-") == state("bulk-")
    assert any(balance > 0 for balance, _, _ in state("bulk-").values())


def test_a_batch_writes_each_buyers_row_once():
    """Stats, points and tier go into one UPDATE of the buyers' rows per batch, not one each."""
    from django.test.utils import CaptureQueriesContext

    purchases_record_bulk(raw_purchases=[order(0, "known-a"), order(1, "known-b")])  # the buyers exist
    batch = [order(n, f"known-{'ab'[n % 2]}", total="2500.00") for n in range(2, 12)]  # lifts both to gold
    with CaptureQueriesContext(connection) as queries:
        purchases_record_bulk(raw_purchases=batch)

    updates = [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith("UPDATE CUSTOMERS_CUSTOMER")]
    assert len(updates) == 1
    for name in ("known-a", "known-b"):
        customer = Customer.objects.get(external_id=name)
        assert customer.tier == "gold"
        assert customer.tier_changes.count() == 1
        assert_ledger_consistent(name)
    assert_stats_match_purchases()


def test_new_customers_get_the_models_defaults_and_their_welcome_bonus():
    from customers.loyalty.services import loyalty_program_get

    purchases_record_bulk(raw_purchases=[order(n, f"new-{n}", status="refunded") for n in range(3)])

    bonus = loyalty_program_get().welcome_bonus
    assert bonus > 0
    made_by_django = Customer.objects.create(external_id="reference")
    for customer in Customer.objects.filter(external_id__startswith="new-"):
        assert customer.points_balance == bonus
        assert list(PointsEntry.objects.filter(customer=customer).values_list("kind", "points", "balance_after")) == [
            ("bonus", bonus, bonus)
        ]
        for name in ("email", "phone", "timezone", "tags", "attributes", "tier", "orders_count", "total_spent"):
            assert getattr(customer, name) == getattr(made_by_django, name), name
        assert abs(customer.created_at - made_by_django.created_at) < dt.timedelta(minutes=1)
        assert_ledger_consistent(customer.external_id)


def test_values_with_quotes_backslashes_and_braces_survive_the_batch_statements():
    awkward = 'a "quoted" \\ back, {brace} NULL'
    results = purchases_record_bulk(
        raw_purchases=[
            order(
                1,
                'cust "x" \\ {y}',
                external_id='o,{1}"\\',
                items=[{"sku": "S,1", "name": awkward, "category": "NULL", "quantity": 1, "unit_price": "1.00"}],
            )
        ]
    )

    assert [r.status for r in results] == ["created"]
    purchase = Purchase.objects.get(external_id='o,{1}"\\')
    assert purchase.customer.external_id == 'cust "x" \\ {y}'
    assert list(purchase.items.values_list("sku", "name", "category")) == [("S,1", awkward, "NULL")]


def test_the_import_may_send_larger_batches_than_the_api_allows():
    batch = [order(n, f"c-{n % 7}") for n in range(bulk.MAX_BULK_PURCHASES + 1)]
    with pytest.raises(ApplicationError, match="at most 1000 purchases"):
        purchases_record_bulk(raw_purchases=batch)

    results = purchases_record_bulk(raw_purchases=batch, max_purchases=len(batch))

    assert [r.status for r in results] == ["created"] * len(batch)
    assert_stats_match_purchases()


def test_preparing_a_batch_reads_nothing_and_recording_it_answers_as_the_one_call(django_assert_num_queries):
    """The import validates the next batch in its reading thread while writers record: the first
    half must not touch the database, and both halves together answer as purchases_record_bulk."""
    raw = [order(1, "a"), order(2, "b", total="-1"), order(1, "a"), order(1, "a", total="99.00"), order(3, "a")]
    with django_assert_num_queries(0):
        prepared = bulk.purchases_prepare(raw_purchases=raw)
    assert [r.status if r else None for r in prepared.results] == [None, "error", "exists", "error", None]
    results = bulk.purchases_record_prepared(prepared)
    assert [r.status for r in results] == ["created", "error", "exists", "error", "created"]
    assert [r.status for r in purchases_record_bulk(raw_purchases=raw)] == [
        "exists",
        "error",
        "exists",
        "error",
        "exists",
    ]
    assert_stats_match_purchases()


def test_repeated_item_lines_are_validated_once_yet_each_answers_for_itself():
    line = {"sku": "MUG", "name": "Mug", "category": "kitchen", "quantity": "2", "unit_price": "4.50"}
    batch = [
        order(1, "a", items=[dict(line)]),
        order(2, "b", items=[dict(line), dict(line)]),
        # The same cells but for one: this order fails, naming its own line.
        order(3, "c", items=[dict(line), {**line, "quantity": "0"}]),
        # The API's JSON types: True equals 1 as a key would, but it is no quantity.
        order(4, "d", items=[{"sku": "MUG", "quantity": 1, "unit_price": "4.50"}]),
        order(5, "e", items=[{"sku": "MUG", "quantity": True, "unit_price": "4.50"}]),
        order(6, "f", items=[{"sku": ["MUG"], "quantity": "1", "unit_price": "4.50"}]),
    ]
    prepared = bulk.purchases_prepare(raw_purchases=batch)
    first, second = (item for _, item, _ in prepared.candidates[:2])
    assert first.items[0] is second.items[0] is second.items[1]  # reused, not validated again
    results = bulk.purchases_record_prepared(prepared)
    assert [r.status for r in results] == ["created", "created", "error", "created", "error", "error"]
    assert "items[1].quantity" in results[2].error["fields"]
    assert "items[0].quantity" in results[4].error["fields"]
    assert "items[0].sku" in results[5].error["fields"]
    stored = PurchaseItem.objects.filter(purchase__external_id="o-2")
    assert sorted(stored.values_list("sku", "quantity", "unit_price")) == [("MUG", 2, Decimal("4.50"))] * 2
