import random
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal

import dagster as dg
import pytest
from faker import Faker

from sales_cdc.defs.infrastructure.provision import ensure_order_table
from sales_cdc.defs.orders.assets import orders
from sales_cdc.defs.orders.generator import (
    STATUSES,
    TRANSITIONS,
    Mix,
    new_order,
    next_status,
    plan_changes,
)
from sales_cdc.defs.orders.writer import Change, apply_changes, from_item
from sales_cdc.resources.aws import AwsResource

NOW = datetime(2026, 11, 21, 10, 30, tzinfo=UTC)
ATTRIBUTES = {
    "orderId", "customerId", "customerName", "customerCity", "customerCountry", "productId",
    "productName", "category", "quantity", "unitPrice", "totalAmount", "currency",
    "paymentMethod", "channel", "status", "createdAt", "updatedAt", "version",
}  # fmt: skip


def _fake(seed: int) -> Faker:
    fake = Faker()
    fake.seed_instance(seed)
    return fake


def test_new_orders_have_the_contract_shape_and_exact_money():
    rng, fake = random.Random(1), _fake(1)
    seen_discount = False
    for _ in range(200):
        order = new_order(fake, rng, NOW)
        assert ATTRIBUTES <= set(order) <= ATTRIBUTES | {"discount"}
        assert order["status"] == "PLACED" and order["version"] == 1
        assert order["createdAt"] == order["updatedAt"] == "2026-11-21T10:30:00.000000Z"
        assert isinstance(order["unitPrice"], Decimal) and isinstance(order["totalAmount"], Decimal)
        discount = order.get("discount", Decimal(0))
        seen_discount |= "discount" in order
        assert order["totalAmount"] == order["quantity"] * order["unitPrice"] - discount
        assert order["totalAmount"] > 0 and order["quantity"] >= 1
        assert order["totalAmount"].as_tuple().exponent == -2
    assert seen_discount


def test_status_transitions_follow_the_life_cycle():
    rng = random.Random(7)
    for status in STATUSES:
        for _ in range(50):
            nxt = next_status(status, rng)
            assert (nxt is None) == (not TRANSITIONS[status])
            assert nxt is None or nxt in TRANSITIONS[status]


def test_plan_follows_the_configured_mix_and_touches_each_order_once():
    existing = [
        {"orderId": f"o{i}", "status": STATUSES[i % len(STATUSES)], "version": 1 + i % 3}
        for i in range(60)
    ]
    changes = plan_changes(Mix(15, 10, 4), existing, random.Random(3), _fake(3), NOW)
    kinds = Counter(c.kind for c in changes)
    assert kinds == {"insert": 15, "update": 10, "delete": 4}
    touched = [c.order_id for c in changes if c.kind != "insert"]
    assert len(touched) == len(set(touched))
    by_id = {o["orderId"]: o for o in existing}
    for change in changes:
        if change.kind == "update":
            assert change.new_status in TRANSITIONS[by_id[change.order_id]["status"]]
            assert change.expected_version == by_id[change.order_id]["version"]


def test_same_seed_same_plan():
    existing = [{"orderId": f"o{i}", "status": "PLACED", "version": 1} for i in range(20)]

    def plan(seed: int) -> list:
        return [
            (c.kind, c.order_id, c.new_status, c.item.get("customerName"))
            for c in plan_changes(Mix(5, 5, 2), existing, random.Random(seed), _fake(seed), NOW)
        ]

    assert plan(42) == plan(42)
    assert plan(42) != plan(43)


def test_writes_are_conditional_on_version(aws: AwsResource):
    stack = aws.stack()
    ensure_order_table(aws, stack)
    ddb = aws.client("dynamodb")
    order = new_order(_fake(5), random.Random(5), NOW)
    counts = apply_changes(
        ddb, stack.table_name, [Change("insert", order["orderId"], item=order)], NOW
    )
    assert counts["inserted"] == 1
    # A stale version (someone else moved the order on) is a conflict, not an overwrite.
    stale = Change("update", order["orderId"], expected_version=7, new_status="PAID")
    fresh = Change("update", order["orderId"], expected_version=1, new_status="PAID")
    assert apply_changes(ddb, stack.table_name, [stale], NOW)["conflicts"] == 1
    assert apply_changes(ddb, stack.table_name, [fresh], NOW)["updated"] == 1
    item = from_item(
        ddb.get_item(TableName=stack.table_name, Key={"orderId": {"S": order["orderId"]}})["Item"]
    )
    assert (item["status"], item["version"]) == ("PAID", 2)
    assert item["totalAmount"] == order["totalAmount"]
    # Re-inserting an existing order is a conflict too.
    assert (
        apply_changes(ddb, stack.table_name, [Change("insert", order["orderId"], item=order)], NOW)[
            "conflicts"
        ]
        == 1
    )


def test_generator_asset_writes_the_mix_and_reports_it(aws: AwsResource):
    stack = aws.stack()
    ensure_order_table(aws, stack)
    config = {"new_orders": 40, "status_updates": 0, "deletes": 0, "seed": 11, "history": False}
    first = dg.materialize(
        [orders],
        resources={"aws": aws},
        run_config={"ops": {"dynamodb__orders": {"config": config}}},
    )
    metadata = first.asset_materializations_for_node("dynamodb__orders")[0].metadata
    assert metadata["inserted"].value == 40 and metadata["items_in_table"].value == 40
    config = {"new_orders": 5, "status_updates": 10, "deletes": 3, "seed": 12}
    second = dg.materialize(
        [orders],
        resources={"aws": aws},
        run_config={"ops": {"dynamodb__orders": {"config": config}}},
    )
    metadata = second.asset_materializations_for_node("dynamodb__orders")[0].metadata
    assert (metadata["inserted"].value, metadata["updated"].value, metadata["deleted"].value) == (
        5,
        10,
        3,
    )
    assert metadata["items_in_table"].value == 42
    items = [from_item(i) for i in aws.client("dynamodb").scan(TableName=stack.table_name)["Items"]]
    assert Counter(i["version"] for i in items)[2] == 10
    assert all(set(i) >= ATTRIBUTES for i in items)


def test_generator_without_table_says_to_provision_first(aws: AwsResource):
    with pytest.raises(dg.Failure, match="run the provision_infrastructure job first"):
        dg.materialize([orders], resources={"aws": aws})


def test_generator_rejects_a_negative_mix(aws: AwsResource):
    result = dg.materialize(
        [orders],
        resources={"aws": aws},
        run_config={"ops": {"dynamodb__orders": {"config": {"new_orders": -1}}}},
        raise_on_error=False,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = str(failure.event_specific_data.error.to_string())
    assert "new_orders" in message and "greater than or equal to 0" in message


def test_history_walks_each_order_along_its_life_cycle_in_the_past():
    from datetime import timedelta

    from sales_cdc.defs.orders.generator import plan_history

    changes = plan_history(7, 30, random.Random(4), _fake(4), NOW)
    by_order: dict[str, list[Change]] = {}
    for change in changes:
        by_order.setdefault(change.order_id, []).append(change)
    days = Counter(c.item["createdAt"][:10] for c in changes if c.kind == "insert")
    assert sorted(days) == [
        (NOW - timedelta(days=d)).strftime("%Y-%m-%d") for d in range(6, -1, -1)
    ]
    assert days[NOW.strftime("%Y-%m-%d")] < 30  # today only up to now
    final = Counter()
    for steps in by_order.values():
        assert steps[0].kind == "insert" and steps[0].item["createdAt"] < utc(NOW)
        status, version, moment = "PLACED", 1, steps[0].item["createdAt"]
        for step in steps[1:]:
            assert step.expected_version == version  # each write conditional on the last one
            if step.kind == "delete":
                assert step is steps[-1]
                break
            assert step.new_status in TRANSITIONS[status]
            assert moment < step.item["updatedAt"] < utc(NOW)
            status, version, moment = step.new_status, version + 1, step.item["updatedAt"]
        final[status] += 1
    # a realistic spread: most older orders delivered, some cancelled or returned, a few deleted
    assert final["DELIVERED"] > final["CANCELLED"] > 0 and final["PLACED"] > 0
    assert any(c.kind == "delete" for c in changes)


def utc(moment: datetime) -> str:
    from sales_cdc.defs.orders.generator import utc_timestamp

    return utc_timestamp(moment)


def test_sample_reads_the_table_not_item_count(aws: AwsResource):
    from sales_cdc.defs.orders.writer import sample_orders

    stack = aws.stack()
    ensure_order_table(aws, stack)
    ddb = aws.client("dynamodb")
    # AWS refreshes DescribeTable's ItemCount about every six hours: a fresh table says 0.
    # https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TableDescription.html
    ddb.meta.events.register(
        "after-call.dynamodb.DescribeTable",
        lambda parsed, **_: parsed.get("Table", {}).__setitem__("ItemCount", 0),
    )
    placed = [new_order(_fake(i), random.Random(i), NOW) for i in range(7)]
    apply_changes(
        ddb, stack.table_name, [Change("insert", o["orderId"], item=o) for o in placed], NOW
    )
    assert ddb.describe_table(TableName=stack.table_name)["Table"]["ItemCount"] == 0
    sample = sample_orders(ddb, stack.table_name, random.Random(1))
    assert sorted(o["orderId"] for o in sample) == sorted(o["orderId"] for o in placed)
    more = [new_order(_fake(i), random.Random(i), NOW) for i in range(100, 160)]
    apply_changes(
        ddb, stack.table_name, [Change("insert", o["orderId"], item=o) for o in more], NOW
    )
    assert len(sample_orders(ddb, stack.table_name, random.Random(2), limit=25)) == 25


def test_generator_seeds_history_on_an_empty_table_then_updates_it(aws: AwsResource):
    stack = aws.stack()
    ensure_order_table(aws, stack)
    config = {"new_orders": 3, "status_updates": 4, "deletes": 1, "seed": 5}
    run_config = {"ops": {"dynamodb__orders": {"config": config}}}
    first = dg.materialize([orders], resources={"aws": aws}, run_config=run_config)
    metadata = first.asset_materializations_for_node("dynamodb__orders")[0].metadata
    assert metadata["history_writes"].value > 100
    items = [from_item(i) for i in aws.client("dynamodb").scan(TableName=stack.table_name)["Items"]]
    created_days = {i["createdAt"][:10] for i in items}
    assert len(created_days) == 7
    second = dg.materialize([orders], resources={"aws": aws}, run_config=run_config)
    metadata = second.asset_materializations_for_node("dynamodb__orders")[0].metadata
    assert metadata["history_writes"].value == 0  # only an empty table gets a history
    assert (metadata["inserted"].value, metadata["updated"].value) == (3, 4)
    assert metadata["deleted"].value == 1 and metadata["writes_per_second"].value > 0
