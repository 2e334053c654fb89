"""manage.py import_purchases: SPEC §7 (column mapping, per-row error report, safe to re-run,
progress, the bulk path's batches)."""

import csv
import datetime as dt
import gc
import io
import re
import tempfile
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.utils import timezone

from campaigns.models import Attribution
from campaigns.services import campaign_create
from customers.csv_common import RELAXED_GC_THRESHOLDS
from customers.csv_import import PurchaseCsv, customer_share, orders_import
from customers.models import Cart, Customer, PointsEntry, Product, Purchase, PurchaseItem, TierChange
from customers.services import cart_upsert, purchases_record_bulk
from tests.factories import message_reached
from tests.loyalty_support import assert_ledger_consistent, program_set

pytestmark = pytest.mark.django_db

ITEM_HEADER = "external_id,customer,placed_at,total,currency,status,sku,name,category,quantity,unit_price"
GOOD_ROWS = (
    "A-1,c-1,2026-01-10T10:00:00+00:00,30.00,USD,completed,TEA,Green tea,tea,2,10.00",
    "A-1,c-1,2026-01-10T10:00:00+00:00,30.00,USD,completed,MUG,Mug,kitchen,1,10.00",
    "A-2,c-1,2026-03-05T09:30:00+00:00,12.50,,,SOAP,Soap,bath,1,12.50",
    "A-3,c-2,2026-02-01 08:00,99.99,usd,refunded,,,,,",
)


@pytest.fixture(autouse=True)
def store_currency_usd(settings):
    settings.STORE_CURRENCY = "USD"


def write(tmp_path: Path, *lines: str, name: str = "purchases.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes("".join(f"{line}\n" for line in lines).encode(encoding))
    return path


def run(path: Path, *args: str) -> str:
    out = io.StringIO()
    call_command("import_purchases", str(path), "--no-progress", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def run_failing(path: Path, *args: str) -> tuple[str, str]:
    """The command's output and the message of the CommandError it ends with."""
    out = io.StringIO()
    with pytest.raises(CommandError) as info:
        call_command("import_purchases", str(path), "--no-progress", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue(), str(info.value)


def snapshot() -> dict[str, list]:
    return {
        "purchases": list(Purchase.objects.order_by("external_id").values_list("external_id", "total", "status")),
        "items": list(PurchaseItem.objects.order_by("id").values_list("purchase__external_id", "sku", "quantity")),
        "customers": list(
            Customer.objects.order_by("external_id").values_list(
                "external_id", "orders_count", "total_spent", "first_purchase_at", "last_purchase_at"
            )
        ),
    }


def test_good_file_creates_purchases_items_customers_and_stats(tmp_path, store_tz):
    output = run(write(tmp_path, ITEM_HEADER, *GOOD_ROWS))

    assert "created 3, exists 0, errors 0" in output
    a1 = Purchase.objects.get(external_id="A-1")
    assert a1.total == Decimal("30.00")
    assert list(a1.items.order_by("id").values_list("sku", "name", "category", "quantity", "unit_price")) == [
        ("TEA", "Green tea", "tea", 2, Decimal("10.00")),
        ("MUG", "Mug", "kitchen", 1, Decimal("10.00")),
    ]
    a3 = Purchase.objects.get(external_id="A-3")
    assert a3.status == "refunded"
    assert a3.currency == "USD"
    assert a3.placed_at == dt.datetime(2026, 2, 1, 8, 0, tzinfo=store_tz)  # naive times are store time
    assert not a3.items.exists()
    assert set(Product.objects.values_list("sku", flat=True)) == {"TEA", "MUG", "SOAP"}

    c1 = Customer.objects.get(external_id="c-1")
    assert (c1.orders_count, c1.total_spent) == (2, Decimal("42.50"))
    assert c1.first_purchase_at == dt.datetime(2026, 1, 10, 10, 0, tzinfo=dt.UTC)
    assert c1.last_purchase_at == dt.datetime(2026, 3, 5, 9, 30, tzinfo=dt.UTC)
    c2 = Customer.objects.get(external_id="c-2")  # created by its refunded order, which does not count
    assert (c2.orders_count, c2.total_spent, c2.first_purchase_at) == (0, Decimal("0.00"), None)


def test_rerun_counts_exists_and_changes_nothing(tmp_path):
    path = write(tmp_path, ITEM_HEADER, *GOOD_ROWS)
    run(path)
    before = snapshot()

    output = run(path)

    assert "created 0, exists 3, errors 0" in output
    assert snapshot() == before


def test_mapped_columns_and_delimiter(tmp_path):
    path = write(
        tmp_path,
        "order_no;client_id;date;amount;article;qty;price",
        "M-1;client-9;2026-04-01T12:00:00Z;15.00;PEN;3;5.00",
    )

    output = run(
        path,
        "--delimiter",
        ";",
        *("--map", "external_id=order_no", "--map", "customer=client_id", "--map", "placed_at=date"),
        *("--map", "total=amount", "--map", "sku=article", "--map", "quantity=qty", "--map", "unit_price=price"),
    )

    assert "created 1, exists 0, errors 0" in output
    purchase = Purchase.objects.get(external_id="M-1")
    assert (purchase.customer.external_id, purchase.total) == ("client-9", Decimal("15.00"))
    assert list(purchase.items.values_list("sku", "quantity", "unit_price")) == [("PEN", 3, Decimal("5.00"))]


def test_bad_rows_are_reported_with_line_and_field_and_good_rows_import(tmp_path):
    path = write(
        tmp_path,
        "external_id,customer,placed_at,total,currency,sku,quantity,unit_price",
        "B-1,c-1,2026-01-10T10:00:00Z,10.00,,X,1,10.00",
        "B-2,c-1,2026-13-01,10.00,,X,1,10.00",
        "B-3,c-1,2026-01-10T10:00:00Z,-5.00,,X,1,10.00",
        "B-4,c-1,2026-01-10T10:00:00Z,10.005,,X,1,10.00",
        "B-5,c-2,2026-01-10T10:00:00Z,20.00,,X,1,10.00",
        "B-5,c-2,2026-01-10T10:00:00Z,20.00,,Y,0,10.00",
        "B-6,c-2,2026-01-10T10:00:00Z,10.00,EUR,X,1,10.00",
        "B-7,c-3,2026-01-11T10:00:00Z,7.00,,X,1,7.00",
        "B-8,c-3,2026-01-12T10:00:00Z,abc,,X,1,7.00",
    )

    output, error = run_failing(path)

    assert set(Purchase.objects.values_list("external_id", flat=True)) == {"B-1", "B-7"}
    assert not Customer.objects.filter(external_id="c-2").exists()  # a failed order leaves nothing behind
    assert "line 3: order B-2: placed_at: must be an ISO 8601 date-time" in output
    assert "line 4: order B-3: total: must not be negative" in output
    assert "line 5: order B-4: total: must have at most 2 decimal places" in output
    assert "line 7: order B-5: quantity: must be between 1 and 1000000" in output  # the item's own line
    assert "line 8: order B-6: currency: must be USD" in output
    assert "line 10: order B-8: total: must be a decimal amount" in output
    assert "created 2, exists 0, errors 6" in output
    assert "6 order(s) failed" in error


def test_conflicting_rerun_is_reported_and_keeps_the_first_version(tmp_path):
    run(write(tmp_path, ITEM_HEADER, *GOOD_ROWS))
    changed = write(
        tmp_path,
        "external_id,customer,placed_at,total",
        "A-2,c-1,2026-03-05T09:30:00+00:00,13.00",
        name="changed.csv",
    )

    output, _ = run_failing(changed)

    assert "line 2: order A-2: external_id: already used for a different purchase" in output
    assert "created 0, exists 0, errors 1" in output
    assert Purchase.objects.get(external_id="A-2").total == Decimal("12.50")
    assert Customer.objects.get(external_id="c-1").total_spent == Decimal("42.50")


def test_non_utf8_file_is_refused_with_offset_and_line_before_anything_is_written(tmp_path):
    path = write(
        tmp_path,
        "external_id,customer,placed_at,total,sku,name,quantity,unit_price",
        "L-1,c-1,2026-01-10T10:00:00Z,4.00,TEA,Tea,1,4.00",
        "L-2,c-1,2026-01-11T10:00:00Z,4.00,CAFE,Café,1,4.00",
        encoding="latin-1",
    )
    offset = path.read_bytes().index(b"\xe9")

    with pytest.raises(CommandError, match="encoding") as info:
        run(path)

    assert f"byte offset {offset} (line 3)" in str(info.value)
    assert not Purchase.objects.exists()


def test_encoding_option_reads_latin1(tmp_path):
    path = write(
        tmp_path,
        "external_id,customer,placed_at,total,sku,name,quantity,unit_price",
        "L-2,c-1,2026-01-11T10:00:00Z,4.00,CAFE,Café,1,4.00",
        encoding="latin-1",
    )

    run(path, "--encoding", "latin-1")

    assert PurchaseItem.objects.get(purchase__external_id="L-2").name == "Café"


def test_utf8_byte_order_mark_is_accepted(tmp_path):
    path = write(tmp_path, "\ufeffexternal_id,customer,placed_at,total", "U-1,c-1,2026-01-10T10:00:00Z,4.00")

    assert "created 1," in run(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "empty"), (b"external_id,customer,placed_at,total\n", "no rows"), (b"\n\n", "empty")],
    ids=["zero-bytes", "header-only", "blank-lines"],
)
def test_file_without_rows_is_refused(tmp_path, content, message):
    path = tmp_path / "purchases.csv"
    path.write_bytes(content)

    with pytest.raises(CommandError, match=message):
        run(path)


def test_missing_file_and_directory_are_refused(tmp_path):
    with pytest.raises(CommandError, match="no such file"):
        run(tmp_path / "absent.csv")
    with pytest.raises(CommandError, match="is a directory"):
        run(tmp_path)


def test_unknown_columns_are_refused_unless_ignored(tmp_path):
    path = write(tmp_path, "external_id,customer,placed_at,total,coupon", "K-1,c-1,2026-01-10T10:00:00Z,4.00,SAVE5")

    with pytest.raises(CommandError, match="unknown columns: 'coupon'"):
        run(path)
    assert not Purchase.objects.exists()

    assert "created 1," in run(path, "--ignore-unknown-columns")


def test_missing_required_column_is_refused(tmp_path):
    path = write(tmp_path, "external_id,customer,placed_at,amount", "K-1,c-1,2026-01-10T10:00:00Z,4.00")

    with pytest.raises(CommandError, match="missing required columns: total"):
        run(path, "--ignore-unknown-columns")


def test_item_columns_need_sku_quantity_and_unit_price(tmp_path):
    path = write(tmp_path, "external_id,customer,placed_at,total,sku", "K-1,c-1,2026-01-10T10:00:00Z,4.00,TEA")

    with pytest.raises(CommandError, match="missing: quantity, unit_price"):
        run(path)


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ("price=amount", "unknown field 'price'"),
        ("external_id", "write it as field=column"),
        ("=order_no", "write it as field=column"),
        ("external_id=order_no", "the file has no column 'order_no'"),
    ],
)
def test_bad_map_is_refused(tmp_path, mapping, message):
    path = write(tmp_path, "external_id,customer,placed_at,total", "K-1,c-1,2026-01-10T10:00:00Z,4.00")

    with pytest.raises(CommandError, match=message):
        run(path, "--map", mapping)


def test_dry_run_reports_but_writes_nothing(tmp_path):
    output = run(write(tmp_path, ITEM_HEADER, *GOOD_ROWS), "--dry-run")

    assert "dry run, nothing written: created 3, exists 0, errors 0" in output
    assert not Purchase.objects.exists()
    assert not Customer.objects.exists()
    assert not Product.objects.exists()


def test_errors_csv_holds_the_report_in_the_files_column_names(tmp_path):
    path = write(
        tmp_path,
        "order_no,customer,placed_at,amount",
        "E-1,c-1,2026-01-10T10:00:00Z,4.00",
        "E-2,c-1,2026-01-10T10:00:00Z,-1",
    )
    report = tmp_path / "errors.csv"

    output, _ = run_failing(path, "--map", "external_id=order_no", "--map", "total=amount", "--errors-csv", str(report))

    assert "line 3: order E-2: amount (total): must not be negative" in output
    with report.open(newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    assert rows == [
        {
            "line": "3",
            "external_id": "E-2",
            "field": "total",
            "column": "amount",
            "code": "invalid",
            "message": "must not be negative",
        }
    ]


def test_order_lines_must_be_adjacent(tmp_path):
    path = write(
        tmp_path,
        "external_id,customer,placed_at,total,sku,quantity,unit_price",
        "D-1,c-1,2026-01-10T10:00:00Z,8.00,TEA,1,4.00",
        "D-2,c-1,2026-01-11T10:00:00Z,4.00,TEA,1,4.00",
        "D-1,c-1,2026-01-10T10:00:00Z,8.00,MUG,1,4.00",
    )

    output, _ = run_failing(path)

    assert "line 4: order D-1: external_id: order lines must be adjacent" in output
    assert list(PurchaseItem.objects.filter(purchase__external_id="D-1").values_list("sku", flat=True)) == ["TEA"]


def test_lines_of_one_order_must_agree_but_may_leave_order_cells_blank(tmp_path):
    path = write(
        tmp_path,
        "external_id,customer,placed_at,total,sku,quantity,unit_price",
        "G-1,c-1,2026-01-10T10:00:00Z,8.00,TEA,1,4.00",
        "G-1,,,,MUG,1,4.00",
        "G-2,c-1,2026-01-11T10:00:00Z,8.00,TEA,1,4.00",
        "G-2,c-1,2026-01-11T10:00:00Z,9.00,MUG,1,4.00",
    )

    output, _ = run_failing(path)

    assert Purchase.objects.get(external_id="G-1").items.count() == 2
    assert "line 5: order G-2: total: '9.00' differs from '8.00' on line 4 of the same order" in output
    assert not Purchase.objects.filter(external_id="G-2").exists()


def test_line_with_the_wrong_number_of_cells_fails_its_order(tmp_path):
    path = write(
        tmp_path,
        "external_id,customer,placed_at,total",
        "W-1,c-1,2026-01-10T10:00:00Z,4.00",
        "W-2,c-1,2026-01-10T10:00:00Z,4,00",
    )

    output, _ = run_failing(path)

    assert "line 3: order W-2: has 5 cells but the header has 4" in output
    assert list(Purchase.objects.values_list("external_id", flat=True)) == ["W-1"]


def test_line_numbers_count_physical_lines_of_quoted_multiline_cells(tmp_path):
    path = write(
        tmp_path,
        "external_id,customer,placed_at,total,sku,name,quantity,unit_price",
        'Q-1,c-1,2026-01-10T10:00:00Z,4.00,TEA,"Tea,',
        'two lines",1,4.00',
        "Q-2,c-1,2026-01-10T10:00:00Z,-4.00,TEA,Tea,1,4.00",
    )

    output, _ = run_failing(path)

    assert PurchaseItem.objects.get(purchase__external_id="Q-1").name == "Tea,\ntwo lines"
    assert "line 4: order Q-2: total: must not be negative" in output


def test_unreadable_line_stops_the_import_after_reporting_what_was_done(tmp_path):
    path = write(
        tmp_path,
        "external_id,customer,placed_at,total",
        "S-1,c-1,2026-01-10T10:00:00Z,4.00",
        "S-2,c-1,2026-01-11T10:00:00Z,4.00",
        f"S-3,c-1,2026-01-12T10:00:00Z,{'9' * 200_000}",
    )

    output, error = run_failing(path)

    # S-2 is held back too: the unreadable line might have been one of its item lines.
    assert list(Purchase.objects.values_list("external_id", flat=True)) == ["S-1"]
    assert "created 1, exists 0, errors 0" in output
    assert "stopped reading at line 4: field larger than field limit" in error


# --- The bulk path, in batches -------------------------------------------------------------------

ORDER_HEADER = "external_id,customer,placed_at,total,status,cart_id,sku,name,category,quantity,unit_price"


def order(number: int, customer: str, placed_at: dt.datetime, *, status: str = "completed", cart: str = "") -> dict:
    """A purchase in the SPEC §6 shape with two items, as the bulk API takes it."""
    first, second = Decimal(10 + number % 7), Decimal(number % 5) + Decimal("0.50")
    return {
        "external_id": f"P-{number}",
        "customer": customer,
        "placed_at": placed_at.isoformat(),
        "total": str(2 * first + second),
        "status": status,
        "cart_id": cart,
        "items": [
            {"sku": f"SKU-{number % 3}", "name": "Tea", "category": "tea", "quantity": 2, "unit_price": str(first)},
            {"sku": "MUG", "name": "Mug", "category": "kitchen", "quantity": 1, "unit_price": str(second)},
        ],
    }


def csv_lines(purchases: list[dict]) -> list[str]:
    """The purchases as CSV lines under ORDER_HEADER: one per item, order cells blank after the first."""
    lines = []
    for purchase in purchases:
        head = [purchase[name] for name in ("external_id", "customer", "placed_at", "total", "status", "cart_id")]
        for index, item in enumerate(purchase["items"]):
            cells = head if index == 0 else [purchase["external_id"], "", "", "", "", ""]
            item_cells = [str(item[name]) for name in ("sku", "name", "category", "quantity", "unit_price")]
            lines.append(",".join(cells + item_cells))
    return lines


def stored_state() -> dict[str, list]:
    """What recording purchases leaves behind, by external ids (database ids differ between runs)."""
    return {
        "purchases": sorted(Purchase.objects.values_list("external_id", "customer__external_id", "total", "status")),
        "items": sorted(PurchaseItem.objects.values_list("purchase__external_id", "sku", "quantity", "unit_price")),
        "customers": sorted(
            Customer.objects.values_list(
                "external_id",
                "orders_count",
                "total_spent",
                "first_purchase_at",
                "last_purchase_at",
                "points_balance",
                "tier",
            )
        ),
        "ledger": sorted(
            PointsEntry.objects.values_list("customer__external_id", "kind", "points", "purchase__external_id"),
            key=str,
        ),
        "tier_changes": sorted(
            TierChange.objects.values_list("customer__external_id", "from_tier", "to_tier", "cause")
        ),
        "carts": sorted(Cart.objects.values_list("external_id", "status")),
        "attributions": sorted(Attribution.objects.values_list("purchase__external_id", "message__dedupe_key")),
    }


def counts() -> dict[str, int]:
    models = (Customer, Purchase, PurchaseItem, Product, PointsEntry, TierChange, Attribution)
    return {model.__name__: model.objects.count() for model in models}


@pytest.fixture
def shop() -> dt.datetime:
    """A loyalty program with a welcome bonus and tiers, a campaign message to c-1 and two open
    carts; returns the time the shop's orders start from."""
    start = (timezone.now() - dt.timedelta(days=20)).replace(microsecond=0)
    program_set(welcome_bonus=25)
    campaign = campaign_create(
        data={
            "name": "We miss you",
            "trigger": "reactivation",
            "channel": "email",
            "status": "active",
            "subject": "Hello",
            "body": "We miss you.",
            "holdout_percent": 0,
        }
    )
    reached = Customer.objects.create(external_id="c-1")
    message_reached(campaign_id=campaign.pk, customer=reached, status="sent", at=start)
    line = [{"sku": "TEA", "quantity": 1, "unit_price": "4.00"}]
    cart_upsert(external_id="cart-named", customer="c-2", items=line, updated_at=start + dt.timedelta(days=5))
    cart_upsert(external_id="cart-older", customer="c-3", items=line, updated_at=start)
    return start


def shop_orders(start: dt.datetime, count: int = 12) -> list[dict]:
    customers = ["c-1", "c-2", "c-3", "c-4", "c-5"]
    purchases = [
        order(n, customers[n % len(customers)], start + dt.timedelta(days=1, hours=n), status=status)
        for n, status in zip(range(count), ["completed"] * 5 + ["refunded"] + ["completed"] * 99, strict=False)
    ]
    purchases[1]["cart_id"] = "cart-named"  # c-2's order names its cart; c-3's follows its older cart
    purchases[3]["total"] = "2500.00"  # c-4 goes up a tier
    return purchases


def test_points_stats_carts_and_attribution_are_those_of_the_bulk_api(tmp_path, shop):
    purchases = shop_orders(shop)
    path = write(tmp_path, ORDER_HEADER, *csv_lines(purchases))

    with transaction.atomic():
        before = transaction.savepoint()
        output = run(path, "--batch-size", "5")
        via_csv = stored_state()
        transaction.savepoint_rollback(before)
        assert not Purchase.objects.exists()
        results = purchases_record_bulk(raw_purchases=purchases)
        via_api = stored_state()

    assert f"created {len(purchases)}, exists 0, errors 0" in output
    assert {result.status for result in results} == {"created"}
    assert via_csv == via_api
    # And the state is the full one, not two equally empty ones.
    assert ("P-0", "c-1") in via_csv["attributions"]  # c-1's order the day after its message
    assert dict(via_csv["carts"]) == {"cart-named": "converted", "cart-older": "converted"}
    assert {kind for _, kind, _, _ in via_csv["ledger"]} >= {"earn", "bonus"}
    assert any(to_tier != "bronze" for _, _, to_tier, _ in via_csv["tier_changes"])
    for customer in ("c-1", "c-2", "c-3", "c-4", "c-5"):
        assert_ledger_consistent(customer)


def test_a_rerun_stores_nothing_new(tmp_path, shop):
    path = write(tmp_path, ORDER_HEADER, *csv_lines(shop_orders(shop)))
    run(path, "--batch-size", "5")
    before, stored, numbers = stored_state(), snapshot(), counts()

    output = run(path, "--batch-size", "5")

    assert "created 0, exists 12, errors 0" in output
    assert counts() == numbers
    assert stored_state() == before
    assert snapshot() == stored


def test_bad_orders_in_a_batch_of_good_ones_fail_alone_and_leave_nothing_behind(tmp_path, shop):
    purchases_record_bulk(raw_purchases=[{**order(90, "c-1", shop), "total": "1.00", "items": []}])
    good = shop_orders(shop, count=4)
    path = write(
        tmp_path,
        ORDER_HEADER,
        *csv_lines(good[:2]),  # lines 2-5
        "P-90,c-1,2026-01-10T10:00:00Z,9.99,,,,,,,",  # 6: P-90 is stored with other content
        f"B-1,only-bad,{shop.isoformat()},-3.00,,,,,,,",  # 7: a negative total
        f"B-2,only-bad,{shop.isoformat()},4.00,,,TEA,Tea,tea,1,4.00",  # 8
        "B-2,,,,,,MUG,Mug,kitchen,0,1.00",  # 9: its second item has no quantity
        f"B-3,only-bad,{shop.isoformat()},4.00,,,TEA,Tea,tea,1,4.00,surplus",  # 10: a cell too many
        *csv_lines(good[2:]),  # 11-14
        *csv_lines(good[:1])[1:],  # 15: a line of P-0 after other orders
    )

    output, error = run_failing(path)

    assert "line 6: order P-90: external_id: already used for a different purchase" in output
    assert "line 7: order B-1: total: must not be negative" in output
    assert "line 9: order B-2: quantity: must be between 1 and 1000000" in output
    assert "line 10: order B-3: has 12 cells but the header has 11" in output
    assert "line 15: order P-0: external_id: order lines must be adjacent" in output
    assert "created 4, exists 0, errors 5" in output
    assert "5 order(s) failed" in error
    # The good orders are whole; of the bad ones nothing is stored, not even their customer.
    assert set(Purchase.objects.values_list("external_id", flat=True)) == {"P-0", "P-1", "P-2", "P-3", "P-90"}
    assert PurchaseItem.objects.filter(purchase__external_id="P-0").count() == 2
    assert not PurchaseItem.objects.filter(purchase__external_id__startswith="B-").exists()
    assert not Customer.objects.filter(external_id="only-bad").exists()
    assert Purchase.objects.get(external_id="P-90").total == Decimal("1.00")
    assert not PointsEntry.objects.filter(customer__external_id="only-bad").exists()
    c1 = Customer.objects.get(external_id="c-1")
    assert c1.total_spent == Decimal("1.00") + Decimal(good[0]["total"])
    assert PointsEntry.objects.filter(kind="earn", purchase__external_id__in=["P-0", "P-1", "P-2", "P-3"]).count() == 4


def test_a_file_of_many_batches_reports_lines_across_them(tmp_path, shop):
    purchases = shop_orders(shop, count=9)
    lines = csv_lines(purchases)  # two lines per order: P-n starts on line 2 + 2n
    lines[6] = lines[6].replace(",2,", ",-2,")  # P-3's first item, in the second batch: line 8
    lines.append(lines[0])  # P-0 again, in the fifth batch: line 20

    output, _ = run_failing(write(tmp_path, ORDER_HEADER, *lines), "--batch-size", "2")

    assert "line 8: order P-3: quantity: must be between 1 and 1000000" in output
    assert "line 20: order P-0: external_id: order lines must be adjacent" in output
    assert "created 8, exists 0, errors 2" in output
    assert Purchase.objects.count() == 8
    assert PurchaseItem.objects.count() == 16


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--batch-size", "0", "--batch-size must be between 1 and 20,000"),
        ("--batch-size", "20001", "--batch-size must be between 1 and 20,000"),
        ("--jobs", "0", "--jobs must be between 1 and 8"),
        ("--progress-every", "0", "--progress-every must be a positive number"),
    ],
)
def test_out_of_range_options_are_refused(tmp_path, option, value, message):
    path = write(tmp_path, ITEM_HEADER, *GOOD_ROWS)

    with pytest.raises(CommandError, match=message):
        run(path, option, value)
    assert not Purchase.objects.exists()


def test_the_order_ids_read_so_far_go_to_the_database_not_to_a_temporary_file(tmp_path, monkeypatch):
    path = write(tmp_path, ITEM_HEADER, *GOOD_ROWS)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))  # no temporary directory to write to

    run(path)

    assert Purchase.objects.count() == 3
    with connection.cursor() as cursor:  # the session's table of ids is gone with the import
        cursor.execute("SELECT to_regclass('pg_temp.purchase_import_seen')")
        assert cursor.fetchone()[0] is None


# --- Progress ------------------------------------------------------------------------------------

PROGRESS_LINE = re.compile(r"import_purchases: ([\d,]+) / 4 lines \((\d+) %\), [\d,]+ lines/s, ETA \d+:\d\d:\d\d")


def run_with_stderr(path: Path, *args: str) -> list[str]:
    err = io.StringIO()
    call_command("import_purchases", str(path), *args, stdout=io.StringIO(), stderr=err)
    return err.getvalue().splitlines()


def test_off_a_terminal_progress_is_a_line_every_few_seconds_with_count_rate_and_eta(tmp_path):
    path = write(tmp_path, ITEM_HEADER, *GOOD_ROWS)

    lines = run_with_stderr(path, "--batch-size", "1", "--progress-every", "0.000001")

    matches = [PROGRESS_LINE.fullmatch(line) for line in lines]
    assert all(matches), lines
    done = [int(match[1]) for match in matches]
    assert done[0] == 2  # after A-1, the first order, on two lines
    assert done == sorted(done)
    assert lines[-1].startswith("import_purchases: 4 / 4 lines (100 %)")


def test_a_short_import_prints_its_closing_line_only_and_no_progress_prints_none(tmp_path):
    path = write(tmp_path, ITEM_HEADER, *GOOD_ROWS)

    lines = run_with_stderr(path)  # done well within the default 5 s

    assert len(lines) == 1
    assert PROGRESS_LINE.fullmatch(lines[0])
    assert lines[0].startswith("import_purchases: 4 / 4 lines (100 %)")
    assert run_with_stderr(path, "--no-progress") == []


# --- Batches side by side, each writer on its own connection (so: committed data) ---------------


@pytest.mark.django_db(transaction=True)
def test_writers_side_by_side_record_what_one_would_and_report_in_file_order(tmp_path):
    program_set(welcome_bonus=10)
    start = (timezone.now() - dt.timedelta(days=30)).replace(microsecond=0)
    purchases = [order(n, f"c-{n % 6}", start + dt.timedelta(hours=n)) for n in range(30)]
    lines = csv_lines(purchases)
    lines[20] = lines[20].replace("completed", "lost")  # P-10's first line: line 22
    lines.append(lines[4])  # P-2 again: line 62
    path = write(tmp_path, ORDER_HEADER, *lines)

    output, _ = run_failing(path, "--jobs", "3", "--batch-size", "4")

    assert "line 22: order P-10: status: must be one of" in output
    assert "line 62: order P-2: external_id: order lines must be adjacent" in output
    assert "created 29, exists 0, errors 2" in output
    assert output.index("line 22") < output.index("line 62")
    assert Purchase.objects.count() == 29
    assert PointsEntry.objects.filter(kind="earn").count() == 29
    assert PointsEntry.objects.filter(idempotency_key__startswith="bonus:welcome:").count() == 6
    for number in range(6):
        customer = Customer.objects.get(external_id=f"c-{number}")
        completed = Purchase.objects.filter(customer=customer, status="completed")
        assert customer.orders_count == completed.count()
        assert customer.total_spent == sum(p.total for p in completed)
        assert_ledger_consistent(customer.external_id)

    again, _ = run_failing(path, "--jobs", "3", "--batch-size", "4")

    assert "created 0, exists 29, errors 2" in again
    assert Purchase.objects.count() == 29


@pytest.mark.django_db(transaction=True)
def test_writers_side_by_side_keep_what_was_read_before_an_unreadable_line(tmp_path):
    path = write(
        tmp_path,
        "external_id,customer,placed_at,total",
        "S-1,c-1,2026-01-10T10:00:00Z,4.00",
        "S-2,c-1,2026-01-11T10:00:00Z,4.00",
        "S-3,c-1,2026-01-12T10:00:00Z,4.00",
        f"S-4,c-1,2026-01-13T10:00:00Z,{'9' * 200_000}",
    )

    output, error = run_failing(path, "--jobs", "2", "--batch-size", "1")

    assert sorted(Purchase.objects.values_list("external_id", flat=True)) == ["S-1", "S-2"]
    assert "created 2, exists 0, errors 0" in output
    assert "stopped reading at line 5" in error


def test_writers_side_by_side_never_share_a_customer():
    """Each writer locks its batch's buyers until it commits: orders of one customer all go to one
    writer, so two writers never wait for each other, and every writer gets a share."""
    source_lines = [f"O-{n},c-{n % 50},2026-01-10T10:00:00Z,4.00" for n in range(400)]
    with tempfile.TemporaryDirectory() as folder:
        path = write(Path(folder), "external_id,customer,placed_at,total", *source_lines)
        with PurchaseCsv(path) as source:
            orders = list(source.orders())
    writer_of: dict[str, set[int]] = {}
    for lines in orders:
        writer_of.setdefault(lines.values["customer"][0], set()).add(customer_share(lines, 3))
    assert all(len(writers) == 1 for writers in writer_of.values())
    assert {writer for writers in writer_of.values() for writer in writers} == {0, 1, 2}


def test_the_collector_is_relaxed_during_an_import_only(tmp_path):
    thresholds, frozen = gc.get_threshold(), gc.get_freeze_count()
    seen: list[tuple[int, int, int]] = []
    path = write(tmp_path, "external_id,customer,placed_at,total", "G-1,c-1,2026-01-10T10:00:00Z,4.00")
    with PurchaseCsv(path) as source:
        for _ in orders_import(source.orders()):
            seen.append(gc.get_threshold())
    assert seen == [RELAXED_GC_THRESHOLDS]
    assert gc.get_threshold() == thresholds
    assert gc.get_freeze_count() == frozen
