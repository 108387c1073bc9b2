"""The embedded AWS emulator: a moto server on 127.0.0.1."""

from __future__ import annotations

import base64
import bisect
import copy
import ctypes
import ctypes.util
import datetime as dt
import errno
import functools
import json
import logging
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from types import FrameType

from moto.server import ThreadedMotoServer

from sales_cdc.emulator import packed_items
from sales_cdc.emulator.record_log import KinesisRecords, RecordLog
from sales_cdc.settings import DEFAULT_EMULATOR_PORT

HOST = "127.0.0.1"
log = logging.getLogger(__name__)


class EmulatorError(RuntimeError):
    """The emulator could not start."""


def _treat_loopback_as_secure_transport() -> None:
    """Evaluate `Bool aws:SecureTransport` in bucket policies as a TLS endpoint would.

    moto does not know the `Bool` operator and turns any statement whose condition it cannot
    evaluate into a deny, so the lake bucket's standard "deny when aws:SecureTransport is false"
    statement would deny every request. The emulator stands in for AWS's TLS endpoints and only
    listens on loopback, so its requests count as secure transport: such a statement does not
    apply. Every other statement keeps moto's own evaluation.
    """
    from moto.iam.access_control import IAMPolicyStatement, PermissionResult

    original = IAMPolicyStatement.is_action_permitted
    if getattr(original, "_sales_cdc_patched", False):
        return

    def is_action_permitted(self: IAMPolicyStatement, *args: object, **kwargs: object):
        condition = self._statement.get("Condition") or {}
        secure = (condition.get("Bool") or {}).get("aws:SecureTransport")
        if secure is None:
            return original(self, *args, **kwargs)
        if str(secure).lower() != "true":
            return PermissionResult.NEUTRAL
        rest = {k: v for k, v in condition.items() if k != "Bool"}
        statement = {k: v for k, v in self._statement.items() if k != "Condition"}
        if rest:
            statement["Condition"] = rest
        return original(IAMPolicyStatement(statement), *args, **kwargs)

    is_action_permitted._sales_cdc_patched = True  # type: ignore[attr-defined]
    IAMPolicyStatement.is_action_permitted = is_action_permitted  # type: ignore[method-assign]


_GLUE_TABLE_LOCK = threading.Lock()


def _glue_update_table_checks_version_id() -> None:
    """Honour UpdateTable's VersionId as Glue does (optimistic locking of Iceberg commits).

    Glue updates a table "at" the VersionId given and answers ConcurrentModificationException
    when the table has moved on (docs: Glue API, UpdateTable, VersionId); Iceberg catalogs
    (pyiceberg's GlueCatalog) rely on it so that two concurrent commits never silently overwrite
    each other's metadata pointer. moto ignores the parameter: here a stale VersionId is refused
    and the check-and-update is atomic.
    """
    from moto.glue.exceptions import GlueClientError
    from moto.glue.responses import GlueResponse

    original = GlueResponse.update_table
    if getattr(original, "_sales_cdc_patched", False):
        return

    class ConcurrentModificationException(GlueClientError):
        def __init__(self, message: str) -> None:
            super().__init__("ConcurrentModificationException", message)

    def update_table(self: GlueResponse):  # type: ignore[no-untyped-def]
        version_id = self.parameters.get("VersionId")
        with _GLUE_TABLE_LOCK:
            if version_id is not None:
                table_input = self.parameters.get("TableInput") or {}
                table = self.glue_backend.get_table(
                    self.parameters.get("DatabaseName"), table_input.get("Name")
                )
                current = str(table._current_version)
                if str(version_id) != current:
                    raise ConcurrentModificationException(
                        f"Table {table_input.get('Name')} is at version {current}, "
                        f"not {version_id}: it was modified concurrently."
                    )
            return original(self)

    update_table._sales_cdc_patched = True  # type: ignore[attr-defined]
    GlueResponse.update_table = update_table  # type: ignore[method-assign]


# DynamoDB Streams keeps a record for 24 hours; a shard iterator expires 15 minutes after it is
# returned. https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Streams.html
STREAM_RECORD_RETENTION_SECONDS = 24 * 3600
SHARD_ITERATOR_LIFETIME_SECONDS = 15 * 60
ITERATOR_PRUNE_INTERVAL_SECONDS = 10.0


class _KinesisRecord:
    """A Kinesis record as moto's readers (GetRecords, resharding) read a Record, built from its
    shard's KinesisRecords when read: `data` is base64 text, as on moto's Record."""

    __slots__ = ("body", "created_at", "explicit_hash_key", "partition_key", "sequence_number")

    def __init__(
        self,
        sequence_number: int,
        partition_key: str,
        explicit_hash_key: str | None,
        body: bytes,
        created_at: float,
    ) -> None:
        self.sequence_number = sequence_number
        self.partition_key = partition_key
        self.explicit_hash_key = explicit_hash_key
        self.body = body
        self.created_at = created_at

    @property
    def data(self) -> str:
        return base64.b64encode(self.body).decode()

    @property
    def created_at_datetime(self) -> dt.datetime:
        """The arrival time as moto's utcnow() gives it: a naive UTC datetime."""
        return dt.datetime.fromtimestamp(self.created_at, dt.UTC).replace(tzinfo=None)

    def to_json(self) -> dict:
        return {
            "Data": self.body,
            "PartitionKey": self.partition_key,
            "SequenceNumber": str(self.sequence_number),
            "ApproximateArrivalTimestamp": self.created_at_datetime,
        }


def _bound_streams_memory() -> None:
    """Keep the emulator's stream state bounded the way AWS bounds it.

    moto keeps every DynamoDB stream record, Kinesis record and DynamoDB Streams shard iterator
    for the life of the process, and scans all Kinesis records on every read: under the demo's
    sustained load its memory and CPU grow without end. Here, as on AWS, stream records older than
    their retention are trimmed (a read before the trim horizon gets TrimmedDataAccessException),
    shard iterators expire after 15 minutes (ExpiredIteratorException), and reads and writes of a
    Kinesis shard cost the same whatever its length. Each shard keeps its records compressed in one
    RecordLog (sales_cdc/emulator/record_log.py), not as objects.
    """
    from moto.core.exceptions import JsonRESTError
    from moto.dynamodb.models.table import StreamRecord, StreamShard
    from moto.dynamodb.models.utilities import dynamo_json_dump
    from moto.dynamodbstreams.models import DynamoDBStreamsBackend, ShardIterator
    from moto.kinesis.models import Shard, Stream

    if getattr(StreamShard.add, "_sales_cdc_patched", False):
        return
    original_add = StreamShard.add
    original_iterator_init = ShardIterator.__init__
    original_put = Stream.put_record
    original_shard_get = Shard.get_records
    original_shard_init = Shard.__init__
    original_shard_put = Shard.put_record

    def add(self: StreamShard, old: object, new: object) -> None:
        if self.table.lambda_event_source_mappings:  # moto's own Lambda delivery: unchanged
            return original_add(self, old, new)
        if not isinstance(self.items, RecordLog):  # moto's list, empty (a new shard)
            self.items = RecordLog()
        event_name = "INSERT" if old is None else "REMOVE" if new is None else "MODIFY"
        trimmed = getattr(self, "_trimmed", 0)
        seq = self.starting_sequence_number + trimmed + len(self.items)
        view = self.table.stream_specification["StreamViewType"]
        record = StreamRecord(self.table, view, event_name, old, new, seq).to_json()
        now = time.time()
        self.items.append(dynamo_json_dump(record).encode(), now)
        dropped = self.items.trim_before(now - STREAM_RECORD_RETENTION_SECONDS)
        if dropped:
            self._trimmed = trimmed + dropped

    def get(self: StreamShard, start: int, quantity: int) -> list[dict]:
        index = start - self.starting_sequence_number - getattr(self, "_trimmed", 0)
        if index < 0:
            raise JsonRESTError(
                "TrimmedDataAccessException",
                f"sequence number {start} is beyond the stream's 24-hour retention",
            )
        stop = min(index + quantity, len(self.items))
        return [json.loads(self.items[i]) for i in range(index, stop)]

    def iterator_init(self: ShardIterator, streams_backend, stream_shard, kind, seq=None):
        original_iterator_init(self, streams_backend, stream_shard, kind, seq)
        if kind in ("LATEST", "TRIM_HORIZON"):
            self.sequence_number += getattr(stream_shard, "_trimmed", 0)
        self.created = time.monotonic()

    def get_records(self: DynamoDBStreamsBackend, iterator_arn: str, limit: int) -> dict:
        now = time.monotonic()
        if now - getattr(self, "_pruned", 0.0) > ITERATOR_PRUNE_INTERVAL_SECONDS:
            self._pruned = now
            for arn, iterator in list(self.shard_iterators.items()):
                if now - getattr(iterator, "created", now) > SHARD_ITERATOR_LIFETIME_SECONDS:
                    del self.shard_iterators[arn]
        iterator = self.shard_iterators.get(iterator_arn)
        if iterator is None:
            raise JsonRESTError(
                "ExpiredIteratorException", "The shard iterator has expired or does not exist."
            )
        return iterator.get(limit)

    def put_record(self: Stream, partition_key: str, explicit_hash_key: str, data: str):
        result = original_put(self, partition_key, explicit_hash_key, data)
        # https://docs.aws.amazon.com/streams/latest/dev/kinesis-extended-retention.html
        horizon = time.time() - self.retention_period_hours * 3600
        for shard in self.shards.values():
            if isinstance(shard.records, KinesisRecords):  # (a shard split by moto is emptied)
                shard.records.trim_before(horizon)
        return result

    def shard_init(self: Shard, *args: object, **kwargs: object) -> None:
        original_shard_init(self, *args, **kwargs)
        self.records = KinesisRecords(_KinesisRecord)

    def shard_get_records(self: Shard, last_sequence_id: str, limit: int | None):
        records = self.records
        if not isinstance(records, KinesisRecords) or not records:
            return original_shard_get(self, last_sequence_id, limit)
        first, last = records.keys()[0], records.keys()[-1]
        start = max(int(last_sequence_id) + 1, first)
        stop = last + 1 if limit is None else min(last + 1, start + limit)
        results = [records[n] for n in range(start, stop)]
        if not results:
            return results, int(last_sequence_id), 0
        behind = records.created(last) - results[-1].created_at
        return results, results[-1].sequence_number, int(behind * 1000)

    def shard_put_record(self: Shard, partition_key: str, data: str, explicit_hash_key: str) -> str:
        if not isinstance(self.records, KinesisRecords):  # a shard closed by resharding
            return original_shard_put(self, partition_key, data, explicit_hash_key)
        sequence_number = self.get_max_sequence_number() + 1
        self.records.append(
            sequence_number, partition_key, explicit_hash_key, base64.b64decode(data), time.time()
        )
        return str(sequence_number)

    add._sales_cdc_patched = True  # type: ignore[attr-defined]
    StreamShard.add = add  # type: ignore[method-assign]
    StreamShard.get = get  # type: ignore[method-assign]
    ShardIterator.__init__ = iterator_init  # type: ignore[method-assign]
    DynamoDBStreamsBackend.get_records = get_records  # type: ignore[method-assign]
    Stream.put_record = put_record  # type: ignore[method-assign]
    Shard.__init__ = shard_init  # type: ignore[method-assign]
    Shard.get_records = shard_get_records  # type: ignore[method-assign]
    Shard.put_record = shard_put_record  # type: ignore[method-assign]
    Shard.get_max_sequence_number = lambda self: next(reversed(self.records), 0)  # type: ignore[method-assign]
    Shard.get_min_sequence_number = lambda self: next(iter(self.records), 0)  # type: ignore[method-assign]


def _share_item_attribute_names() -> None:
    """Keep one copy of each attribute name for all the items of a table, not one per item.

    moto parses every write's JSON afresh, so each stored item held its own copy of every
    attribute name (`customerName`, `totalAmount`, ...): about a kilobyte per order item.
    """
    from moto.dynamodb.models.dynamo_type import Item

    original = Item.__init__
    if getattr(original, "_sales_cdc_patched", False):
        return

    def __init__(self: Item, hash_key: object, range_key: object, attrs: dict) -> None:  # noqa: N807
        original(self, hash_key, range_key, {sys.intern(k): v for k, v in attrs.items()})

    __init__._sales_cdc_patched = True  # type: ignore[attr-defined]
    Item.__init__ = __init__  # type: ignore[method-assign]


# An S3 object body larger than this is kept in a temporary file, not in the emulator's memory.
S3_BODY_IN_MEMORY_BYTES = 256 * 1024


def _item_key(hash_key: object, range_key: object) -> object:
    """An item's place in a table's key order (moto's order: hash key, then range key)."""
    return (hash_key.cast_value, range_key.cast_value) if range_key else hash_key.cast_value  # type: ignore[attr-defined]


def _key_of(item: object) -> object:
    return _item_key(item.hash_key, item.range_key)  # type: ignore[attr-defined]


def _scan_with_keys_parsed_once() -> None:
    """Scan a table's page from its start key, with keys parsed once per item.

    For every page, moto's Scan sorts the whole table comparing DynamoType keys (each comparison
    parses both values again), walks it item by item to the page's start key, and deep-copies
    each item before projecting it. A parallel Scan of 20,000 orders cost the emulator about
    20 s, and the demo's reconciliation scans OrderTable every 5 minutes. Here the items are sorted
    by keys parsed once, the page starts by bisection, and a packed item (packed_items) is sized
    and copied from its packed form, in the projected attributes only when no filter reads the
    others. Each page still sorts its segment of the table, as moto's does. Same pages as moto's
    (order, Limit, the 1 MB limit counted on whole items, LastEvaluatedKey, ScannedCount); index
    and ScanFilter scans keep moto's own way.
    """
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import RESULT_SIZE_LIMIT, Table

    original = Table.scan
    if getattr(original, "_sales_cdc_patched", False):
        return

    def scan(  # noqa: PLR0913 - moto's signature
        self: Table,
        filters: dict,
        limit: int | None,
        exclusive_start_key: dict | None,
        filter_expression: object = None,
        index_name: str | None = None,
        consistent_read: bool = False,
        projection_expression: list[list[str]] | None = None,
        segments: tuple = (None, None),
    ) -> tuple[list, int, dict | None]:
        if index_name or filters:
            return original(
                self, filters, limit, exclusive_start_key, filter_expression, index_name,
                consistent_read, projection_expression, segments,
            )  # fmt: skip
        if self.range_key_attr:
            items = [item for same_hash in self.items.values() for item in same_hash.values()]
        else:
            items = list(self.items.values())
        items = [item for item in items if item.is_within_segment(segments)]
        items.sort(key=_key_of)
        start = 0
        if exclusive_start_key is not None:
            after = _item_key(
                DynamoType(exclusive_start_key[self.hash_key_attr]),
                DynamoType(exclusive_start_key[self.range_key_attr])
                if self.range_key_attr
                else None,
            )
            start = bisect.bisect_right(items, after, key=_key_of)
        page: list = []
        page_size = 0
        last_evaluated_key = None
        for item in items[start:]:
            size = packed_items.size_of(item)
            if len(page) == limit or page_size + size > RESULT_SIZE_LIMIT:
                last_evaluated_key = self._get_last_evaluated_key(page[-1], None)
                break
            page.append(item)
            page_size += size
        scanned_count = len(page)
        # Copies, as moto returns them; a packed item is copied from its packed form, in the
        # attributes of a top-level projection only when no filter reads the others.
        names = None
        top_level = projection_expression and all(
            len(path) == 1 and "[" not in path[0] for path in projection_expression
        )
        if top_level and filter_expression is None:
            names = frozenset(path[0] for path in projection_expression)  # type: ignore[union-attr]
        page = [packed_items.copy_of(item, names) for item in page]
        if filter_expression is not None:
            page = [item for item in page if filter_expression.expr(item)]  # type: ignore[attr-defined]
        if projection_expression:
            page = [item.project(projection_expression) for item in page]
        return page, scanned_count, last_evaluated_key

    scan._sales_cdc_patched = True  # type: ignore[attr-defined]
    scan.__wrapped__ = original  # type: ignore[attr-defined]
    Table.scan = scan  # type: ignore[method-assign]


def _project_top_level_attributes_directly() -> None:
    """Project an item on top-level attributes by picking them, not by converting it whole.

    moto projects an item (Scan, Query, GetItem with a ProjectionExpression) by converting the
    whole item to plain JSON once per projected attribute: the reconciliation's Scan of OrderTable
    (five attributes) spent half its time there. Nested paths (`a.b`, `a[0]`) keep moto's way.
    """
    from moto.dynamodb.models.dynamo_type import Item, LimitedSizeDict

    original = Item.project
    if getattr(original, "_sales_cdc_patched", False):
        return

    def project(self: Item, projection_expressions: list[list[str]]) -> Item:
        names = [path[0] for path in projection_expressions if len(path) == 1]
        if len(names) < len(projection_expressions) or any("[" in name for name in names):
            return original(self, projection_expressions)
        # Built as moto's Item.__deepcopy__ builds a copy: the attributes are copies, and the size
        # check that Item() runs on every attribute it sets (the stored item passed it) is skipped.
        projected = Item.__new__(Item)
        projected.hash_key, projected.range_key = self.hash_key, self.range_key
        projected.attrs = LimitedSizeDict.__new__(LimitedSizeDict)
        dict.__init__(projected.attrs)
        for name in names:
            if name in self.attrs:
                dict.__setitem__(projected.attrs, name, copy.deepcopy(self.attrs[name]))
        return projected

    project._sales_cdc_patched = True  # type: ignore[attr-defined]
    Item.project = project  # type: ignore[method-assign]


# DynamoDB operations whose items the emulator encodes itself: operation -> the members of its
# response that hold attribute maps (a list of items, or one item or key).
_ATTRIBUTE_MAP_MEMBERS = {
    "Scan": ("Items", "LastEvaluatedKey"),
    "Query": ("Items", "LastEvaluatedKey"),
    "GetItem": ("Item",),
    "PutItem": ("Attributes",),
    "UpdateItem": ("Attributes",),
    "DeleteItem": ("Attributes",),
}


class _NotPlainAttribute(ValueError):
    """An attribute value the direct encoding does not know: moto's serializer encodes it."""


def _b64(value: object) -> str:
    """A binary attribute's wire form, as moto's serializer writes it (base64 of the bytes)."""
    if isinstance(value, str):
        value = value.encode("utf-8")
    if not isinstance(value, bytes | bytearray):
        raise _NotPlainAttribute(type(value).__name__)
    return base64.b64encode(value).decode("ascii")


def _b64_text(value: object) -> str:
    """A binary attribute of a stream record: moto stores it as base64 text already."""
    return value if isinstance(value, str) else _b64(value)


def _wire_attribute(value: object, binary: Callable[[object], str] = _b64) -> dict:
    """One AttributeValue ({"S": "x"}, {"M": {...}}, ...) as DynamoDB's JSON carries it; `binary`
    writes a binary value's base64 text."""
    if not isinstance(value, dict) or len(value) != 1:
        raise _NotPlainAttribute(repr(value)[:80])
    ((kind, inner),) = value.items()
    if kind in ("S", "N") and isinstance(inner, str):
        return value
    if kind in ("BOOL", "NULL") and isinstance(inner, bool):
        return value
    if kind in ("SS", "NS") and isinstance(inner, list) and all(isinstance(v, str) for v in inner):
        return value
    if kind == "M" and isinstance(inner, dict):
        return {"M": {str(k): _wire_attribute(v, binary) for k, v in inner.items()}}
    if kind == "L" and isinstance(inner, list):
        return {"L": [_wire_attribute(v, binary) for v in inner]}
    if kind == "B":
        return {"B": binary(inner)}
    if kind == "BS" and isinstance(inner, list):
        return {"BS": [binary(v) for v in inner]}
    raise _NotPlainAttribute(kind)


def _wire_attribute_map(item: object, binary: Callable[[object], str] = _b64) -> dict:
    if not isinstance(item, dict):
        raise _NotPlainAttribute(type(item).__name__)
    return {str(name): _wire_attribute(value, binary) for name, value in item.items()}


def _wire_stream_record(record: dict) -> dict:
    """A DynamoDB stream record as GetRecords carries it: its images and keys as DynamoDB's JSON,
    its creation time as the epoch seconds (to the millisecond) moto's serializer writes.

    A binary value is its base64 text once, as on AWS (moto's serializer encodes the text moto
    stored a second time).
    """
    from moto.core.serialize import TimestampSerializer

    change = dict(record["dynamodb"])
    for member in ("Keys", "NewImage", "OldImage"):
        if member in change:
            change[member] = _wire_attribute_map(change[member], _b64_text)
    if "ApproximateCreationDateTime" in change:
        unix = TimestampSerializer.TIMESTAMP_FORMAT_UNIX
        change["ApproximateCreationDateTime"] = TimestampSerializer(unix)._convert_timestamp_to_str(
            change["ApproximateCreationDateTime"], unix
        )
    return {**record, "dynamodb": change}


def _serialize_items_directly() -> None:
    """Encode the items in DynamoDB and DynamoDB Streams responses as JSON directly, not through
    moto's serializer.

    moto serializes every response by walking botocore's model of the operation value by value
    (each attribute of each item looked up under its possible names): in a Scan of OrderTable
    that walk cost the emulator several times the Scan itself, and under the demo's load a fifth
    of the emulator's CPU went to walking the images of the stream records the pipe reads. For
    the operations that return items (_ATTRIBUTE_MAP_MEMBERS) and for Streams' GetRecords, the
    items are encoded as DynamoDB's JSON directly; the rest of the response (counts, consumed
    capacity, the next iterator, errors) still goes through moto's serializer. An attribute value
    of a shape this encoding does not know leaves the whole response to moto.
    """
    from moto.core.responses import ActionResult
    from moto.dynamodb.responses import DynamoResult
    from moto.dynamodbstreams.responses import DynamoDBStreamsHandler

    original = DynamoResult.execute_result
    if getattr(original, "_sales_cdc_patched", False):
        return
    original_get_records = DynamoDBStreamsHandler.get_records

    class EncodedResult(ActionResult):
        """A result with members already encoded: moto's serializer writes the rest."""

        def __init__(self, rest: dict, encoded: dict) -> None:
            super().__init__(rest)
            self.encoded = encoded

        def execute_result(self, context: object):
            status, headers, body = super().execute_result(context)  # type: ignore[arg-type]
            return status, headers, json.dumps({**json.loads(body), **self.encoded})

    def execute_result(self: DynamoResult, context: object):
        members = _ATTRIBUTE_MAP_MEMBERS.get(context.operation_model.name)  # type: ignore[attr-defined]
        result = self.result
        if not members or not isinstance(result, dict):
            return original(self, context)
        try:
            encoded = {
                member: [_wire_attribute_map(item) for item in result[member]]
                if member == "Items"
                else _wire_attribute_map(result[member])
                for member in members
                if result.get(member) is not None
            }
        except _NotPlainAttribute:
            return original(self, context)
        rest = {k: v for k, v in result.items() if k not in members}
        return EncodedResult(rest, encoded).execute_result(context)

    def get_records(self: DynamoDBStreamsHandler) -> ActionResult:
        response = original_get_records(self)
        result = response.result
        if not isinstance(result, dict) or not isinstance(result.get("Records"), list):
            return response
        try:
            records = [_wire_stream_record(record) for record in result["Records"]]
        except (_NotPlainAttribute, KeyError, TypeError):
            return response
        return EncodedResult(
            {k: v for k, v in result.items() if k != "Records"}, {"Records": records}
        )

    execute_result._sales_cdc_patched = True  # type: ignore[attr-defined]
    execute_result.__wrapped__ = original  # type: ignore[attr-defined]
    get_records.__wrapped__ = original_get_records  # type: ignore[attr-defined]
    DynamoResult.execute_result = execute_result  # type: ignore[method-assign]
    DynamoDBStreamsHandler.get_records = get_records  # type: ignore[method-assign]


def _list_moto_services_once() -> None:
    """Find a request's service among moto's packages listed once, not listed on every request.

    moto's server matches each request's host against the names of its own packages, which it
    lists from disk (a directory listing and a stat per package) inside the lock every request
    takes: about a tenth of the emulator's CPU under the demo's load.
    """
    import moto.backends

    if getattr(moto.backends.list_of_moto_modules, "_sales_cdc_patched", False):
        return
    services = frozenset(moto.backends.list_of_moto_modules())

    def list_of_moto_modules() -> frozenset[str]:
        return services

    list_of_moto_modules._sales_cdc_patched = True  # type: ignore[attr-defined]
    moto.backends.list_of_moto_modules = list_of_moto_modules  # type: ignore[assignment]


def _list_handler_methods_once() -> None:
    """Find a request's action among its handler's methods listed once per handler class.

    moto lists the methods of the handler class (inspect.getmembers over every attribute) for
    every request it dispatches, to check the action exists.
    """
    import moto.core.responses

    if getattr(moto.core.responses.method_names_from_class, "_sales_cdc_patched", False):
        return
    listed = functools.cache(moto.core.responses.method_names_from_class)
    listed._sales_cdc_patched = True  # type: ignore[attr-defined]
    moto.core.responses.method_names_from_class = listed  # type: ignore[assignment]


def _keep_large_s3_bodies_on_disk() -> None:
    """Keep S3 object bodies over S3_BODY_IN_MEMORY_BYTES in temporary files.

    moto keeps each body in a spooled temporary file that stays in memory up to 5 MB (its
    multipart minimum part size): every Iceberg data, manifest and metadata file the lake ever
    wrote lived in the emulator's memory. Landing objects (tens of KB) stay in memory; larger
    bodies go to an unlinked temporary file (one open file each, closed when the object is
    deleted), so the process may open as many files as its hard limit allows.
    """
    import resource

    import moto.s3.models

    if getattr(moto.s3.models.get_s3_default_key_buffer_size, "_sales_cdc_patched", False):
        return

    def get_s3_default_key_buffer_size() -> int:
        return S3_BODY_IN_MEMORY_BYTES

    get_s3_default_key_buffer_size._sales_cdc_patched = True  # type: ignore[attr-defined]
    moto.s3.models.get_s3_default_key_buffer_size = get_s3_default_key_buffer_size
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _stop_tracking_every_instance() -> None:
    """Stop moto from keeping a reference to every model object it ever created.

    moto's BaseModel appends each new instance to a class-level list (for its /moto-api dashboard),
    so every stream record, Kinesis record, shard iterator, item copy and deleted S3 object stays
    in memory for the life of the server, whatever was trimmed or deleted. The emulator does not
    use that dashboard: objects live as long as the service state refers to them, as they should.
    """
    from moto.core.common_models import BaseModel

    if getattr(BaseModel.__new__, "_sales_cdc_patched", False):
        return

    def __new__(cls, *args: object, **kwargs: object):  # noqa: N807 - replaces moto's __new__
        return object.__new__(cls)

    __new__._sales_cdc_patched = True  # type: ignore[attr-defined]
    BaseModel.__new__ = staticmethod(__new__)  # type: ignore[assignment]


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _check_port_free(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the server itself binds: connections of a previous emulator on this port that are
        # still in TIME_WAIT do not make it busy (a restart on the same port must work).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise EmulatorError(
                    f"Port {port} on {HOST} is already in use. Stop whatever listens there "
                    f"(`lsof -i :{port}`) or pick another port: sales-cdc emulator --port <N> "
                    "and export AWS_ENDPOINT_URL=http://127.0.0.1:<N>."
                ) from exc
            raise EmulatorError(f"Cannot bind {HOST}:{port}: {exc}") from exc


def wait_until_ready(endpoint: str, timeout: float = 30.0) -> None:
    """Poll the emulator until it answers, or raise after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=2):
                return
        except (urllib.error.URLError, OSError) as exc:
            last_error = exc
            time.sleep(0.1)
    raise EmulatorError(
        f"The emulator at {endpoint} did not answer within {timeout:.0f}s: {last_error}"
    )


# How often the emulator gives the memory its requests freed back to the operating system.
FREE_MEMORY_RETURN_SECONDS = 30.0


def return_free_memory() -> bool:
    """Give the C allocator's free memory back to the operating system (glibc's malloc_trim).

    Each request of the emulator allocates and frees its parsed JSON and responses between the
    objects it keeps (items, stream records), and glibc keeps freed pages in its heaps until they
    are trimmed. Memory that Python's own small-object allocator holds in partly used arenas is
    not released this way. False where the C library has no malloc_trim (macOS, musl).
    """
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """The C library, looked up once (find_library runs ldconfig)."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim; None where the C library has none."""
    return getattr(_libc(), "malloc_trim", None)


# glibc's mallopt parameters (malloc.h): the number of malloc arenas, and the size from which a
# block is mmapped rather than carved from a heap
M_ARENA_MAX = -8
M_MMAP_THRESHOLD = -3
MALLOC_ARENAS = 2
MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's default, kept fixed


def tune_malloc() -> bool:
    """Set glibc's malloc for a long-lived server of many threads and large short-lived buffers.

    - The threads share MALLOC_ARENAS arenas. glibc gives threads their own, up to eight per core,
      and the emulator serves each connection on its own thread: the objects a request keeps land
      in whichever arena its thread had, each arena keeping its own partly used heap. Over the
      soak (benchmarks/soak.py) the emulator ended at 238 MB with two arenas, 285 MB without.
    - A block of MMAP_THRESHOLD_BYTES or more is always mmapped. By default glibc raises that
      threshold to the size of each mmapped block freed (up to 32 MB): after the first large
      response the emulator's large short-lived buffers (request and response bodies, S3 objects,
      pages of records) were carved from the heaps, among the small objects it keeps, and their
      pages were not given back. Setting the threshold also stops that adjustment, so they are
      unmapped as soon as they are freed. Over the soak: 1.48x with it, 1.63x without.

    False where the C library has no mallopt (macOS, musl) or refuses a setting.
    """
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is None:
        return False
    arenas = mallopt(M_ARENA_MAX, MALLOC_ARENAS) == 1
    return mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1 and arenas


class Emulator:
    """A moto server bound to 127.0.0.1 only; use as a context manager or start()/stop()."""

    def __init__(self, port: int = DEFAULT_EMULATOR_PORT) -> None:
        self.port = port
        self._server: ThreadedMotoServer | None = None
        self._stopping = threading.Event()

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> Emulator:
        _check_port_free(self.port)
        tune_malloc()
        _treat_loopback_as_secure_transport()
        _glue_update_table_checks_version_id()
        _bound_streams_memory()
        _share_item_attribute_names()
        packed_items.install()
        _scan_with_keys_parsed_once()
        _project_top_level_attributes_directly()
        _serialize_items_directly()
        _list_moto_services_once()
        _list_handler_methods_once()
        _keep_large_s3_bodies_on_disk()
        _stop_tracking_every_instance()
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = ThreadedMotoServer(ip_address=HOST, port=self.port, verbose=False)
        self._server.start()
        wait_until_ready(self.endpoint)
        self._stopping.clear()
        threading.Thread(
            target=self._return_free_memory, name="return-free-memory", daemon=True
        ).start()
        return self

    def _return_free_memory(self) -> None:
        while not self._stopping.wait(FREE_MEMORY_RETURN_SECONDS) and return_free_memory():
            pass

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_emulator(port: int = DEFAULT_EMULATOR_PORT) -> None:
    """Run the emulator in the foreground until Ctrl-C or SIGTERM."""
    stop = threading.Event()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    emulator = Emulator(port).start()
    print(f"sales-cdc emulator listening on {emulator.endpoint}", flush=True)
    print(f"  export AWS_ENDPOINT_URL={emulator.endpoint}", flush=True)
    try:
        stop.wait()
    finally:
        emulator.stop()
        print("sales-cdc emulator stopped", flush=True)
