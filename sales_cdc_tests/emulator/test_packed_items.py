"""The emulator keeps stored DynamoDB items packed between the requests that use them."""

import threading

from sales_cdc.emulator import packed_items

ACCOUNT, REGION = "123456789012", "us-east-1"


def _table(aws, name: str) -> str:
    aws.client("dynamodb").create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "orderId", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "orderId", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def _stored(name: str, order_id: str):
    from moto.dynamodb.models import dynamodb_backends

    return dynamodb_backends[ACCOUNT][REGION].tables[name].items[_key(order_id)]


def _key(order_id: str):
    from moto.dynamodb.models.dynamo_type import DynamoType

    return DynamoType({"S": order_id})


ORDER = {
    "orderId": {"S": "o-1"},
    "version": {"N": "1"},
    "status": {"S": "PLACED"},
    "photo": {"B": b"\x00\xff"},
    "tags": {"SS": ["a", "b"]},
    "lines": {"L": [{"M": {"sku": {"S": "P-1"}, "qty": {"N": "2"}}}, {"NULL": True}]},
    "gift": {"BOOL": False},
}


def test_a_stored_item_is_packed_after_the_request_and_reads_back_as_written(aws) -> None:
    ddb = aws.client("dynamodb")
    name = _table(aws, f"{aws.stack().table_name}-packed")
    ddb.put_item(TableName=name, Item=ORDER)

    stored = _stored(name, "o-1")
    packing = stored.__dict__["_packing"]
    assert stored.__dict__["_attrs"] is None and packing.users == 0
    assert len(packing.packed.body) < 300  # packed: moto's tree of objects for it takes ~2 KB
    assert packing.packed.size == stored.size() == packed_items.size_of(stored)
    assert ddb.get_item(TableName=name, Key={"orderId": {"S": "o-1"}})["Item"] == ORDER
    assert stored.__dict__["_attrs"] is None  # packed again after the read
    touches = packing.touches
    assert ddb.scan(TableName=name)["Items"] == [ORDER]
    assert ddb.scan(TableName=name, ProjectionExpression="tags")["Items"] == [
        {"tags": ORDER["tags"]}
    ]
    # A Scan copies a packed item from its packed form: the stored item is not unpacked.
    assert packing.touches == touches and stored.__dict__["_attrs"] is None


def test_updates_in_place_are_packed_with_the_item(aws) -> None:
    ddb = aws.client("dynamodb")
    name = _table(aws, f"{aws.stack().table_name}-updated")
    ddb.put_item(TableName=name, Item=ORDER)
    ddb.update_item(
        TableName=name,
        Key={"orderId": {"S": "o-1"}},
        UpdateExpression="SET #l[0].qty = :q, #s = :s REMOVE gift ADD version :one",
        ExpressionAttributeNames={"#s": "status", "#l": "lines"},
        ExpressionAttributeValues={":q": {"N": "5"}, ":s": {"S": "PAID"}, ":one": {"N": "1"}},
    )
    failed = ddb.exceptions.ConditionalCheckFailedException
    try:
        ddb.update_item(
            TableName=name,
            Key={"orderId": {"S": "o-1"}},
            UpdateExpression="SET #s = :s",
            ConditionExpression="version = :old",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": {"S": "CANCELLED"}, ":old": {"N": "1"}},
        )
    except failed:
        pass
    else:
        raise AssertionError("a stale conditional update succeeded")

    item = ddb.get_item(TableName=name, Key={"orderId": {"S": "o-1"}})["Item"]
    expected = {k: v for k, v in ORDER.items() if k != "gift"}
    expected |= {"status": {"S": "PAID"}, "version": {"N": "2"}}
    expected["lines"] = {"L": [{"M": {"sku": {"S": "P-1"}, "qty": {"N": "5"}}}, {"NULL": True}]}
    assert item == expected
    assert _stored(name, "o-1").__dict__["_attrs"] is None


def test_concurrent_updates_of_one_item_are_all_kept(aws) -> None:
    name = _table(aws, f"{aws.stack().table_name}-counted")
    aws.client("dynamodb").put_item(TableName=name, Item={"orderId": {"S": "o-1"}, "n": {"N": "0"}})
    threads, per_thread = 8, 25

    def bump() -> None:
        ddb = aws.client("dynamodb")
        for _ in range(per_thread):
            ddb.update_item(
                TableName=name,
                Key={"orderId": {"S": "o-1"}},
                UpdateExpression="ADD n :one",
                ExpressionAttributeValues={":one": {"N": "1"}},
            )
            ddb.scan(TableName=name)  # readers of the same item in between

    workers = [threading.Thread(target=bump) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    item = aws.client("dynamodb").get_item(TableName=name, Key={"orderId": {"S": "o-1"}})["Item"]
    assert item["n"] == {"N": str(threads * per_thread)}
    stored = _stored(name, "o-1")
    assert stored.__dict__["_attrs"] is None and stored.__dict__["_packing"].users == 0


def test_pack_and_unpack_round_trip_every_attribute_type() -> None:
    from moto.dynamodb.models.dynamo_type import Item

    item = Item(None, None, ORDER)  # type: ignore[arg-type]
    packed = packed_items.pack(item.attrs)
    assert packed is not None
    assert packed_items.unpack(packed) == item.attrs
    assert type(packed_items.unpack(packed)["photo"].value) is bytes
    assert packed.size == item.size()
    assert packed_items.pack(item.attrs, packed) is packed  # unchanged: not compressed again
    item.attrs["gift"].value = True
    assert packed_items.pack(item.attrs, packed) != packed
