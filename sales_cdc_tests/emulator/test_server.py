import base64
import json
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from sales_cdc.emulator.record_log import KinesisRecords, RecordLog
from sales_cdc.emulator.server import Emulator, EmulatorError, free_port


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a socket listening on `port` (from /proc/net/tcp*)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if int(hex_port, 16) == port and state == "0A":
                found.add(address)
    return found


def test_cli_runs_on_loopback_prints_endpoint_and_stops_on_sigterm():
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "sales_cdc.cli", "emulator", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        first = process.stdout.readline()
        assert f"http://127.0.0.1:{port}" in first
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/data.json", timeout=5) as r:
            assert r.status == 200
        assert _listening_addresses(port) == {"0100007F"}  # 127.0.0.1 only
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        assert "stopped" in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()


def test_port_in_use_gives_a_clear_error():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(EmulatorError, match=f"Port {port} on 127.0.0.1 is already in use"):
            Emulator(port).start()
        result = subprocess.run(
            [sys.executable, "-m", "sales_cdc.cli", "emulator", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert "already in use" in result.stderr and "--port" in result.stderr


def _stream(aws):
    from sales_cdc.defs.infrastructure.provision import ensure_order_table

    stack = aws.stack()
    ensure_order_table(aws, stack)
    ddb = aws.client("dynamodb")
    arn = ddb.describe_table(TableName=stack.table_name)["Table"]["LatestStreamArn"]
    streams = aws.client("dynamodbstreams")
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    return ddb, stack.table_name, streams, arn, shard


def _put(ddb, table: str, order_id: str) -> None:
    ddb.put_item(TableName=table, Item={"orderId": {"S": order_id}, "version": {"N": "1"}})


def test_stream_records_past_retention_are_trimmed(aws, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from botocore.exceptions import ClientError

    from sales_cdc.emulator import server

    # DynamoDB Streams keeps records 24 hours, then trims them (TrimmedDataAccessException).
    # https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_streams_GetRecords.html
    monkeypatch.setattr(server, "STREAM_RECORD_RETENTION_SECONDS", 1.0)
    ddb, table, streams, arn, shard = _stream(aws)
    for n in range(3):
        _put(ddb, table, f"old-{n}")
    old = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    first_seq = streams.get_records(ShardIterator=old["ShardIterator"])["Records"][0]["dynamodb"][
        "SequenceNumber"
    ]
    time.sleep(1.5)
    _put(ddb, table, "new")  # writing trims what is past retention
    horizon = streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )
    (record,) = streams.get_records(ShardIterator=horizon["ShardIterator"])["Records"]
    assert record["dynamodb"]["Keys"]["orderId"]["S"] == "new"
    assert int(record["dynamodb"]["SequenceNumber"]) == int(first_seq) + 3  # numbers keep growing
    with pytest.raises(ClientError, match="TrimmedDataAccessException"):
        streams.get_records(ShardIterator=old["ShardIterator"])
    latest = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="LATEST")
    _put(ddb, table, "newer")
    (after,) = streams.get_records(ShardIterator=latest["ShardIterator"])["Records"]
    assert after["dynamodb"]["Keys"]["orderId"]["S"] == "newer"


def test_shard_iterators_expire_and_are_forgotten(aws, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from botocore.exceptions import ClientError
    from moto.dynamodbstreams.models import dynamodbstreams_backends

    from sales_cdc.emulator import server

    # A shard iterator expires 15 minutes after it is returned (ExpiredIteratorException).
    # https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_streams_GetShardIterator.html
    # Long enough that one read on a busy machine never outlives its iterator (CI saw > 0.5 s).
    monkeypatch.setattr(server, "SHARD_ITERATOR_LIFETIME_SECONDS", 3.0)
    monkeypatch.setattr(server, "ITERATOR_PRUNE_INTERVAL_SECONDS", 0.0)
    ddb, table, streams, arn, shard = _stream(aws)
    _put(ddb, table, "a")
    iterator = streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    for _ in range(50):  # a consumer polling: every read returns a new iterator
        iterator = streams.get_records(ShardIterator=iterator)["NextShardIterator"]
    time.sleep(3.5)
    with pytest.raises(ClientError, match="ExpiredIteratorException"):
        streams.get_records(ShardIterator=iterator)
    backend = dynamodbstreams_backends["123456789012"]["us-east-1"]
    assert len(backend.shard_iterators) < 5  # not one per read, forever


def test_kinesis_reads_cost_the_same_on_a_long_shard(aws) -> None:
    kinesis = aws.client("kinesis")
    name = f"{aws.stack().stream_name}-long"
    kinesis.create_stream(StreamName=name, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=name)
    for start in range(0, 3000, 500):
        kinesis.put_records(
            StreamName=name,
            Records=[
                {"Data": f"r{n}".encode(), "PartitionKey": "k"} for n in range(start, start + 500)
            ],
        )
    shard = kinesis.list_shards(StreamName=name)["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(
        StreamName=name, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    seen = []
    while True:
        page = kinesis.get_records(ShardIterator=iterator, Limit=1000)
        seen += [r["Data"].decode() for r in page["Records"]]
        iterator = page["NextShardIterator"]
        if not page["Records"]:
            break
    assert seen == [f"r{n}" for n in range(3000)]  # every record, in order, once
    kinesis.delete_stream(StreamName=name)


def test_moto_keeps_no_reference_to_objects_it_dropped(emulator) -> None:
    import gc
    import weakref

    from moto.dynamodbstreams.models import ShardIterator

    # started by the session's Emulator: every model object lives only as long as state needs it
    iterator = ShardIterator.__new__(ShardIterator)
    ref = weakref.ref(iterator)
    del iterator
    gc.collect()
    assert ref() is None


def _kinesis_stream(aws, suffix: str) -> tuple[object, str, str]:
    kinesis = aws.client("kinesis")
    name = f"{aws.stack().stream_name}-{suffix}"
    kinesis.create_stream(StreamName=name, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=name)
    shard = kinesis.list_shards(StreamName=name)["Shards"][0]["ShardId"]
    return kinesis, name, shard


def test_kinesis_records_are_stored_compressed_and_read_back_as_written(aws) -> None:
    from moto.kinesis.models import kinesis_backends

    kinesis, name, shard = _kinesis_stream(aws, "compact")
    written = [
        (b'{"eventName": "INSERT", "dynamodb": {"NewImage": {}}}' * 20, "order-1"),
        (bytes(range(256)), "order-2"),  # not text: bytes round-trip exactly
        (b"x", "order-1"),
    ]
    sequence_numbers = [
        kinesis.put_record(StreamName=name, Data=data, PartitionKey=key)["SequenceNumber"]
        for data, key in written
    ]
    iterator = kinesis.get_shard_iterator(
        StreamName=name, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records = kinesis.get_records(ShardIterator=iterator)["Records"]
    assert [(r["Data"], r["PartitionKey"]) for r in records] == written
    assert [r["SequenceNumber"] for r in records] == sequence_numbers
    assert all(r["ApproximateArrivalTimestamp"] for r in records)
    after = kinesis.get_shard_iterator(
        StreamName=name,
        ShardId=shard,
        ShardIteratorType="AFTER_SEQUENCE_NUMBER",
        StartingSequenceNumber=sequence_numbers[0],
    )["ShardIterator"]
    assert [r["Data"] for r in kinesis.get_records(ShardIterator=after)["Records"]] == [
        data for data, _ in written[1:]
    ]

    backend = kinesis_backends["123456789012"]["us-east-1"].streams[name]
    stored = next(iter(backend.shards.values())).records
    assert isinstance(stored, KinesisRecords)  # one compressed buffer, no object per record
    assert stored.nbytes() < len(written[0][0]) // 2  # the repeated JSON, compressed
    first = stored[int(sequence_numbers[0])]
    assert base64.b64decode(first.data) == written[0][0]  # moto's readers see base64 text
    assert first.partition_key == "order-1" and first.explicit_hash_key is None
    kinesis.delete_stream(StreamName=name)


def test_kinesis_records_survive_resharding(aws) -> None:
    # UpdateShardCount splits the shard; the runtime reads parents before children.
    # https://docs.aws.amazon.com/kinesis/latest/APIReference/API_UpdateShardCount.html
    kinesis, name, _ = _kinesis_stream(aws, "reshard")
    for n in range(5):
        kinesis.put_record(StreamName=name, Data=f"before-{n}".encode(), PartitionKey=f"k{n}")
    kinesis.update_shard_count(StreamName=name, TargetShardCount=2, ScalingType="UNIFORM_SCALING")
    for n in range(5):
        kinesis.put_record(StreamName=name, Data=f"after-{n}".encode(), PartitionKey=f"k{n}")
    seen = []
    for shard in kinesis.list_shards(StreamName=name)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=name, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        seen += [r["Data"].decode() for r in kinesis.get_records(ShardIterator=iterator)["Records"]]
    assert sorted(seen) == sorted(
        [f"before-{n}" for n in range(5)] + [f"after-{n}" for n in range(5)]
    )
    kinesis.delete_stream(StreamName=name)


def test_stream_records_are_stored_compressed_and_read_back_as_written(aws) -> None:
    from moto.dynamodb.models import dynamodb_backends

    ddb, table, streams, arn, shard = _stream(aws)
    item = {
        "orderId": {"S": "o-1"},
        "version": {"N": "1"},
        "unitPrice": {"N": "19.990"},
        "note": {"S": "ünïcode " * 30},
        "paid": {"BOOL": True},
        "discount": {"NULL": True},
        "tags": {"SS": ["a", "b"]},
        "sizes": {"NS": ["1", "2.5"]},
        "address": {"M": {"city": {"S": "Lyon"}, "lines": {"L": [{"S": "1 rue"}, {"N": "2"}]}}},
    }
    ddb.put_item(TableName=table, Item=item)
    changed = {**item, "version": {"N": "2"}, "paid": {"BOOL": False}}
    ddb.put_item(TableName=table, Item=changed)
    iterator = streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    inserted, modified = streams.get_records(ShardIterator=iterator)["Records"]
    assert inserted["eventName"] == "INSERT" and modified["eventName"] == "MODIFY"
    assert inserted["dynamodb"]["NewImage"] == item
    assert modified["dynamodb"]["OldImage"] == item
    assert modified["dynamodb"]["NewImage"] == changed
    assert inserted["dynamodb"]["Keys"] == {"orderId": {"S": "o-1"}}

    stored = dynamodb_backends["123456789012"]["us-east-1"].tables[table].stream_shard.items
    assert isinstance(stored, RecordLog)  # one compressed buffer, no object per record
    assert (
        len(stored.stored(0)) < len(json.dumps(inserted["dynamodb"]["NewImage"], default=str)) // 2
    )


def test_items_of_a_table_share_their_attribute_names(aws) -> None:
    from moto.dynamodb.models import dynamodb_backends

    ddb, table, *_ = _stream(aws)
    order = {"version": {"N": "1"}, "customerName": {"S": "Ada"}, "totalAmount": {"N": "1.50"}}
    for order_id in ("o-1", "o-2"):
        ddb.put_item(TableName=table, Item={"orderId": {"S": order_id}, **order})
    assert ddb.get_item(TableName=table, Key={"orderId": {"S": "o-2"}})["Item"] == {
        "orderId": {"S": "o-2"},
        **order,
    }
    first, second = dynamodb_backends["123456789012"]["us-east-1"].tables[table].items.values()
    for name in order:
        (a,) = (k for k in first.attrs if k == name)
        (b,) = (k for k in second.attrs if k == name)
        assert a is b  # one copy of the name, not one per item


def test_large_s3_bodies_are_kept_on_disk_and_read_back_as_written(aws) -> None:
    from moto.s3.models import s3_backends

    from sales_cdc.emulator.server import S3_BODY_IN_MEMORY_BYTES

    s3 = aws.client("s3")
    bucket = aws.stack().bucket
    s3.create_bucket(Bucket=bucket)
    large = bytes(range(256)) * (S3_BODY_IN_MEMORY_BYTES // 256 + 1)
    small = b'{"order_id": "o-1"}\n'
    s3.put_object(Bucket=bucket, Key="lake/large.parquet", Body=large)
    s3.put_object(Bucket=bucket, Key="raw/small.json", Body=small)
    assert s3.get_object(Bucket=bucket, Key="lake/large.parquet")["Body"].read() == large
    assert s3.get_object(Bucket=bucket, Key="raw/small.json")["Body"].read() == small
    ranged = s3.get_object(Bucket=bucket, Key="lake/large.parquet", Range="bytes=1000-1999")
    assert ranged["Body"].read() == large[1000:2000]

    keys = s3_backends["123456789012"]["aws"].buckets[bucket].keys
    assert keys["lake/large.parquet"]._value_buffer._rolled  # in a temporary file
    assert not keys["raw/small.json"]._value_buffer._rolled  # in memory
    for key in ("lake/large.parquet", "raw/small.json"):
        s3.delete_object(Bucket=bucket, Key=key)


def _rss_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096


# Run in a fresh interpreter, as the emulator starts: the test process's heaps hold free chunks
# of earlier tests, from which glibc serves a large block without asking for new memory at all.
_LARGE_BLOCK_SCRIPT = """
import ctypes
from sales_cdc.emulator.server import return_free_memory, tune_malloc

class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Mallinfo2
assert tune_malloc()
large = bytearray(16 << 20)
del large  # by default glibc would now carve blocks of up to 16 MB from its heap
return_free_memory()
before = libc.mallinfo2().hblkhd
buffer = bytearray(8 << 20)
print(libc.mallinfo2().hblkhd - before)
"""


def test_malloc_keeps_large_blocks_out_of_the_heaps() -> None:
    from sales_cdc.emulator.server import tune_malloc

    assert tune_malloc() is True  # glibc accepted M_ARENA_MAX and M_MMAP_THRESHOLD
    # With the threshold fixed, an 8 MB buffer is mmapped (and unmapped when freed) even after a
    # 16 MB block was freed, which raises glibc's threshold by default (mallopt(3)).
    result = subprocess.run(
        [sys.executable, "-c", _LARGE_BLOCK_SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert int(result.stdout) >= 8 << 20


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads RSS from /proc")
def test_return_free_memory_gives_freed_heap_pages_back():
    from sales_cdc.emulator.server import return_free_memory

    # 600-byte buffers come from the C allocator (Python's own allocator serves up to 512 bytes);
    # keeping one in a hundred pins the heap as long-lived objects between requests do.
    blocks = [bytearray(600) for _ in range(300_000)]
    kept = blocks[::100]
    del blocks
    freed_but_held = _rss_bytes()
    if not return_free_memory():
        pytest.skip("the C library has no malloc_trim")
    assert _rss_bytes() < freed_but_held - 100 * 2**20
    assert len(kept) == 3_000


def test_paginated_parallel_scan_with_projection_returns_each_item_once(aws) -> None:
    ddb, table, *_ = _stream(aws)
    for n in range(40):
        ddb.put_item(
            TableName=table,
            Item={
                "orderId": {"S": f"o-{n:02d}"},
                "status": {"S": "PAID"},
                "version": {"N": str(n)},
                "totalAmount": {"N": "12.50"},
                "lines": {"L": [{"M": {"sku": {"S": f"p-{n}"}, "qty": {"N": "2"}}}]},
            },
        )
    seen: list[dict] = []
    for segment in range(4):
        kwargs = {
            "TableName": table,
            "Segment": segment,
            "TotalSegments": 4,
            "Limit": 3,
            "ProjectionExpression": "orderId, #s, version, totalAmount, notThere",
            "ExpressionAttributeNames": {"#s": "status"},
        }
        keys: list[str] = []
        while True:
            page = ddb.scan(**kwargs)
            keys += [item["orderId"]["S"] for item in page["Items"]]
            seen += page["Items"]
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        assert keys == sorted(keys)  # pages follow the key order within a segment
    assert sorted(item["orderId"]["S"] for item in seen) == [f"o-{n:02d}" for n in range(40)]
    assert {
        "orderId": {"S": "o-07"},
        "status": {"S": "PAID"},
        "version": {"N": "7"},
        "totalAmount": {"N": "12.50"},
    } in seen
    # A nested path is projected as moto does it.
    nested = ddb.get_item(
        TableName=table, Key={"orderId": {"S": "o-03"}}, ProjectionExpression="lines[0].sku"
    )
    assert nested["Item"] == {"lines": {"L": [{"M": {"sku": {"S": "p-3"}}}]}}


def test_scan_pages_are_the_pages_moto_returns(aws) -> None:
    import itertools
    import random

    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.models import dynamodb_backends
    from moto.dynamodb.models.table import Table

    ddb = aws.client("dynamodb")
    name = f"{aws.stack().table_name}-ranged"
    ddb.create_table(
        TableName=name,
        KeySchema=[
            {"AttributeName": "customerId", "KeyType": "HASH"},
            {"AttributeName": "placedAt", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "customerId", "AttributeType": "S"},
            {"AttributeName": "placedAt", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    rng = random.Random(3)
    for customer, _ in itertools.product(range(6), range(10)):
        ddb.put_item(
            TableName=name,
            Item={
                "customerId": {"S": f"c-{customer}"},
                "placedAt": {"N": str(rng.randint(0, 10**6))},
                "status": {"S": rng.choice(["PAID", "PLACED"])},
                "note": {"S": "x" * rng.randint(0, 50)},
            },
        )
    table = dynamodb_backends["123456789012"]["us-east-1"].tables[name]
    paid = get_filter_expression("#s = :s", {"#s": "status"}, {":s": {"S": "PAID"}})
    for segments, limit, filter_expression, projection in itertools.product(
        [(None, None), (0, 3), (2, 3)], [None, 1, 7], [None, paid], [None, [["status"]]]
    ):
        pages = {}
        for label, scan in (("emulator", Table.scan), ("moto", Table.scan.__wrapped__)):
            start, pages[label] = None, []
            while True:
                items, scanned, start = scan(
                    table, {}, limit, start, filter_expression, None, False, projection, segments
                )
                pages[label].append(([i.to_json() for i in items], scanned, start))
                if start is None:
                    break
                start = {k: v.to_json() for k, v in start.items()}
        assert pages["emulator"] == pages["moto"], (segments, limit, filter_expression, projection)
        assert len(pages["emulator"]) > 1 or limit is None


def test_item_responses_are_the_json_moto_serializes(aws, monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.dynamodb.responses import DynamoResult

    from sales_cdc.emulator import server

    encoded: list[str] = []  # what the direct encoding did with each item: "ok" or why not

    def wire_attribute_map(item: object) -> dict:
        try:
            wire = direct(item)
        except server._NotPlainAttribute as exc:
            encoded.append(repr(exc))
            raise
        encoded.append("ok")
        return wire

    direct = server._wire_attribute_map
    monkeypatch.setattr(server, "_wire_attribute_map", wire_attribute_map)
    ddb = aws.client("dynamodb")
    bodies: list[dict] = []
    ddb.meta.events.register(
        "after-call.dynamodb.*",
        lambda http_response, **_: bodies.append(json.loads(http_response.content)),
    )
    item = {
        "orderId": {"S": "o-1"},
        "version": {"N": "3"},
        "totalAmount": {"N": "-12.50"},
        "note": {"S": ""},
        "photo": {"B": b"\x00\xffbinary"},
        "gift": {"BOOL": False},
        "coupon": {"NULL": True},
        "tags": {"SS": ["a", "b"]},
        "sizes": {"NS": ["1", "2.5"]},
        "thumbs": {"BS": [b"\x01", b"\x02\x03"]},
        "address": {"M": {"city": {"S": "Lyon"}, "pin": {"B": b"\x07"}, "none": {"M": {}}}},
        "lines": {"L": [{"S": "x"}, {"N": "1"}, {"L": []}, {"M": {"q": {"BOOL": True}}}]},
    }

    def calls(table: str) -> list[dict]:
        bodies.clear()
        ddb.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "orderId", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "orderId", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        for n in range(5):
            ddb.put_item(TableName=table, Item={**item, "orderId": {"S": f"o-{n}"}})
        ddb.put_item(TableName=table, Item=item, ReturnValues="ALL_OLD")
        ddb.get_item(TableName=table, Key={"orderId": {"S": "o-2"}}, ReturnConsumedCapacity="TOTAL")
        ddb.get_item(TableName=table, Key={"orderId": {"S": "missing"}})
        ddb.scan(TableName=table, Limit=2, ReturnConsumedCapacity="INDEXES")
        ddb.scan(
            TableName=table,
            ProjectionExpression="photo, #l, address.pin",
            ExpressionAttributeNames={"#l": "lines"},
        )
        ddb.scan(TableName=table, Select="COUNT")
        ddb.scan(TableName=table, FilterExpression="version = :v", ExpressionAttributeValues={
            ":v": {"N": "99"}})  # fmt: skip
        ddb.query(
            TableName=table,
            KeyConditionExpression="orderId = :o",
            ExpressionAttributeValues={":o": {"S": "o-3"}},
        )
        ddb.update_item(
            TableName=table,
            Key={"orderId": {"S": "o-4"}},
            UpdateExpression="SET version = version + :one, thumbs = :t",
            ExpressionAttributeValues={":one": {"N": "1"}, ":t": {"BS": [b"\x09"]}},
            ReturnValues="ALL_NEW",
        )
        ddb.update_item(
            TableName=table,
            Key={"orderId": {"S": "o-4"}},
            UpdateExpression="REMOVE coupon",
            ReturnValues="UPDATED_OLD",
        )
        with pytest.raises(ddb.exceptions.ConditionalCheckFailedException):
            ddb.delete_item(
                TableName=table,
                Key={"orderId": {"S": "o-3"}},
                ConditionExpression="version = :v",
                ExpressionAttributeValues={":v": {"N": "99"}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        ddb.delete_item(TableName=table, Key={"orderId": {"S": "o-3"}}, ReturnValues="ALL_OLD")
        return [json.loads(json.dumps(body).replace(table, "TABLE")) for body in bodies[1:]]

    table = aws.stack().table_name
    emulator = calls(f"{table}-direct")
    assert encoded and set(encoded) == {"ok"}, encoded  # every item encoded directly
    monkeypatch.setattr(DynamoResult, "execute_result", DynamoResult.execute_result.__wrapped__)
    moto = calls(f"{table}-moto")
    assert len(emulator) == 17
    assert emulator == moto
    assert emulator[6]["Item"]["photo"] == {"B": base64.b64encode(b"\x00\xffbinary").decode()}


def test_stream_records_are_the_json_moto_serializes(aws, monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.dynamodbstreams.responses import DynamoDBStreamsHandler

    ddb, streams = aws.client("dynamodb"), aws.client("dynamodbstreams")
    table = f"{aws.stack().table_name}-streamed"
    stream_arn = ddb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "orderId", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "orderId", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )["TableDescription"]["LatestStreamArn"]
    item = {
        "orderId": {"S": "o-1"},
        "version": {"N": "1"},
        "photo": {"B": b"\x00\xff"},
        "tags": {"SS": ["a"]},
        "thumbs": {"BS": [b"\x01"]},
        "address": {"M": {"pin": {"B": b"\x07"}, "lines": {"L": [{"NULL": True}]}}},
    }
    ddb.put_item(TableName=table, Item=item)
    ddb.put_item(TableName=table, Item={**item, "version": {"N": "2"}})
    ddb.update_item(
        TableName=table,
        Key={"orderId": {"S": "o-1"}},
        UpdateExpression="SET gift = :g",
        ExpressionAttributeValues={":g": {"BOOL": True}},
    )
    ddb.delete_item(TableName=table, Key={"orderId": {"S": "o-1"}})
    shard = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"][0]
    bodies: list[dict] = []
    streams.meta.events.register(
        "after-call.dynamodb-streams.GetRecords",
        lambda http_response, **_: bodies.append(json.loads(http_response.content)),
    )

    def read() -> list[dict]:
        bodies.clear()
        iterator = streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator and len(bodies) < 4:
            iterator = streams.get_records(ShardIterator=iterator, Limit=2).get("NextShardIterator")
        return [{k: v for k, v in body.items() if k != "NextShardIterator"} for body in bodies]

    emulator = read()
    monkeypatch.setattr(
        DynamoDBStreamsHandler, "get_records", DynamoDBStreamsHandler.get_records.__wrapped__
    )
    moto = read()

    def binary_once(value: object) -> object:
        """moto's body with its binary values' second base64 encoding undone."""
        if isinstance(value, list):
            return [binary_once(v) for v in value]
        if not isinstance(value, dict):
            return value
        return {
            k: base64.b64decode(v).decode()
            if k == "B"
            else [base64.b64decode(b).decode() for b in v]
            if k == "BS"
            else binary_once(v)
            for k, v in value.items()
        }

    assert [len(body["Records"]) for body in emulator] == [2, 2, 0, 0]
    assert emulator == binary_once(moto)
    # A binary value is its base64 text, as on AWS (moto encodes its stored text again).
    # https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_AttributeValue.html
    assert emulator[0]["Records"][0]["dynamodb"]["NewImage"]["photo"] == {
        "B": base64.b64encode(b"\x00\xff").decode()
    }
    assert moto[0]["Records"][0]["dynamodb"]["NewImage"]["photo"] != {"B": "AP8="}
