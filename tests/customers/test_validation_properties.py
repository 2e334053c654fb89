"""Property-based tests of the input rules: whatever comes in, the answer is a clean value or an
ApplicationError naming the field, never another exception."""

import datetime as dt
import json
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from customers.services import PurchaseInput
from retention_crm import validation as v
from retention_crm.errors import ApplicationError

pytestmark = pytest.mark.django_db

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.decimals()
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
)


def clean_or_refuse(clean, value):
    try:
        return clean(value)
    except ApplicationError as error:
        assert error.status == 400 and error.fields
        return error


@given(st.decimals(min_value=0, max_value=Decimal("9999999999.99"), places=2))
def test_money_with_two_places_round_trips(amount):
    assert v.clean_money(str(amount), "total") == amount


@given(st.decimals(allow_nan=True, allow_infinity=True) | st.floats() | st.text() | st.integers())
def test_money_is_a_non_negative_two_place_decimal_or_refused(value):
    result = clean_or_refuse(lambda x: v.clean_money(x, "total"), value)
    if not isinstance(result, ApplicationError):
        assert isinstance(result, Decimal)
        assert result >= 0
        assert result == result.quantize(Decimal("0.01"))
        assert result < Decimal(10) ** 10


@given(st.text() | st.integers() | st.none())
def test_external_ids_are_1_to_64_printable_characters_or_refused(value):
    result = clean_or_refuse(v.clean_external_id, value)
    if not isinstance(result, ApplicationError):
        assert 1 <= len(result) <= 64
        assert result == result.strip()
        assert all(ord(ch) >= 32 for ch in result)


@given(st.text() | st.integers() | st.floats() | st.none() | st.datetimes())
def test_datetimes_are_aware_and_in_range_or_refused(value):
    result = clean_or_refuse(lambda x: v.clean_datetime(x, "placed_at"), value)
    if not isinstance(result, ApplicationError):
        assert result.tzinfo is not None
        assert 1900 <= result.year <= 2200
        assert abs(result.utcoffset()) <= dt.timedelta(hours=14)


@given(
    # Up to the present: a purchase placed more than a day ahead is refused (SPEC §8).
    st.datetimes(min_value=dt.datetime(1901, 1, 1), max_value=dt.datetime(2026, 1, 1), timezones=st.just(dt.UTC)),
    st.integers(min_value=-14 * 60, max_value=14 * 60),
)
def test_the_same_instant_in_any_offset_gives_the_same_purchase_digest(instant, offset_minutes):
    shifted = instant.astimezone(dt.timezone(dt.timedelta(minutes=offset_minutes)))
    base = {"external_id": "o-1", "customer": "c-1", "total": "10.00"}
    one = PurchaseInput.clean({**base, "placed_at": instant.isoformat()})
    two = PurchaseInput.clean({**base, "placed_at": shifted.isoformat()})
    assert one.digest() == two.digest()


@settings(max_examples=300)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "external_id": json_values,
            "customer": json_values,
            "placed_at": json_values,
            "total": json_values,
            "currency": json_values,
            "status": json_values,
            "items": json_values,
            "cart_id": json_values,
            "points_redeemed": json_values,
        },
    )
)
def test_any_json_purchase_is_cleaned_or_refused_with_a_field(raw):
    result = clean_or_refuse(PurchaseInput.clean, raw)
    if not isinstance(result, ApplicationError):
        assert result.total >= 0 and result.placed_at.tzinfo is not None


@given(st.text(max_size=40))
def test_phone_numbers_are_e164_or_refused(value):
    result = clean_or_refuse(v.clean_phone, value)
    if not isinstance(result, ApplicationError) and result:
        assert result.startswith("+") and result[1:].isdigit() and 8 <= len(result) <= 16


def test_attributes_with_a_number_json_cannot_hold_are_refused_by_name():
    import pytest

    from retention_crm import validation as v
    from retention_crm.errors import ApplicationError

    with pytest.raises(ApplicationError, match="numbers must be finite"):
        v.clean_attributes({"x": [1, float("inf")]})
    assert v.clean_attributes({"x": 1.5}) == {"x": 1.5}


def _content_as_first_written(purchase: PurchaseInput) -> str:
    """The digest's content as the first digests were made (``json.dumps`` of this dict, sorted):
    stored digests stay valid only while ``content_json`` spells it byte for byte like this."""
    return json.dumps(
        {
            "external_id": purchase.external_id,
            "customer": purchase.customer,
            "placed_at": purchase.placed_at.astimezone(dt.UTC).isoformat(),
            "total": str(purchase.total),
            "currency": purchase.currency,
            "status": purchase.status,
            "items": [[i.sku, i.name, i.category, i.quantity, str(i.unit_price)] for i in purchase.items],
            "cart_id": purchase.cart_id,
            "points_redeemed": purchase.points_redeemed,
        },
        sort_keys=True,
    )


ids = st.text(min_size=1, max_size=20).filter(lambda text: text.strip() and text == text.strip())
cells = st.text(max_size=20).map(str.strip)
money = st.decimals(min_value=0, max_value=Decimal("99999.99"), places=2)
items = st.builds(
    lambda sku, name, category, quantity, price: {
        "sku": sku,
        "name": name,
        "category": category,
        "quantity": quantity,
        "unit_price": str(price),
    },
    ids,
    cells,
    cells,
    st.integers(min_value=1, max_value=1000),
    money,
)


@settings(max_examples=300)
@given(
    external_id=ids,
    customer=ids,
    instant=st.datetimes(min_value=dt.datetime(2001, 1, 1), max_value=dt.datetime(2030, 1, 1)),
    total=money,
    status=st.sampled_from(["completed", "refunded", "cancelled"]),
    lines=st.lists(items, max_size=4),
    cart_id=st.none() | ids,
    points=st.integers(min_value=0, max_value=10**6),
)
def test_the_digest_content_is_spelled_as_the_first_digests_were(
    external_id, customer, instant, total, status, lines, cart_id, points
):
    raw = {
        "external_id": external_id,
        "customer": customer,
        "placed_at": instant.replace(tzinfo=dt.UTC).isoformat(),
        "total": str(total),
        "status": status,
        "items": lines,
        "points_redeemed": points,
    }
    if cart_id:
        raw["cart_id"] = cart_id
    try:
        purchase = PurchaseInput.clean(raw)
    except ApplicationError:
        return  # text the rules refuse (a control character, a lone surrogate) has no digest
    assert purchase.content_json() == _content_as_first_written(purchase)
