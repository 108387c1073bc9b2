"""The embedded Glue crawler: catalogs landed JSON objects through the Glue API, as Glue would.

It reads the crawler's own configuration (S3 targets, database, table prefix, schema change policy,
CrawlerOutput table and partition behaviour) from `glue.get_crawler`, lists the objects under each S3
target, infers the schema of the objects it has not read before (pyarrow's JSON reader, or line by
line through sales_cdc.landing_format when an object's values disagree: conflicting types become
string), types it as the Glue JSON classifier does (sales_cdc.hive_types), and writes the table and
its partitions with the Glue API. With "Add new columns only" (MergeNewColumns) a table's existing
columns keep their declared types; only new columns and partitions are added. An object that is not
GZIP or JSON lines at all is skipped and reported by key, never fatal. Re-runs are incremental: the
crawl state (a LastModified watermark, the keys seen near it and the schema inferred so far) is kept
as a parameter of the table it describes, so deleting the table means a full crawl next time.

The crawler's run state is kept in the Glue API as well: a crawl calls `start_crawler` first (so a
second crawl at the same time waits, exactly like a busy Glue crawler) and ends the emulator's crawl
record when it is done (COMPLETED on success, STOPPED on error).
"""

from __future__ import annotations

import contextlib
import fnmatch
import io
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.json as pa_json

from sales_cdc.hive_types import (
    GlueType,
    SchemaChange,
    from_arrow,
    merge_columns,
    of_value,
    parse,
    render,
)
from sales_cdc.landing_format import (
    GZIP_MAGIC,
    INPUT_FORMAT,
    JSON_SERDE,
    OUTPUT_FORMAT,
    UnreadableObject,
    decompress,
    read_json_lines,
)
from sales_cdc.resources.lake_catalog import as_table_input

log = logging.getLogger(__name__)

STATE_PARAMETER = "sales_cdc_crawl_state"
STATE_VERSION = 1
# Objects whose LastModified is this close to the watermark are remembered by key, so an object
# that shows up late with an earlier timestamp (a slow upload) is still read.
LOOKBACK = timedelta(minutes=15)
PARTITION_BATCH = 100
READ_THREADS = 8


# -- reading objects ---------------------------------------------------------------------------


@dataclass
class ObjectSchema:
    """What one landed object says about the table."""

    columns: list[tuple[str, GlueType]]
    records: int
    malformed_lines: int
    gzip: bool
    unreadable: str | None = None  # why the object was set aside (not GZIP/JSON lines at all)


def infer_object_schema(data: bytes) -> ObjectSchema:
    """The columns of one JSON-lines object (GZIP or plain), as the Glue JSON classifier types them.

    pyarrow's JSON reader infers a well-formed object in one go; an object with a malformed line
    or with values whose types conflict (a list mixing strings and numbers, a column that is a
    number here and a string there) is read line by line instead, conflicting types becoming
    string. An object that is not GZIP or JSON lines at all comes back `unreadable`.
    """
    compressed = data[:2] == GZIP_MAGIC
    try:
        text = decompress(data)
    except UnreadableObject as exc:
        return ObjectSchema([], 0, 0, compressed, str(exc))
    try:
        columns, records = _read_json(text)
        return ObjectSchema(columns, records, 0, compressed)
    except pa.ArrowInvalid:
        pass
    lines = read_json_lines(text)
    if not lines.is_json_lines:
        reason = f"none of its {lines.malformed_lines} line(s) is a JSON object"
        return ObjectSchema([], 0, lines.malformed_lines, compressed, reason)
    columns: list[tuple[str, GlueType]] = []
    for row in lines.rows:
        columns = merge_columns(columns, [(str(k).lower(), of_value(v)) for k, v in row.items()])[0]
    return ObjectSchema(columns, len(lines.rows), lines.malformed_lines, compressed)


def _read_json(text: bytes) -> tuple[list[tuple[str, GlueType]], int]:
    if not text.strip():
        return [], 0
    # One block per object, so the whole object takes part in type inference.
    options = pa_json.ReadOptions(block_size=max(len(text) + 1, 1 << 16))
    table = pa_json.read_json(io.BytesIO(text), read_options=options)
    columns: list[tuple[str, GlueType]] = []
    for arrow_field in table.schema:
        # Glue column names are lower case; keys differing only in case become one column.
        columns = merge_columns(
            columns, [(arrow_field.name.lower(), from_arrow(arrow_field.type))]
        )[0]
    return columns, table.num_rows


# -- the crawl ---------------------------------------------------------------------------------


class CrawlerError(RuntimeError):
    """The embedded crawl could not run; the message says why and what to do."""


@dataclass
class TableCrawl:
    """The outcome of crawling one S3 target into one table."""

    database: str
    table: str
    location: str
    created: bool
    updated: bool
    columns: list[tuple[str, str]]
    partition_keys: list[str]
    partitions: int
    partitions_added: int
    columns_added: list[str]
    columns_widened: list[tuple[str, str, str]]
    pending_changes: list[str]  # schema changes not applied (SchemaChangePolicy LOG)
    objects_listed: int
    objects_read: int
    bytes_read: int
    records_read: int
    malformed_lines: int
    objects_skipped: int
    unreadable_objects: list[str] = field(default_factory=list)  # keys set aside, not cataloged


@dataclass
class CrawlReport:
    """The outcome of one crawl."""

    crawler_name: str
    tables: list[TableCrawl]
    seconds: float


@dataclass
class _Listed:
    key: str
    size: int
    last_modified: datetime
    partition: tuple[tuple[str, str], ...]


@dataclass
class _State:
    watermark: datetime | None = None
    recent_keys: set[str] = field(default_factory=set)
    schema: list[tuple[str, GlueType]] = field(default_factory=list)
    records: int = 0

    @classmethod
    def from_table(cls, table: dict[str, Any] | None) -> _State:
        raw = ((table or {}).get("Parameters") or {}).get(STATE_PARAMETER)
        if not raw:
            return cls()
        try:
            doc = json.loads(raw)
            if doc.get("version") != STATE_VERSION:
                return cls()
            return cls(
                watermark=datetime.fromisoformat(doc["watermark"]) if doc["watermark"] else None,
                recent_keys=set(doc["recent_keys"]),
                schema=[(name, parse(text)) for name, text in doc["schema"]],
                records=int(doc.get("records", 0)),
            )
        except (ValueError, KeyError, TypeError):
            log.warning("Crawl state of table %s is unreadable: crawling it fully", table["Name"])
            return cls()

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": STATE_VERSION,
                "watermark": self.watermark.isoformat() if self.watermark else None,
                "recent_keys": sorted(self.recent_keys),
                "schema": [[name, render(t, null_as="null")] for name, t in self.schema],
                "records": self.records,
            },
            separators=(",", ":"),
        )

    def is_new(self, obj: _Listed) -> bool:
        if self.watermark is None:
            return True
        return obj.last_modified >= self.watermark - LOOKBACK and obj.key not in self.recent_keys


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _table_name(prefix: str, table_prefix: str) -> str:
    folder = [part for part in prefix.split("/") if part][-1]
    return re.sub(r"[^a-z0-9_]", "_", (table_prefix + folder).lower())


class EmbeddedCrawler:
    """Runs the crawler `crawler_name` against the emulator's S3 and Glue APIs."""

    def __init__(
        self,
        glue: Any,
        s3: Any,
        crawler_name: str,
        *,
        wait_timeout_seconds: float = 600.0,
        poll_seconds: float = 0.5,
        logger: logging.Logger | Any = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.glue = glue
        self.s3 = s3
        self.crawler_name = crawler_name
        self.wait_timeout_seconds = wait_timeout_seconds
        self.poll_seconds = poll_seconds
        self.log = logger or log
        self.sleep = sleep

    # -- run state in the Glue API -------------------------------------------------------------
    def _begin(self) -> None:
        """start_crawler; when a crawl is already running, wait for it (like a busy Glue crawler)."""
        deadline = time.monotonic() + self.wait_timeout_seconds
        announced = False
        while True:
            try:
                self.glue.start_crawler(Name=self.crawler_name)
                return
            except self.glue.exceptions.CrawlerRunningException:
                if time.monotonic() > deadline:
                    raise CrawlerError(
                        f"Crawler {self.crawler_name} has been running for more than "
                        f"{self.wait_timeout_seconds:.0f}s. If no crawl is running any more (a "
                        "crashed process), stop it: aws glue stop-crawler --name "
                        f"{self.crawler_name}, then run the crawl again."
                    ) from None
                if not announced:
                    self.log.info(f"Crawler {self.crawler_name} is running: waiting for it")
                    announced = True
                self.sleep(self.poll_seconds)

    def _end(self, succeeded: bool) -> None:
        if not succeeded:
            with contextlib.suppress(self.glue.exceptions.CrawlerNotRunningException):
                self.glue.stop_crawler(Name=self.crawler_name)
        # The emulator completes a crawl record once it has been observed through ListCrawls.
        self.glue.list_crawls(CrawlerName=self.crawler_name)

    # -- crawl -------------------------------------------------------------------------------
    def crawl(self) -> CrawlReport:
        """Crawl every S3 target of the crawler; return what changed in the catalog."""
        started = time.monotonic()
        try:
            crawler = self.glue.get_crawler(Name=self.crawler_name)["Crawler"]
        except self.glue.exceptions.EntityNotFoundException:
            raise CrawlerError(
                f"Glue crawler {self.crawler_name} does not exist. Provision the stack first "
                "(Dagster job provision_infrastructure)."
            ) from None
        targets = (crawler.get("Targets") or {}).get("S3Targets") or []
        if not targets:
            raise CrawlerError(f"Glue crawler {self.crawler_name} has no S3 target to crawl.")
        self._begin()
        succeeded = False
        try:
            tables = [self._crawl_target(crawler, target) for target in targets]
            succeeded = True
        finally:
            self._end(succeeded)
        return CrawlReport(self.crawler_name, tables, time.monotonic() - started)

    def _list(
        self, bucket: str, prefix: str, exclusions: list[str], skipped: list[str]
    ) -> list[_Listed]:
        listed: list[_Listed] = []
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                relative = obj["Key"][len(prefix) :]
                name = relative.rsplit("/", 1)[-1]
                # Folder markers, hidden and "_"-files are not data, for Hive and for Glue.
                if not name or name.startswith((".", "_")):
                    continue
                if any(fnmatch.fnmatch(relative, pattern) for pattern in exclusions):
                    continue
                partition: list[tuple[str, str]] = []
                for folder in relative.split("/")[:-1]:
                    if "=" not in folder:
                        skipped.append(obj["Key"])
                        break
                    key, value = folder.split("=", 1)
                    partition.append((key.lower(), value))
                else:
                    listed.append(
                        _Listed(obj["Key"], obj["Size"], obj["LastModified"], tuple(partition))
                    )
        return listed

    def _crawl_target(self, crawler: dict[str, Any], target: dict[str, Any]) -> TableCrawl:
        parsed = urlparse(target["Path"])
        bucket, prefix = parsed.netloc, parsed.path.lstrip("/")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        database = crawler["DatabaseName"]
        table_name = _table_name(prefix, crawler.get("TablePrefix") or "")
        location = f"s3://{bucket}/{prefix}"
        policy = crawler.get("SchemaChangePolicy") or {}
        update_in_database = policy.get("UpdateBehavior", "UPDATE_IN_DATABASE") != "LOG"
        configuration = json.loads(crawler.get("Configuration") or "{}")
        inherit = (configuration.get("CrawlerOutput") or {}).get("Partitions", {}).get(
            "AddOrUpdateBehavior"
        ) == "InheritFromTable"
        # "Add new columns only": new columns are added, existing ones keep their declared type.
        add_only = (configuration.get("CrawlerOutput") or {}).get("Tables", {}).get(
            "AddOrUpdateBehavior"
        ) == "MergeNewColumns"

        try:
            table = self.glue.get_table(DatabaseName=database, Name=table_name)["Table"]
        except self.glue.exceptions.EntityNotFoundException:
            table = None
        state = _State.from_table(table)

        skipped: list[str] = []
        listed = self._list(bucket, prefix, target.get("Exclusions") or [], skipped)
        if table is not None:
            partition_keys = [key["Name"] for key in table.get("PartitionKeys") or []]
        else:
            layouts = [tuple(k for k, _ in obj.partition) for obj in listed]
            partition_keys = list(max(set(layouts), key=layouts.count)) if layouts else []
        matching = [obj for obj in listed if [k for k, _ in obj.partition] == partition_keys]
        skipped += [obj.key for obj in listed if obj not in matching]
        if skipped:
            self.log.warning(
                f"{len(skipped)} object(s) under {location} are outside the partition layout "
                f"{partition_keys} and were not cataloged, e.g. {skipped[0]}"
            )

        if table is None and not matching:
            # Like Glue: nothing landed yet, no table.
            self.log.info(f"Nothing to catalog under {location} yet")
            return TableCrawl(
                database, table_name, location, False, False, [], partition_keys, 0, 0, [], [],
                [], len(listed), 0, 0, 0, 0, len(skipped),
            )  # fmt: skip

        new_objects = [obj for obj in matching if state.is_new(obj) and obj.size > 0]
        objects_read, bytes_read, records, malformed, compressed = 0, 0, 0, 0, None
        unreadable: list[str] = []
        for key, data in self._fetch(bucket, new_objects):
            inferred = infer_object_schema(data)
            if inferred.unreadable:
                # Like Glue: an object it cannot classify is logged and left out, the crawl goes on.
                self.log.warning(f"Skipped s3://{bucket}/{key}: {inferred.unreadable}")
                unreadable.append(key)
            else:
                compressed = inferred.gzip if compressed is None else compressed
            state.schema = merge_columns(state.schema, inferred.columns)[0]
            objects_read += 1
            bytes_read += len(data)
            records += inferred.records
            malformed += inferred.malformed_lines
        state.records += records
        if listed:
            newest = max(obj.last_modified for obj in listed)
            state.watermark = max(newest, state.watermark) if state.watermark else newest
            state.recent_keys = {
                obj.key for obj in listed if obj.last_modified >= state.watermark - LOOKBACK
            }

        # The table: created from the crawled schema, or merged with it (UPDATE_IN_DATABASE).
        current = [
            (col["Name"], parse(col["Type"]))
            for col in ((table or {}).get("StorageDescriptor") or {}).get("Columns") or []
        ]
        merged, change = merge_columns(current, state.schema, add_only=add_only)
        pending: list[str] = []
        if table is not None and not update_in_database and change.changed:
            pending = [f"add {name}" for name in change.added] + [
                f"{name}: {before} -> {after}" for name, before, after in change.widened
            ]
            self.log.warning(
                f"Schema changes of {database}.{table_name} not applied (SchemaChangePolicy "
                f"UpdateBehavior=LOG): {', '.join(pending)}"
            )
            merged, change = current, SchemaChange()
        columns = [(name, render(t)) for name, t in merged]
        table_input = self._table_input(
            table, table_name, location, columns, partition_keys, compressed, listed, state
        )
        if table is None:
            self.glue.create_table(DatabaseName=database, TableInput=table_input)
        elif self._differs(table, table_input):
            self.glue.update_table(DatabaseName=database, TableInput=table_input)

        existing = self._partitions(database, table_name)
        wanted = (
            {tuple(v for _, v in obj.partition) for obj in matching} if partition_keys else set()
        )
        added = sorted(wanted - existing)
        self._create_partitions(database, table_name, table_input, partition_keys, added)
        if change.changed and inherit and existing:
            self._update_partitions(database, table_name, table_input, partition_keys, existing)

        return TableCrawl(
            database=database,
            table=table_name,
            location=location,
            created=table is None,
            updated=table is not None and (change.changed or bool(added)),
            columns=columns,
            partition_keys=partition_keys,
            partitions=len(existing | set(added)),
            partitions_added=len(added),
            columns_added=change.added if table is not None else [],
            columns_widened=change.widened,
            pending_changes=pending,
            objects_listed=len(listed),
            objects_read=objects_read,
            bytes_read=bytes_read,
            records_read=records,
            malformed_lines=malformed,
            objects_skipped=len(skipped),
            unreadable_objects=unreadable,
        )

    def _fetch(self, bucket: str, objects: list[_Listed]) -> Iterator[tuple[str, bytes]]:
        def get(obj: _Listed) -> tuple[str, bytes]:
            return obj.key, self.s3.get_object(Bucket=bucket, Key=obj.key)["Body"].read()

        with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
            yield from pool.map(get, objects)

    def _table_input(
        self,
        table: dict[str, Any] | None,
        name: str,
        location: str,
        columns: list[tuple[str, str]],
        partition_keys: list[str],
        compressed: bool | None,
        listed: list[_Listed],
        state: _State,
    ) -> dict[str, Any]:
        base = as_table_input(table)
        parameters = dict(base.get("Parameters") or {})
        if compressed is None:
            compressed = parameters.get("compressionType", "gzip") == "gzip"
        format_parameters = {
            "classification": "json",
            "compressionType": "gzip" if compressed else "none",
            "typeOfData": "file",
        }
        parameters.update(format_parameters)
        parameters.update(
            {
                "UPDATED_BY_CRAWLER": self.crawler_name,
                "objectCount": str(len(listed)),
                "sizeKey": str(sum(obj.size for obj in listed)),
                "recordCount": str(state.records),
                STATE_PARAMETER: state.to_json(),
            }
        )
        storage = dict(base.get("StorageDescriptor") or {})
        storage.update(
            {
                "Columns": [{"Name": col, "Type": typ} for col, typ in columns],
                "Location": location,
                "InputFormat": INPUT_FORMAT,
                "OutputFormat": OUTPUT_FORMAT,
                "Compressed": compressed,
                "NumberOfBuckets": -1,
                "SerdeInfo": {
                    "SerializationLibrary": JSON_SERDE,
                    "Parameters": {
                        "paths": ",".join(col for col, _ in columns),
                        "ignore.malformed.json": "true",
                    },
                },
                "BucketColumns": [],
                "SortColumns": [],
                "StoredAsSubDirectories": False,
                "Parameters": {**(storage.get("Parameters") or {}), **format_parameters},
            }
        )
        return {
            **base,
            "Name": name,
            "TableType": "EXTERNAL_TABLE",
            "Parameters": parameters,
            "PartitionKeys": base.get("PartitionKeys")
            or [{"Name": key, "Type": "string"} for key in partition_keys],
            "StorageDescriptor": storage,
        }

    @staticmethod
    def _differs(table: dict[str, Any], table_input: dict[str, Any]) -> bool:
        """Whether writing `table_input` changes the table (no new table version otherwise)."""
        storage = table.get("StorageDescriptor") or {}
        return (
            table.get("Parameters") != table_input["Parameters"]
            or storage.get("Columns") != table_input["StorageDescriptor"]["Columns"]
            or storage.get("Location") != table_input["StorageDescriptor"]["Location"]
        )

    def _partitions(self, database: str, table: str) -> set[tuple[str, ...]]:
        found: set[tuple[str, ...]] = set()
        paginator = self.glue.get_paginator("get_partitions")
        for page in paginator.paginate(DatabaseName=database, TableName=table):
            found.update(tuple(p["Values"]) for p in page["Partitions"])
        return found

    @staticmethod
    def _partition_input(
        table_input: dict[str, Any], keys: list[str], values: tuple[str, ...]
    ) -> dict[str, Any]:
        storage = dict(table_input["StorageDescriptor"])
        folders = "".join(f"{key}={value}/" for key, value in zip(keys, values, strict=True))
        storage["Location"] = storage["Location"] + folders
        return {
            "Values": list(values),
            "StorageDescriptor": storage,
            "Parameters": dict(storage["Parameters"]),
        }

    def _create_partitions(
        self,
        database: str,
        table: str,
        table_input: dict[str, Any],
        keys: list[str],
        added: list[tuple[str, ...]],
    ) -> None:
        for chunk in _chunks(added, PARTITION_BATCH):
            response = self.glue.batch_create_partition(
                DatabaseName=database,
                TableName=table,
                PartitionInputList=[self._partition_input(table_input, keys, v) for v in chunk],
            )
            errors = [
                e
                for e in response.get("Errors", [])
                if e["ErrorDetail"]["ErrorCode"] != "AlreadyExistsException"
            ]
            if errors:
                raise CrawlerError(
                    f"Glue refused {len(errors)} partition(s) of {database}.{table}: "
                    f"{errors[0]['PartitionValues']}: {errors[0]['ErrorDetail']['ErrorMessage']}"
                )

    def _update_partitions(
        self,
        database: str,
        table: str,
        table_input: dict[str, Any],
        keys: list[str],
        existing: set[tuple[str, ...]],
    ) -> None:
        """Partitions inherit the table schema (CrawlerOutput.Partitions InheritFromTable)."""
        for chunk in _chunks(sorted(existing), PARTITION_BATCH):
            response = self.glue.batch_update_partition(
                DatabaseName=database,
                TableName=table,
                Entries=[
                    {
                        "PartitionValueList": list(values),
                        "PartitionInput": self._partition_input(table_input, keys, values),
                    }
                    for values in chunk
                ],
            )
            if response.get("Errors"):
                error = response["Errors"][0]
                raise CrawlerError(
                    f"Glue refused to update {len(response['Errors'])} partition(s) of "
                    f"{database}.{table}: {error['PartitionValueList']}: "
                    f"{error['ErrorDetail']['ErrorMessage']}"
                )
