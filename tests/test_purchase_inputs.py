"""A receipt's fields checked before any database work (``loyalty.purchases.inputs``): one bad
field gives the one error it always gave; several give every error at once, in the order
the fields have always been checked; a good receipt gives a typed value."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from loyalty.errors import DomainError
from loyalty.members.models import Channel
from loyalty.purchases.inputs import (
    MAX_LINES,
    ValidLine,
    validated_purchase,
    validated_refund_money,
)
from loyalty.purchases.service import LineIn, MoneyIn, PurchaseIn
from loyalty.rules.engine import Line

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

RECEIPT = PurchaseIn(
    order_id=" order-1 ",
    channel=Channel.IN_STORE,
    total=MoneyIn("42.50", "usd"),
    member_id=7,
    store_id="store-1",
    lines=[
        LineIn(sku="SKU-1", category="coffee", quantity=2, unit_price=MoneyIn("5.25", "USD")),
        LineIn(sku="SKU-2"),
    ],
)


def refused(purchase: PurchaseIn) -> list[tuple[str, list[str] | None]]:
    with pytest.raises(DomainError) as raised:
        validated_purchase(purchase, now=NOW)
    return [(error.code.value, error.field) for error in raised.value.each()]


def test_a_good_receipt_is_a_typed_value():
    valid = validated_purchase(RECEIPT, now=NOW)

    assert valid.member_id == 7
    assert valid.member_external_id is None
    assert valid.order_id == "order-1"
    assert valid.channel is Channel.IN_STORE
    assert valid.store_id == "store-1"
    assert valid.total_amount == Decimal("42.50")
    assert valid.occurred_at == NOW
    assert valid.now == NOW
    assert valid.currencies == (
        ("USD", ("total", "currency")),
        ("USD", ("lines", "0", "unitPrice", "currency")),
    )
    assert valid.lines == (
        ValidLine(sku="SKU-1", category="coffee", quantity=2, unit_price=Decimal("5.25")),
        ValidLine(sku="SKU-2", category=None, quantity=1, unit_price=None),
    )
    assert valid.stored_lines() == [
        {"sku": "SKU-1", "category": "coffee", "quantity": 2, "unit_price": "5.25"},
        {"sku": "SKU-2", "category": None, "quantity": 1, "unit_price": None},
    ]
    assert [line.for_rules() for line in valid.lines] == [
        Line(sku="SKU-1", category="coffee", quantity=2, amount=Decimal("10.50")),
        Line(sku="SKU-2", category=None, quantity=1, amount=Decimal(0)),
    ]


def test_a_member_found_by_external_id_and_a_past_occurred_at():
    earlier = NOW - timedelta(days=1)

    valid = validated_purchase(
        replace(RECEIPT, member_id=None, member_external_id=" card-9 ", occurred_at=earlier),
        now=NOW,
    )

    assert (valid.member_id, valid.member_external_id, valid.occurred_at) == (
        None,
        "card-9",
        earlier,
    )


def _line(**fields: Any) -> list[LineIn]:
    return [LineIn(**{"sku": "SKU-1", **fields})]


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        pytest.param({"member_id": None}, ("INVALID", ["memberId"]), id="no member"),
        pytest.param(
            {"member_external_id": "card-9"}, ("INVALID", ["memberId"]), id="both members"
        ),
        pytest.param(
            {"member_id": None, "member_external_id": "x" * 129},
            ("INVALID", ["memberExternalId"]),
            id="long external id",
        ),
        pytest.param(
            {"member_id": None, "member_external_id": "   "},
            ("NOT_FOUND", ["memberExternalId"]),
            id="blank external id",
        ),
        pytest.param(
            {"occurred_at": datetime(2026, 1, 1)}, ("INVALID", ["occurredAt"]), id="naive"
        ),
        pytest.param(
            {"occurred_at": NOW + timedelta(minutes=6)},
            ("INVALID", ["occurredAt"]),
            id="in the future",
        ),
        pytest.param({"order_id": "  "}, ("INVALID", ["orderId"]), id="blank order"),
        pytest.param({"store_id": "s" * 65}, ("INVALID", ["storeId"]), id="long store"),
        pytest.param(
            {"total": MoneyIn("0", "USD")}, ("INVALID", ["total", "amount"]), id="zero total"
        ),
        pytest.param(
            {"total": MoneyIn(12.5, "USD")}, ("INVALID", ["total", "amount"]), id="float total"
        ),
        pytest.param(
            {"total": MoneyIn("1", "usd1")},
            ("INVALID", ["total", "currency"]),
            id="malformed currency",
        ),
        pytest.param(
            {"lines": [LineIn(sku=f"SKU-{i}") for i in range(MAX_LINES + 1)]},
            ("INVALID", ["lines"]),
            id="too many lines",
        ),
        pytest.param(
            {"lines": _line(quantity=0)}, ("INVALID", ["lines", "0", "quantity"]), id="quantity"
        ),
        pytest.param(
            {"lines": _line(sku="s" * 65)}, ("INVALID", ["lines", "0", "sku"]), id="long sku"
        ),
        pytest.param(
            {"lines": _line(category="\x00")},
            ("INVALID", ["lines", "0", "category"]),
            id="NUL category",
        ),
        pytest.param(
            {"lines": _line(unit_price=MoneyIn("-1.00", "USD"))},
            ("INVALID", ["lines", "0", "unitPrice", "amount"]),
            id="negative unit price",
        ),
        pytest.param(
            {"lines": _line(unit_price=MoneyIn("1.00", "dollars"))},
            ("INVALID", ["lines", "0", "unitPrice", "currency"]),
            id="unit price currency",
        ),
    ],
)
def test_one_bad_field_is_one_error(changes: dict[str, Any], error: tuple[str, list[str]]):
    assert refused(replace(RECEIPT, **changes)) == [error]


def test_every_bad_field_is_reported_in_the_order_they_are_checked():
    receipt = replace(
        RECEIPT,
        member_external_id="   ",
        occurred_at=NOW + timedelta(hours=1),
        order_id="",
        store_id="\x00",
        total=MoneyIn("abc", "EURO"),
        lines=[
            LineIn(sku="s" * 65, quantity=0, unit_price=MoneyIn("0", "USD")),
            LineIn(category="c" * 65, unit_price=MoneyIn("1.00", "us")),
        ],
    )

    assert refused(receipt) == [
        ("INVALID", ["memberId"]),
        ("INVALID", ["occurredAt"]),
        ("NOT_FOUND", ["memberExternalId"]),
        ("INVALID", ["orderId"]),
        ("INVALID", ["storeId"]),
        ("INVALID", ["total", "amount"]),
        ("INVALID", ["total", "currency"]),
        # Every line's currency before any line's other fields, as they were always checked.
        ("INVALID", ["lines", "1", "unitPrice", "currency"]),
        ("INVALID", ["lines", "0", "unitPrice", "amount"]),
        ("INVALID", ["lines", "0", "sku"]),
        ("INVALID", ["lines", "0", "quantity"]),
        ("INVALID", ["lines", "1", "category"]),
    ]


def test_too_many_lines_are_not_checked_one_by_one():
    lines = [LineIn(sku="s" * 65) for _ in range(MAX_LINES + 1)]

    assert refused(replace(RECEIPT, order_id="", lines=lines)) == [
        ("INVALID", ["lines"]),
        ("INVALID", ["orderId"]),
    ]


def test_a_refund_amount_and_currency_are_checked_together():
    assert validated_refund_money(MoneyIn(" 2.50 ", "usd")) == (Decimal("2.50"), "USD")
    with pytest.raises(DomainError) as raised:
        validated_refund_money(MoneyIn("-2", "dollars"))

    assert [(error.code.value, error.field) for error in raised.value.each()] == [
        ("INVALID", ["amount", "amount"]),
        ("INVALID", ["amount", "currency"]),
    ]
