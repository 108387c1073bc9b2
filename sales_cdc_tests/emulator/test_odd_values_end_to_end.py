"""One odd value never stops the crawl: every item shape DynamoDB accepts, end to end.

DynamoDB item -> the real transform (sales_cdc.transform.handler) -> GZIP landing object ->
embedded crawl -> `SELECT ... FROM orders_cdc` on the embedded engine. Values that do not fit
their declared column read as NULL (or as text in a string column); every row stays.
"""

import base64
import gzip
import uuid
from decimal import Decimal
from typing import Any

import pytest

from sales_cdc.emulator.crawler import EmbeddedCrawler
from sales_cdc.resources.aws import AwsResource
from sales_cdc.resources.query import DuckDBQueryEngine, QueryFailedError
from sales_cdc.transform.handler import lambda_handler
from sales_cdc_tests.transform.test_handler import (
    encode,
    firehose_event,
    firehose_record,
    order_item,
    stream_record,
)

DIGITS_38 = "12345678901234567890123456789012345678"
NOTES = "x" * 390_000  # with the rest of the item, close to DynamoDB's 400 KB item limit

# order -> the attributes that make it odd (DynamoDB JSON), on top of an ordinary order item.
SHAPES: dict[str, dict[str, Any]] = {
    "mixed-list": {"tags": {"L": [{"S": "a"}, {"N": "1"}, {"BOOL": True}, {"NULL": True}]}},
    "nested-map": {
        "shipping": {
            "M": {
                "address": {"M": {"city": {"S": "Lyon"}, "zip": {"N": "69001"}}},
                "weights": {"L": [{"N": "1.5"}, {"N": "2"}]},
            }
        }
    },
    "sets": {
        "labels": {"SS": ["red", "blue"]},
        "lucky": {"NS": ["7", "2.5"]},
        "blobs": {"BS": ["AAEC", "/w=="]},
    },
    "null-and-bool": {"discount": {"NULL": True}, "gift": {"BOOL": True}},
    "38-digits": {
        "serial": {"N": DIGITS_38},
        "totalAmount": {"N": DIGITS_38},  # beyond decimal(38,6): NULL, the row stays
        "quantity": {"N": DIGITS_38},  # beyond bigint: NULL
    },
    "many-decimals": {"totalAmount": {"N": "24.1234567"}, "unitPrice": {"N": "329"}},
    "retyped": {
        "quantity": {"S": "three"},  # a string where the contract has a number
        "version": {"N": "2.5"},  # a fraction in a bigint column
        "unitPrice": {"S": "12.30"},  # numeric text in a decimal column converts
        "tags": {"S": "not-a-list"},
    },
    "near-400kb": {"notes": {"S": NOTES}},
}


def _landing_object(items: dict[str, dict[str, Any]]) -> tuple[str, bytes]:
    """The transform's rows for one INSERT per item, as one GZIP object; its partition folder."""
    records = []
    for i, (order_id, item) in enumerate(items.items()):
        record = stream_record(new=item, Keys={"orderId": {"S": order_id}})
        record["eventID"] = uuid.uuid4().hex
        record["dynamodb"]["SequenceNumber"] = str(200000000000000000000 + i)
        records.append(firehose_record(encode(record), record_id=f"r-{i}"))
    response = lambda_handler(firehose_event(*records), None)
    assert [r["result"] for r in response["records"]] == ["Ok"] * len(items), response
    keys = {tuple(r["metadata"]["partitionKeys"].items()) for r in response["records"]}
    [partition] = keys
    folder = "".join(f"{key}={value}/" for key, value in partition)
    body = b"".join(base64.b64decode(r["data"]) for r in response["records"])
    return folder, gzip.compress(body)


def _put(aws: AwsResource, key: str, body: bytes) -> str:
    stack = aws.stack()
    aws.client("s3").put_object(Bucket=stack.bucket, Key=stack.raw_prefix + key, Body=body)
    return stack.raw_prefix + key


def _crawl(aws: AwsResource) -> Any:
    crawler = EmbeddedCrawler(aws.client("glue"), aws.client("s3"), aws.stack().crawler_name)
    [table] = crawler.crawl().tables
    return table


def test_every_item_shape_flows_through_crawl_and_query(provisioned: AwsResource) -> None:
    aws = provisioned
    items = {
        f"{name}-{uuid.uuid4().hex[:6]}": order_item(orderId={"S": "x"}, **attrs)
        for name, attrs in SHAPES.items()
    }
    items = {order_id: item | {"orderId": {"S": order_id}} for order_id, item in items.items()}
    folder, body = _landing_object(items)
    _put(aws, f"{folder}batch-1.gz", body)
    # Objects that are not landing data at all, in another hour.
    truncated = _put(aws, "year=2026/month=03/day=07/hour=23/truncated.gz", body[: len(body) // 3])
    noise = _put(aws, "year=2026/month=03/day=07/hour=22/noise.gz", bytes(range(256)) * 64)

    first = _crawl(aws)

    assert sorted(first.unreadable_objects) == sorted([truncated, noise])
    assert first.records_read == len(items) and first.columns_widened == []
    types = dict(first.columns)
    assert types["quantity"] == "bigint" and types["total_amount"] == "decimal(38,6)"
    # tags is a list in one order and a string in another: conflicting types become string.
    assert types["tags"] == "string" and types["lucky"] == "array<double>"
    assert (
        types["shipping"] == "struct<address:struct<city:string,zip:bigint>,weights:array<double>>"
    )
    assert types["labels"] == types["blobs"] == "array<string>"
    assert types["gift"] == "boolean" and types["serial"] == "decimal(38,0)"
    assert types["notes"] == "string"

    # An attribute that appears later: a new column, NULL in the rows that lack it.
    late_id = f"late-{uuid.uuid4().hex[:6]}"
    late_folder, late_body = _landing_object(
        {late_id: order_item(orderId={"S": late_id}, loyaltyTier={"S": "gold"})}
    )
    _put(aws, f"{late_folder}batch-2.gz", late_body)
    second = _crawl(aws)
    assert second.columns_added == ["loyalty_tier"] and second.unreadable_objects == []

    engine = DuckDBQueryEngine(aws=aws)
    hour = folder.split("hour=")[1].rstrip("/")
    rows = engine.query(
        "SELECT order_id, quantity, unit_price, total_amount, version, tags, shipping, labels, "
        "lucky, blobs, discount, gift, serial, length(notes) AS notes_length, loyalty_tier "
        f"FROM orders_cdc WHERE hour = '{hour}'"
    ).dicts()
    by_shape = {row["order_id"].rsplit("-", 1)[0]: row for row in rows}
    assert len(rows) == len(items) + 1  # every row stays
    assert set(by_shape) == {*SHAPES, "late"}

    assert by_shape["mixed-list"]["tags"] == '["a",1,true,null]'  # the JSON text
    shipping = by_shape["nested-map"]["shipping"]
    assert shipping == {"address": {"city": "Lyon", "zip": 69001}, "weights": [1.5, 2.0]}
    assert by_shape["sets"]["labels"] == ["red", "blue"] and by_shape["sets"]["lucky"] == [7, 2.5]
    assert by_shape["sets"]["blobs"] == ["AAEC", "/w=="]
    assert by_shape["null-and-bool"]["discount"] is None and by_shape["null-and-bool"]["gift"]
    big = by_shape["38-digits"]
    assert big["serial"] == Decimal(DIGITS_38)
    assert big["total_amount"] is None and big["quantity"] is None
    many = by_shape["many-decimals"]
    assert many["total_amount"] == Decimal("24.123457")  # rounded to the column's scale
    assert many["unit_price"] == Decimal("329")
    retyped = by_shape["retyped"]
    assert retyped["quantity"] is None and retyped["version"] is None
    assert retyped["tags"] == "not-a-list"
    assert retyped["unit_price"] == Decimal("12.3")
    assert by_shape["near-400kb"]["notes_length"] == len(NOTES)
    assert by_shape["late"]["loyalty_tier"] == "gold"
    assert all(row["loyalty_tier"] is None for name, row in by_shape.items() if name != "late")
    ordinary = by_shape["null-and-bool"]
    assert ordinary["quantity"] == 2 and ordinary["total_amount"] == Decimal("24.6")

    # Random bytes are lines the SerDe cannot parse: rows of NULLs, which every table's SQL skips.
    noise_rows = engine.query(
        "SELECT count(*) AS n, count(order_id) AS ids FROM orders_cdc WHERE hour = '22'"
    ).dicts()
    assert noise_rows[0]["n"] > 0 and noise_rows[0]["ids"] == 0
    # Athena fails a query that reads a truncated GZIP object; the engine names the object.
    with pytest.raises(QueryFailedError, match="truncated.gz"):
        engine.query("SELECT count(*) AS n FROM orders_cdc WHERE hour = '23'")
