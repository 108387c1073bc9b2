"""Throughput of the Firehose transform Lambda against a plain record-by-record baseline.

    python benchmarks/transform_throughput.py [--batches 200] [--batch-size 1000] [--repeat 3]

Both implementations get the same realistic Firehose batches (orders as in ARCHITECTURE.md §3.1:
~20 attributes, a mix of INSERT, MODIFY with old and new images, and REMOVE). Before any timing the
script asserts that the two produce the same response, byte for byte, on every benchmark batch and
on a batch of malformed records. Timing: each batch is run by both, alternating which goes first;
a repetition sums the time over all batches; the best repetition of each counts.
"""

import argparse
import base64
import gc
import importlib
import json
import logging
import math
import random
import re
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import Any

Handler = Callable[[dict[str, Any], object], dict[str, Any]]

# ================================================================ BASELINE (plain implementation)
# The straightforward, correct way to implement the same contract, record by record: json.loads,
# convert the typed item to Python values (Decimal for numbers), a datetime per record, serialise
# with json.dumps. No caches, no fast paths. It exists only to measure the real handler against.

BASELINE_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
BASELINE_DECIMAL_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
BASELINE_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
BASELINE_FIXED_COLUMNS = {
    "event_id",
    "event_name",
    "sequence_number",
    "event_time",
    "order_id",
    "is_deleted",
}


class BaselineMalformed(ValueError):
    """A record the baseline cannot transform."""


class BaselineNumber:
    """An exact number: the Decimal, and the JSON literal to write for it."""

    def __init__(self, text: str) -> None:
        if not isinstance(text, str) or not BASELINE_DECIMAL_NUMBER.fullmatch(text):
            raise BaselineMalformed("N value is not a decimal number")
        try:
            self.value = Decimal(text)
        except InvalidOperation:
            raise BaselineMalformed("N value is out of range") from None
        self.literal = text if BASELINE_JSON_NUMBER.fullmatch(text) else str(self.value)


def baseline_snake_case(name: str) -> str:
    """orderId -> order_id, HTTPStatus -> http_status."""
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


def baseline_base64_text(value: Any) -> str:
    """A base64 string, checked."""
    if not isinstance(value, str):
        raise BaselineMalformed("B value is not a string")
    try:
        base64.b64decode(value, validate=True)
    except ValueError:
        raise BaselineMalformed("bad base64") from None
    return value


def baseline_string(value: Any) -> str:
    """An S value."""
    if not isinstance(value, str):
        raise BaselineMalformed("S value is not a string")
    return value


def baseline_list(value: Any) -> list[Any]:
    """A list-shaped value."""
    if not isinstance(value, list):
        raise BaselineMalformed("not a list")
    return value


def baseline_from_dynamodb(typed: Any) -> Any:
    """A DynamoDB-typed value as a Python value."""
    if not isinstance(typed, dict) or len(typed) != 1:
        raise BaselineMalformed("typed value needs exactly one tag")
    [(tag, value)] = typed.items()
    if tag == "S":
        return baseline_string(value)
    if tag == "N":
        return BaselineNumber(value)
    if tag == "BOOL":
        if not isinstance(value, bool):
            raise BaselineMalformed("BOOL")
        return value
    if tag == "NULL":
        if value is not True:
            raise BaselineMalformed("NULL")
        return None
    if tag == "B":
        return baseline_base64_text(value)
    if tag == "SS":
        return [baseline_string(v) for v in baseline_list(value)]
    if tag == "NS":
        return [BaselineNumber(v) for v in baseline_list(value)]
    if tag == "BS":
        return [baseline_base64_text(v) for v in baseline_list(value)]
    if tag == "L":
        return [baseline_from_dynamodb(v) for v in baseline_list(value)]
    if tag == "M":
        if not isinstance(value, dict):
            raise BaselineMalformed("M")
        return {k: baseline_from_dynamodb(v) for k, v in value.items()}
    raise BaselineMalformed("unknown tag")


def baseline_dumps(value: Any) -> str:
    """Compact JSON of a Python value; numbers as their exact literal."""
    if isinstance(value, dict):
        members = (
            json.dumps(k, ensure_ascii=False) + ":" + baseline_dumps(v) for k, v in value.items()
        )
        return "{" + ",".join(members) + "}"
    if isinstance(value, list):
        return "[" + ",".join(baseline_dumps(v) for v in value) + "]"
    if isinstance(value, BaselineNumber):
        return value.literal
    return json.dumps(value, ensure_ascii=False)


def baseline_event_datetime(created: Any, arrival_ms: Any) -> datetime:
    """The event time: ApproximateCreationDateTime (s, or ms above 1e11), else the arrival (ms)."""
    if created is None:
        value, per_unit = arrival_ms, 1_000
    else:
        value, per_unit = created, 1_000_000
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise BaselineMalformed("time is not a number")
    value = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if not value.is_finite():
        raise BaselineMalformed("time is not finite")
    if created is not None and value > 100_000_000_000:
        per_unit = 1_000
    if not 0 <= value * per_unit < 253_402_300_800 * 1_000_000:
        raise BaselineMalformed("time out of range")
    micros = math.floor(Fraction(value) * per_unit)
    return BASELINE_EPOCH + timedelta(microseconds=micros)


def baseline_reject_constant(name: str) -> None:
    """NaN and Infinity are not JSON."""
    raise ValueError(name)


def baseline_row(data: Any, arrival_ms: Any) -> tuple[str, datetime]:
    """The landing row of one record's data, and its event time."""
    if not isinstance(data, str):
        raise BaselineMalformed("data")
    try:
        record = json.loads(
            base64.b64decode(data, validate=True).decode("utf-8"),
            parse_float=Decimal,
            parse_constant=baseline_reject_constant,
        )
    except (ValueError, RecursionError):
        raise BaselineMalformed("undecodable") from None
    if not isinstance(record, dict) or "eventName" not in record:
        raise BaselineMalformed("not a stream record")
    stream = record.get("dynamodb")
    if not isinstance(stream, dict) or record["eventName"] is None:
        raise BaselineMalformed("not a stream record")
    event_name = record["eventName"]
    if event_name not in ("INSERT", "MODIFY", "REMOVE"):
        raise BaselineMalformed("eventName")
    image = stream.get("OldImage" if event_name == "REMOVE" else "NewImage")
    if not isinstance(image, dict):
        raise BaselineMalformed("no image")
    event_id = record.get("eventID")
    sequence = stream.get("SequenceNumber")
    if not isinstance(event_id, str) or not event_id:
        raise BaselineMalformed("eventID")
    if not isinstance(sequence, str) or not re.fullmatch(r"[0-9]+", sequence):
        raise BaselineMalformed("SequenceNumber")
    key = (
        (stream.get("Keys") or {}).get("orderId") if isinstance(stream.get("Keys"), dict) else None
    )
    if not isinstance(key, dict) or len(key) != 1 or not isinstance(key.get("S"), str):
        raise BaselineMalformed("Keys.orderId.S")
    order_id = key["S"]
    if not order_id:
        raise BaselineMalformed("Keys.orderId.S")
    moment = baseline_event_datetime(stream.get("ApproximateCreationDateTime"), arrival_ms)
    row: dict[str, Any] = {
        "event_id": event_id,
        "event_name": event_name,
        "sequence_number": sequence,
        "event_time": moment.strftime("%Y-%m-%d %H:%M:%S.%f"),
        "order_id": order_id,
        "is_deleted": event_name == "REMOVE",
    }
    columns = [baseline_snake_case(name) for name in image]
    landing = [c for c in columns if c != "order_id"]
    if len(set(landing)) != len(landing) or BASELINE_FIXED_COLUMNS & set(landing):
        raise BaselineMalformed("column clash")
    for column, typed in zip(columns, image.values(), strict=True):
        if column == "order_id":
            if typed != {"S": order_id}:
                raise BaselineMalformed("orderId differs")
            continue
        row[column] = baseline_from_dynamodb(typed)
    return baseline_dumps(row) + "\n", moment


def baseline_lambda_handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    """BASELINE: the plain implementation of the Firehose transform contract."""
    out = []
    for record in event["records"]:
        try:
            row, moment = baseline_row(
                record.get("data"), record.get("approximateArrivalTimestamp")
            )
            data = base64.b64encode(row.encode("utf-8")).decode("ascii")
        except (BaselineMalformed, UnicodeEncodeError, RecursionError):
            data = record.get("data")
            out.append(
                {
                    "recordId": record.get("recordId"),
                    "result": "ProcessingFailed",
                    "data": data if isinstance(data, str) else "",
                }
            )
            continue
        partition = {
            "year": moment.strftime("%Y"),
            "month": moment.strftime("%m"),
            "day": moment.strftime("%d"),
            "hour": moment.strftime("%H"),
        }
        out.append(
            {
                "recordId": record["recordId"],
                "result": "Ok",
                "data": data,
                "metadata": {"partitionKeys": partition},
            }
        )
    return {"records": out}


# ================================================================ benchmark data

FIRST_NAMES = [
    "Maria",
    "José",
    "Zoë",
    "Łukasz",
    "Søren",
    "Chloé",
    "Ahmed",
    "Yuki",
    "Anna",
    "Ólafur",
]
FIRST_NAMES += ["John", "Priya", "Wei", "Fatima", "Lars", "Emma", "Noah", "Olivia", "Liam", "Mia"]
LAST_NAMES = ["García", "Müller", "Nguyễn", "O'Brien", "Kowalski", "Rossi", "Smith", "Dubois"]
LAST_NAMES += ["Johnson", "Tanaka", "Silva", "Novák", "Jensen", "Kim", "Brown", "Martin"]
CITIES = [("Berlin", "DE"), ("München", "DE"), ("Paris", "FR"), ("São Paulo", "BR")]
CITIES += [("London", "GB"), ("Kraków", "PL"), ("Tokyo", "JP"), ("New York", "US"), ("Oslo", "NO")]
PRODUCTS = [
    ("Electronics", 'Monitor 27" 4K'),
    ("Electronics", "USB-C Hub"),
    ("Books", "The Pragmatic Programmer"),
    ("Home", "Espresso Machine"),
    ("Home", "Cast Iron Pan"),
    ("Sports", "Trail Running Shoes"),
    ("Toys", "Building Blocks – 500 pcs"),
    ("Garden", "Hose Reel"),
]
STATUS_NEXT = {"PLACED": "PAID", "PAID": "SHIPPED", "SHIPPED": "DELIVERED"}
PAYMENT_METHODS = ["CARD", "PAYPAL", "BANK_TRANSFER", "GIFT_CARD"]
CHANNELS = ["WEB", "MOBILE", "STORE"]
START_EPOCH = 1_772_873_998  # 2026-03-07 08:59:58 UTC: batches cross an hour boundary


def iso_time(epoch_second: int, rng: random.Random) -> str:
    """An ISO-8601 UTC timestamp within the given second."""
    moment = datetime.fromtimestamp(epoch_second, tz=UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{rng.randrange(1_000_000):06d}Z"


def new_order(rng: random.Random, now: int) -> dict[str, Any]:
    """A fresh order item (DynamoDB JSON), ~20 attributes as in ARCHITECTURE.md §3.1."""
    category, product = rng.choice(PRODUCTS)
    city, country = rng.choice(CITIES)
    quantity = rng.randint(1, 5)
    unit_price = Decimal(rng.randint(199, 49_999)) / 100
    total = quantity * unit_price
    item: dict[str, Any] = {
        "orderId": {"S": f"{rng.getrandbits(128):032x}"},
        "customerId": {"S": f"CUST-{rng.randint(1, 99_999):05d}"},
        "customerName": {"S": f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"},
        "customerCity": {"S": city},
        "customerCountry": {"S": country},
        "productId": {"S": f"PROD-{rng.randint(1, 9_999):04d}"},
        "productName": {"S": product},
        "category": {"S": category},
        "quantity": {"N": str(quantity)},
        "unitPrice": {"N": str(unit_price)},
    }
    if rng.random() < 0.4:
        discount = rng.choice(["0.05", "0.10", "0.15", "0.20"])
        item["discount"] = {"N": discount}
        total *= 1 - Decimal(discount)
    item |= {
        "totalAmount": {"N": str(total.quantize(Decimal("0.01")))},
        "currency": {"S": "EUR" if country in ("DE", "FR", "PL") else "USD"},
        "paymentMethod": {"S": rng.choice(PAYMENT_METHODS)},
        "channel": {"S": rng.choice(CHANNELS)},
        "status": {"S": "PLACED"},
        "createdAt": {"S": iso_time(now, rng)},
        "updatedAt": {"S": iso_time(now, rng)},
        "version": {"N": "1"},
    }
    return item


def updated_order(item: dict[str, Any], rng: random.Random, now: int) -> dict[str, Any]:
    """The next version of an order: status moves on (or it is cancelled)."""
    status = item["status"]["S"]
    next_status = STATUS_NEXT.get(status, status)
    if status == "PLACED" and rng.random() < 0.1:
        next_status = "CANCELLED"
    return item | {
        "status": {"S": next_status},
        "updatedAt": {"S": iso_time(now, rng)},
        "version": {"N": str(int(item["version"]["N"]) + 1)},
    }


def stream_record(
    event_name: str, old: dict[str, Any] | None, new: dict[str, Any] | None, now: int, seq: int
) -> dict[str, Any]:
    """A DynamoDB Streams record as EventBridge Pipes puts it in Kinesis."""
    item = new if new is not None else old
    assert item is not None
    dynamodb: dict[str, Any] = {
        "ApproximateCreationDateTime": now,
        "Keys": {"orderId": item["orderId"]},
    }
    if new is not None:
        dynamodb["NewImage"] = new
    if old is not None:
        dynamodb["OldImage"] = old
    dynamodb |= {
        "SequenceNumber": f"{seq:021d}",
        "SizeBytes": 400,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    return {
        "eventID": f"{seq:x}{now:x}",
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "eu-west-1",
        "eventSourceARN": "arn:aws:dynamodb:eu-west-1:123456789012:table/sales-cdc-OrderTable"
        "/stream/2026-03-01T00:00:00.000",
        "dynamodb": dynamodb,
    }


def firehose_event(records: list[dict[str, Any]], batch_index: int) -> dict[str, Any]:
    """A Firehose transformation request carrying the stream records."""
    out = []
    for i, record in enumerate(records):
        arrival_ms = record["dynamodb"]["ApproximateCreationDateTime"] * 1000 + 250
        data = json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        out.append(
            {
                "recordId": f"{batch_index:06d}{i:06d}",
                "approximateArrivalTimestamp": arrival_ms,
                "data": base64.b64encode(data).decode("ascii"),
                "kinesisRecordMetadata": {
                    "shardId": f"shardId-{i % 4:012d}",
                    "partitionKey": record["dynamodb"]["Keys"]["orderId"]["S"],
                    "approximateArrivalTimestamp": arrival_ms,
                    "sequenceNumber": f"{49_000_000 + batch_index * 1000 + i:056d}",
                    "subsequenceNumber": 0,
                },
            }
        )
    return {
        "invocationId": f"bench-{batch_index}",
        "deliveryStreamArn": "arn:aws:firehose:eu-west-1:123456789012:deliverystream/sales-cdc",
        "sourceKinesisStreamArn": "arn:aws:kinesis:eu-west-1:123456789012:stream/sales-cdc",
        "region": "eu-west-1",
        "records": out,
    }


def iter_batches(batches: int, batch_size: int, seed: int) -> Iterator[dict[str, Any]]:
    """Deterministic Firehose batches of a running order workload (~300 writes per second)."""
    rng = random.Random(seed)
    live: list[dict[str, Any]] = []
    seq = 10**20
    now = START_EPOCH
    for batch_index in range(batches):
        records = []
        for _ in range(batch_size):
            seq += rng.randint(1, 50)
            if rng.random() < 1 / 300:
                now += 1
            roll = rng.random()
            if roll < 0.45 or len(live) < 100:
                item = new_order(rng, now)
                live.append(item)
                records.append(stream_record("INSERT", None, item, now, seq))
            elif roll < 0.9:
                index = rng.randrange(len(live))
                old = live[index]
                live[index] = updated_order(old, rng, now)
                records.append(stream_record("MODIFY", old, live[index], now, seq))
            else:
                old = live.pop(rng.randrange(len(live)))
                records.append(stream_record("REMOVE", old, None, now, seq))
        if len(live) > 20_000:
            del live[:10_000]
        yield firehose_event(records, batch_index)


def malformed_batch() -> dict[str, Any]:
    """A batch of good and malformed records, to check both implementations agree on failures."""
    rng = random.Random(7)
    item = new_order(rng, START_EPOCH)
    good = stream_record("INSERT", None, item, START_EPOCH, 12345)
    broken = []
    for typed in ({"N": "abc"}, {"N": 5}, {"S": 5}, {"BOOL": "yes"}, {"NULL": False}, {}, {"X": 1}):
        broken.append(stream_record("INSERT", None, item | {"extra": typed}, START_EPOCH, 1))
    broken.append(stream_record("UPSERT", None, item, START_EPOCH, 1))
    broken.append(stream_record("REMOVE", None, item, START_EPOCH, 1))
    odd_numbers = {"a": {"N": "+3"}, "b": {"N": ".5"}, "c": {"N": "1E+2"}, "d": {"N": "-0.0"}}
    broken.append(stream_record("INSERT", None, item | odd_numbers, START_EPOCH, 1))
    event = firehose_event([good, *broken, good], 0)
    event["records"].append({"recordId": "bad-base64", "data": "!!!"})
    return event


# ================================================================ timing


def load_handler() -> ModuleType:
    """The real transform handler module (works without installing the project)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    return importlib.import_module("sales_cdc.transform.handler")


def assert_same_output(handler: Handler, event: dict[str, Any]) -> None:
    """The real handler and the baseline give the same response, byte for byte."""
    expected = baseline_lambda_handler(event, None)
    actual = handler(event, None)
    if actual != expected:
        for got, want in zip(actual["records"], expected["records"], strict=True):
            if got != want:
                raise AssertionError(f"handler and baseline differ on {want['recordId']}")
        raise AssertionError("handler and baseline differ")


def time_both(handler: Handler, args: argparse.Namespace) -> tuple[float, float]:
    """Seconds for (handler, baseline) to transform every batch once, interleaved per batch."""
    totals = [0.0, 0.0]
    implementations = [handler, baseline_lambda_handler]
    for index, event in enumerate(iter_batches(args.batches, args.batch_size, args.seed)):
        order = (0, 1) if index % 2 == 0 else (1, 0)
        for which in order:
            start = time.perf_counter()
            implementations[which](event, None)
            totals[which] += time.perf_counter() - start
    return totals[0], totals[1]


def main() -> None:
    """Verify the baseline matches the handler, then time both and print records per second."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=20260307)
    args = parser.parse_args()
    handler = load_handler().lambda_handler
    logging.disable(logging.WARNING)  # the malformed batch would log one line per failure

    assert_same_output(handler, malformed_batch())
    checked = 0
    for event in iter_batches(args.batches, args.batch_size, args.seed):
        assert_same_output(handler, event)
        checked += len(event["records"])
    print(f"verified: handler == baseline on {checked:,} records, byte for byte")

    records = args.batches * args.batch_size
    best_handler = best_baseline = float("inf")
    for repetition in range(1, args.repeat + 1):
        gc.collect()
        handler_s, baseline_s = time_both(handler, args)
        best_handler, best_baseline = min(best_handler, handler_s), min(best_baseline, baseline_s)
        print(
            f"repetition {repetition}: handler {records / handler_s:,.0f} rec/s, "
            f"baseline {records / baseline_s:,.0f} rec/s"
        )
    print(f"records per repetition: {records:,} ({args.batches} batches of {args.batch_size})")
    print(f"baseline (plain) : {records / best_baseline:12,.0f} records/s")
    print(f"handler          : {records / best_handler:12,.0f} records/s")
    print(f"speed-up         : {best_baseline / best_handler:12.2f}x")


if __name__ == "__main__":
    main()
