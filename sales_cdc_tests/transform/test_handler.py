"""The Firehose transform contract, record by record (ARCHITECTURE.md §3.2-3.4)."""

import base64
import json
import logging
from decimal import Decimal
from typing import Any

import pytest

from sales_cdc.transform import handler
from sales_cdc.transform.handler import lambda_handler, snake_case

CREATED = 1_772_874_000  # 2026-03-07 09:00:00 UTC
ORDER_ID = "5f0c6a54-8a4f-4a8e-9d7e-2f5b1c3d4e5f"


def order_item(**extra: dict[str, Any]) -> dict[str, Any]:
    """An order item in DynamoDB JSON (ARCHITECTURE.md §3.1)."""
    item = {
        "orderId": {"S": ORDER_ID},
        "customerId": {"S": "CUST-00042"},
        "customerName": {"S": "Maria García"},
        "quantity": {"N": "2"},
        "unitPrice": {"N": "12.30"},
        "totalAmount": {"N": "24.60"},
        "status": {"S": "PLACED"},
        "createdAt": {"S": "2026-03-07T09:00:00.000000Z"},
        "version": {"N": "1"},
    }
    return item | extra


def stream_record(
    event_name: str = "INSERT",
    new: dict[str, Any] | None = None,
    old: dict[str, Any] | None = None,
    **dynamodb: Any,
) -> dict[str, Any]:
    """A DynamoDB Streams record as EventBridge Pipes puts it in Kinesis."""
    if new is None and old is None:
        new = order_item()
        old = order_item() if event_name == "REMOVE" else None
    body: dict[str, Any] = {
        "ApproximateCreationDateTime": CREATED,
        "Keys": {"orderId": {"S": ORDER_ID}},
        "SequenceNumber": "111100000000000000001",
        "SizeBytes": 321,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if new is not None:
        body["NewImage"] = new
    if old is not None:
        body["OldImage"] = old
    body |= dynamodb
    return {
        "eventID": "c81e728d9d4c2f636f067f89cc14862c",
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "eu-west-1",
        "eventSourceARN": "arn:aws:dynamodb:eu-west-1:123456789012:table/OrderTable/stream/x",
        "dynamodb": body,
    }


def encode(payload: dict[str, Any] | bytes | str) -> str:
    """Base64 Kinesis data of a stream record (dict), raw bytes or raw JSON text."""
    if isinstance(payload, dict):
        payload = json.dumps(payload, ensure_ascii=False)
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    return base64.b64encode(payload).decode("ascii")


def firehose_record(data: str, record_id: str = "r-0", arrival_ms: int = 1_700_000_000_000):
    """One record of a Firehose transformation request."""
    return {
        "recordId": record_id,
        "approximateArrivalTimestamp": arrival_ms,
        "data": data,
        "kinesisRecordMetadata": {
            "shardId": "shardId-000000000000",
            "partitionKey": ORDER_ID,
            "approximateArrivalTimestamp": arrival_ms,
            "sequenceNumber": "49590338271490256608559692538361571095921575989136588898",
            "subsequenceNumber": 0,
        },
    }


def firehose_event(*records: dict[str, Any]) -> dict[str, Any]:
    """A Firehose transformation request."""
    return {
        "invocationId": "invocation-1",
        "deliveryStreamArn": "arn:aws:firehose:eu-west-1:123456789012:deliverystream/orders",
        "sourceKinesisStreamArn": "arn:aws:kinesis:eu-west-1:123456789012:stream/orders",
        "region": "eu-west-1",
        "records": list(records),
    }


def transform_one(record: dict[str, Any] | bytes | str, **kwargs: Any) -> dict[str, Any]:
    """The response record for one stream record."""
    response = lambda_handler(firehose_event(firehose_record(encode(record), **kwargs)), None)
    [out] = response["records"]
    return out


def row_bytes(out: dict[str, Any]) -> bytes:
    """The landing row bytes of an Ok response record."""
    assert out["result"] == "Ok", out
    return base64.b64decode(out["data"], validate=True)


def row(out: dict[str, Any]) -> dict[str, Any]:
    """The landing row of an Ok response record, numbers as Decimal."""
    return json.loads(row_bytes(out), parse_float=Decimal, parse_int=Decimal)


# --------------------------------------------------------------------------- good records


def test_insert_lands_one_row_with_fixed_columns_first():
    out = transform_one(stream_record("INSERT"))
    assert out["recordId"] == "r-0"
    assert list(row(out)) == [
        "event_id",
        "event_name",
        "sequence_number",
        "event_time",
        "order_id",
        "is_deleted",
        "customer_id",
        "customer_name",
        "quantity",
        "unit_price",
        "total_amount",
        "status",
        "created_at",
        "version",
    ]
    expected = (
        '{"event_id":"c81e728d9d4c2f636f067f89cc14862c","event_name":"INSERT",'
        '"sequence_number":"111100000000000000001","event_time":"2026-03-07 09:00:00.000000",'
        f'"order_id":"{ORDER_ID}","is_deleted":false,"customer_id":"CUST-00042",'
        '"customer_name":"Maria García","quantity":2,"unit_price":12.30,"total_amount":24.60,'
        '"status":"PLACED","created_at":"2026-03-07T09:00:00.000000Z","version":1}\n'
    )
    assert row_bytes(out) == expected.encode()


def test_modify_takes_the_new_image():
    old = order_item(status={"S": "PLACED"}, version={"N": "1"})
    new = order_item(status={"S": "PAID"}, version={"N": "2"})
    landed = row(transform_one(stream_record("MODIFY", new=new, old=old)))
    assert landed["event_name"] == "MODIFY"
    assert landed["status"] == "PAID"
    assert landed["version"] == 2
    assert landed["is_deleted"] is False


def test_remove_takes_the_old_image_and_is_deleted():
    old = order_item(status={"S": "CANCELLED"})
    landed = row(transform_one(stream_record("REMOVE", old=old)))
    assert landed["event_name"] == "REMOVE"
    assert landed["is_deleted"] is True
    assert landed["status"] == "CANCELLED"
    assert landed["order_id"] == ORDER_ID


def test_row_is_one_compact_newline_terminated_utf8_line():
    data = row_bytes(transform_one(stream_record()))
    assert data.endswith(b"\n")
    assert data.count(b"\n") == 1
    assert b'", "' not in data and b'": ' not in data
    data.decode("utf-8")


def test_order_id_lands_once_from_keys():
    data = row_bytes(transform_one(stream_record()))
    assert data.count(b'"order_id"') == 1


def test_order_id_comes_from_keys_when_the_image_has_no_order_id():
    new = order_item()
    del new["orderId"]
    assert row(transform_one(stream_record(new=new)))["order_id"] == ORDER_ID


def test_batch_keeps_order_record_ids_and_count():
    records = [
        firehose_record(encode(stream_record(name)), record_id=f"id-{i}")
        for i, name in enumerate(["INSERT", "MODIFY", "REMOVE"] * 5)
    ]
    records.insert(4, firehose_record("@@not base64@@", record_id="bad"))
    response = lambda_handler(firehose_event(*records), None)
    assert set(response) == {"records"}
    assert [r["recordId"] for r in response["records"]] == [r["recordId"] for r in records]
    assert [r["result"] for r in response["records"]].count("Ok") == 15


def test_ok_response_record_shape_and_partition_keys():
    out = transform_one(stream_record(ApproximateCreationDateTime=1_772_875_500))  # 09:25:00
    assert set(out) == {"recordId", "result", "data", "metadata"}
    assert out["metadata"] == {
        "partitionKeys": {"year": "2026", "month": "03", "day": "07", "hour": "09"}
    }


@pytest.mark.parametrize(
    ("created", "event_time", "hour"),
    [
        (1_772_874_000, "2026-03-07 09:00:00.000000", "09"),
        (1_772_873_999.999999, "2026-03-07 08:59:59.999999", "08"),
        (1_772_874_000.5, "2026-03-07 09:00:00.500000", "09"),
        (1_772_874_000_123, "2026-03-07 09:00:00.123000", "09"),  # epoch ms, leniently
        (1_772_874_000_123.5, "2026-03-07 09:00:00.123500", "09"),
        (0, "1970-01-01 00:00:00.000000", "00"),
        (946_684_799, "1999-12-31 23:59:59.000000", "23"),
    ],
)
def test_event_time_from_approximate_creation_date_time(created, event_time, hour):
    out = transform_one(stream_record(ApproximateCreationDateTime=created))
    assert row(out)["event_time"] == event_time
    assert out["metadata"]["partitionKeys"]["hour"] == hour


def test_event_time_and_partition_keys_are_zero_padded():
    out = transform_one(stream_record(ApproximateCreationDateTime=1_767_229_384))  # 2026-01-01
    assert row(out)["event_time"] == "2026-01-01 01:03:04.000000"
    assert out["metadata"]["partitionKeys"] == {
        "year": "2026",
        "month": "01",
        "day": "01",
        "hour": "01",
    }


def test_event_time_is_floored_exactly_whatever_the_precision():
    text = json.dumps(stream_record()).replace(
        f'"ApproximateCreationDateTime": {CREATED}',
        '"ApproximateCreationDateTime": 1772873999.99999999999999999999999999999',
    )
    out = transform_one(text)
    assert row(out)["event_time"] == "2026-03-07 08:59:59.999999"
    assert out["metadata"]["partitionKeys"]["hour"] == "08"


@pytest.mark.parametrize("missing", ["absent", "null"])
def test_event_time_falls_back_to_the_arrival_timestamp(missing):
    record = stream_record()
    if missing == "absent":
        del record["dynamodb"]["ApproximateCreationDateTime"]
    else:
        record["dynamodb"]["ApproximateCreationDateTime"] = None
    out = transform_one(record, arrival_ms=1_772_877_723_456)
    assert row(out)["event_time"] == "2026-03-07 10:02:03.456000"
    assert out["metadata"]["partitionKeys"]["hour"] == "10"


@pytest.mark.parametrize(
    ("name", "column"),
    [
        ("orderId", "order_id"),
        ("customerName", "customer_name"),
        ("unitPrice", "unit_price"),
        ("totalAmount", "total_amount"),
        ("createdAt", "created_at"),
        ("giftWrapNote", "gift_wrap_note"),
        ("HTTPStatus", "http_status"),
        ("customerID", "customer_id"),
        ("addressLine2", "address_line2"),
        ("already_snake", "already_snake"),
        ("status", "status"),
        ("Version", "version"),
    ],
)
def test_snake_case(name, column):
    assert snake_case(name) == column


def test_unknown_attributes_land_in_snake_case_and_nested_names_stay():
    new = order_item(
        giftWrapNote={"S": "Happy birthday!"},
        HTTPStatus={"N": "200"},
        shippingAddress={"M": {"streetLine": {"S": "Hauptstraße 1"}, "zipCode": {"S": "10115"}}},
    )
    landed = row(transform_one(stream_record(new=new)))
    assert landed["gift_wrap_note"] == "Happy birthday!"
    assert landed["http_status"] == 200
    assert landed["shipping_address"] == {"streetLine": "Hauptstraße 1", "zipCode": "10115"}
    assert "giftWrapNote" not in landed


def test_non_ascii_text_stays_utf8_not_escaped():
    new = order_item(customerName={"S": "Zoë Łukasiewicz 王芳 😀"}, note={"S": 'a "quote"\n\\'})
    data = row_bytes(transform_one(stream_record(new=new)))
    assert "Zoë Łukasiewicz 王芳 😀".encode() in data
    assert b"\\u" not in data
    assert json.loads(data)["note"] == 'a "quote"\n\\'


@pytest.mark.parametrize(
    ("typed", "json_text"),
    [
        ({"S": "x"}, '"x"'),
        ({"N": "12.30"}, "12.30"),
        ({"N": "-0.5"}, "-0.5"),
        ({"N": "1E+2"}, "1E+2"),
        ({"N": "1e-7"}, "1e-7"),
        ({"N": "0"}, "0"),
        ({"N": "-0"}, "-0"),
        ({"N": "12345678901234567890123456789012345678"}, "12345678901234567890123456789012345678"),
        ({"N": ".5"}, "0.5"),
        ({"N": "+3"}, "3"),
        ({"N": "5."}, "5"),
        ({"N": "007"}, "7"),
        ({"N": "-.25e+3"}, "-2.5E+2"),
        ({"BOOL": True}, "true"),
        ({"BOOL": False}, "false"),
        ({"NULL": True}, "null"),
        ({"B": "AAECAw=="}, '"AAECAw=="'),
        ({"SS": ["a", "é"]}, '["a","é"]'),
        ({"NS": ["1", "2.50", "+4"]}, "[1,2.50,4]"),
        ({"BS": ["AA==", "AQI="]}, '["AA==","AQI="]'),
        ({"L": [{"S": "a"}, {"N": "1.0"}, {"NULL": True}, {"L": []}]}, '["a",1.0,null,[]]'),
        ({"M": {"innerName": {"N": "3"}, "b": {"M": {}}}}, '{"innerName":3,"b":{}}'),
        ({"SS": []}, "[]"),
    ],
)
def test_typed_values_convert_to_plain_json(typed, json_text):
    data = row_bytes(transform_one(stream_record(new=order_item(probe=typed))))
    assert data.endswith(f',"probe":{json_text}}}\n'.encode())


def test_numbers_never_go_through_float():
    new = order_item(amount={"N": "0.1000000000000000055511151231257827"}, big={"N": "9" * 38})
    landed = row(transform_one(stream_record(new=new)))
    assert landed["amount"] == Decimal("0.1000000000000000055511151231257827")
    assert landed["big"] == Decimal("9" * 38)


def test_lambda_handler_accepts_an_empty_batch():
    assert lambda_handler(firehose_event(), None) == {"records": []}


# --------------------------------------------------------------------------- malformed records


def with_image_value(typed: Any) -> dict[str, Any]:
    """A stream record whose NewImage holds one malformed value."""
    return stream_record(new=order_item(badValue=typed))


def without(field: str, event_name: str = "INSERT") -> dict[str, Any]:
    """A stream record without one dynamodb field."""
    record = stream_record(event_name)
    del record["dynamodb"][field]
    return record


def with_dynamodb(**fields: Any) -> dict[str, Any]:
    """A stream record with some dynamodb fields replaced."""
    return stream_record(**fields)


def with_record(**fields: Any) -> dict[str, Any]:
    """A stream record with some top-level fields replaced."""
    return stream_record() | fields


MALFORMED: dict[str, str] = {
    "not base64": "@@@@ not base64 @@@@",
    "bad base64 padding": "eyJhIjox",
    "base64 with data after padding": "e30=e30=",
    "base64 with non-ascii": "ë30=",
    "not utf-8": encode(b"\xff\xfe{}"),
    "not json": encode(b'{"eventName": "INSERT",'),
    "empty data": "",
    "json NaN": encode(b'{"eventName":"INSERT","dynamodb":{"x":NaN}}'),
    "json array": encode(b"[1, 2, 3]"),
    "json string": encode(b'"INSERT"'),
    "json number": encode(b"42"),
    "json object, not a stream record": encode(b'{"hello": "world"}'),
    "no dynamodb": encode(with_record(dynamodb=None)),
    "dynamodb not an object": encode(with_record(dynamodb=[1])),
    "no eventName": encode({k: v for k, v in stream_record().items() if k != "eventName"}),
    "unknown eventName": encode(with_record(eventName="UPSERT")),
    "eventName not a string": encode(with_record(eventName=["INSERT"])),
    "no eventID": encode({k: v for k, v in stream_record().items() if k != "eventID"}),
    "no Keys": encode(without("Keys")),
    "Keys without orderId": encode(with_dynamodb(Keys={"id": {"S": ORDER_ID}})),
    "Keys.orderId not S": encode(with_dynamodb(Keys={"orderId": {"N": "1"}})),
    "Keys.orderId.S not a string": encode(with_dynamodb(Keys={"orderId": {"S": 1}})),
    "Keys.orderId empty": encode(with_dynamodb(Keys={"orderId": {"S": ""}})),
    "image orderId differs from Keys": encode(
        stream_record(new=order_item(orderId={"S": "other"}))
    ),
    "INSERT without NewImage": encode(without("NewImage", "INSERT")),
    "MODIFY without NewImage": encode(stream_record("MODIFY", old=order_item())),
    "REMOVE without OldImage": encode(stream_record("REMOVE", new=order_item())),
    "NewImage not an object": encode(stream_record(new=[{"S": "x"}])),
    "SequenceNumber missing": encode(without("SequenceNumber")),
    "SequenceNumber not digits": encode(with_dynamodb(SequenceNumber="12a")),
    "SequenceNumber a number": encode(with_dynamodb(SequenceNumber=12)),
    "N not a number": encode(with_image_value({"N": "abc"})),
    "N not a string": encode(with_image_value({"N": 5})),
    "N empty": encode(with_image_value({"N": ""})),
    "N NaN": encode(with_image_value({"N": "NaN"})),
    "N Infinity": encode(with_image_value({"N": "Infinity"})),
    "N -inf": encode(with_image_value({"N": "-inf"})),
    "N with underscores": encode(with_image_value({"N": "1_000"})),
    "N with spaces": encode(with_image_value({"N": " 1"})),
    "N with hex": encode(with_image_value({"N": "0x10"})),
    "N with non-ascii digits": encode(with_image_value({"N": "١٢"})),
    "S not a string": encode(with_image_value({"S": 5})),
    "BOOL not a boolean": encode(with_image_value({"BOOL": "yes"})),
    "BOOL a number": encode(with_image_value({"BOOL": 1})),
    "NULL false": encode(with_image_value({"NULL": False})),
    "descriptor with no key": encode(with_image_value({})),
    "descriptor with two keys": encode(with_image_value({"S": "a", "N": "1"})),
    "descriptor not an object": encode(with_image_value("plain")),
    "unknown type tag": encode(with_image_value({"X": 1})),
    "B not base64": encode(with_image_value({"B": "!!"})),
    "B not a string": encode(with_image_value({"B": 5})),
    "BS element not base64": encode(with_image_value({"BS": ["AA==", "A"]})),
    "NS element not a number": encode(with_image_value({"NS": ["1", "x"]})),
    "NS element not a string": encode(with_image_value({"NS": ["1", 2]})),
    "SS not a list": encode(with_image_value({"SS": "a"})),
    "SS element not a string": encode(with_image_value({"SS": ["a", 1]})),
    "L not a list": encode(with_image_value({"L": {"S": "a"}})),
    "M not an object": encode(with_image_value({"M": [{"S": "a"}]})),
    "bad value nested in M": encode(with_image_value({"M": {"a": {"M": {"b": {"N": "x"}}}}})),
    "bad value nested in L": encode(with_image_value({"L": [{"S": "a"}, {"BOOL": None}]})),
    "lone surrogate in S": encode(json.dumps(with_image_value({"S": "\ud800"}))),
    "column clash with a fixed column": encode(stream_record(new=order_item(isDeleted={"N": "1"}))),
    "two attributes on one column": encode(
        stream_record(new=order_item(customer_name={"S": "again"}))
    ),
    "ApproximateCreationDateTime ISO text": encode(
        with_dynamodb(ApproximateCreationDateTime="2026-03-07T09:00:00")
    ),
    "ApproximateCreationDateTime boolean": encode(with_dynamodb(ApproximateCreationDateTime=True)),
    "ApproximateCreationDateTime negative": encode(with_dynamodb(ApproximateCreationDateTime=-1)),
    "ApproximateCreationDateTime after year 9999": encode(
        with_dynamodb(ApproximateCreationDateTime=10**18)
    ),
    "ApproximateCreationDateTime huge float": encode(
        with_dynamodb(ApproximateCreationDateTime=1e300)
    ),
    "ApproximateCreationDateTime object": encode(with_dynamodb(ApproximateCreationDateTime={})),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_record_fails_alone_and_keeps_its_data(case, caplog):
    bad_data = MALFORMED[case]
    good = encode(stream_record())
    records = [
        firehose_record(good, record_id="good-1"),
        firehose_record(bad_data, record_id="bad"),
        firehose_record(good, record_id="good-2"),
    ]
    with caplog.at_level(logging.WARNING, logger=handler.__name__):
        response = lambda_handler(firehose_event(*records), None)
    first, failed, last = response["records"]
    assert [first["result"], last["result"]] == ["Ok", "Ok"]
    assert [first["recordId"], last["recordId"]] == ["good-1", "good-2"]
    assert failed == {"recordId": "bad", "result": "ProcessingFailed", "data": bad_data}
    [log] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "bad" in log.getMessage()
    if len(bad_data) > 12:
        assert bad_data not in log.getMessage()


def test_failure_is_logged_with_record_id_and_reason_not_the_payload(caplog):
    secret = "Maria García, Calle Secreta 7"
    record = stream_record(new=order_item(customerName={"S": secret}, price={"N": "abc"}))
    with caplog.at_level(logging.WARNING, logger=handler.__name__):
        out = transform_one(record, record_id="rec-42")
    assert out["result"] == "ProcessingFailed"
    [log] = caplog.records
    assert log.levelno == logging.WARNING
    assert "rec-42" in log.getMessage()
    assert "'price'" in log.getMessage() and "N value" in log.getMessage()
    assert secret not in log.getMessage()
    assert "abc" not in log.getMessage()


def test_bad_arrival_timestamp_fails_when_it_is_needed():
    record = stream_record()
    del record["dynamodb"]["ApproximateCreationDateTime"]
    event = firehose_event(firehose_record(encode(record)) | {"approximateArrivalTimestamp": "x"})
    [out] = lambda_handler(event, None)["records"]
    assert out["result"] == "ProcessingFailed"


@pytest.mark.parametrize(
    "request_record",
    [
        {"recordId": "no-data"},
        {"recordId": "data-not-a-string", "data": 5},
        "not a record",
        None,
    ],
)
def test_request_records_without_usable_data_fail_without_raising(request_record):
    [out] = lambda_handler({"records": [request_record]}, None)["records"]
    assert out["result"] == "ProcessingFailed"
    assert out["data"] == ""


@pytest.mark.parametrize("event", [{}, {"records": None}, [], None])
def test_events_without_records_return_no_records(event):
    assert lambda_handler(event, None) == {"records": []}
