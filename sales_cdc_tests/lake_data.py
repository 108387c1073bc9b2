"""Test data for the lake: landing files written straight to S3 and the raw Glue table over them."""

from __future__ import annotations

import contextlib
import gzip
import json
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from sales_cdc.resources.aws import AwsResource

RAW_COLUMNS = [
    ("event_id", "string"),
    ("event_name", "string"),
    ("sequence_number", "string"),
    ("event_time", "string"),
    ("order_id", "string"),
    ("is_deleted", "boolean"),
    ("customer_id", "string"),
    ("customer_name", "string"),
    ("customer_city", "string"),
    ("customer_country", "string"),
    ("product_id", "string"),
    ("product_name", "string"),
    ("category", "string"),
    ("quantity", "bigint"),
    ("unit_price", "double"),
    ("discount", "double"),
    ("total_amount", "double"),
    ("currency", "string"),
    ("payment_method", "string"),
    ("channel", "string"),
    ("status", "string"),
    ("created_at", "string"),
    ("updated_at", "string"),
    ("version", "bigint"),
]
PARTITION_KEYS = ["year", "month", "day", "hour"]


def setup_lake(aws: AwsResource) -> None:
    """The lake bucket and the Glue database of the test's deployment (nothing else)."""
    stack = aws.stack()
    aws.client("s3").create_bucket(Bucket=stack.bucket)
    aws.client("glue").create_database(DatabaseInput={"Name": stack.database})


def event(
    order_id: str,
    seq: int,
    name: str = "MODIFY",
    *,
    status: str = "PLACED",
    version: int | None = None,
    total: float = 20.0,
    created_at: str = "2026-03-01T10:00:00.000000Z",
    event_time: str = "2026-03-01 10:00:00.000000",
    event_id: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One landing row (ARCHITECTURE §3.4)."""
    row = {
        "event_id": event_id or uuid.uuid4().hex,
        "event_name": name,
        "sequence_number": str(seq),
        "event_time": event_time,
        "order_id": order_id,
        "is_deleted": name == "REMOVE",
        "customer_id": "c-1",
        "customer_name": "Ada Lovelace",
        "customer_city": "London",
        "customer_country": "GB",
        "product_id": "p-1",
        "product_name": "Widget",
        "category": "Tools",
        "quantity": 2,
        "unit_price": 10.0,
        "total_amount": total,
        "currency": "EUR",
        "payment_method": "CARD",
        "channel": "WEB",
        "status": status,
        "created_at": created_at,
        "updated_at": created_at,
        "version": version if version is not None else seq,
    }
    row.update(extra)
    return row


def land(
    aws: AwsResource, rows: Iterable[Mapping[str, Any]], hour: str = "2026/03/01/10", name: str = ""
) -> str:
    """Write rows as one gzip JSON-lines object under raw/orders_cdc/year=/month=/day=/hour=/."""
    return land_lines(aws, [json.dumps(dict(r)) for r in rows], hour, name)


def land_lines(
    aws: AwsResource,
    lines: Iterable[str],
    hour: str = "2026/03/01/10",
    name: str = "",
    compress: bool = True,
) -> str:
    """Write text lines as one object (gzip `.gz`, or plain `.json`) under the hour's prefix."""
    stack = aws.stack()
    year, month, day, hh = hour.split("/")
    key = (
        f"{stack.raw_prefix}year={year}/month={month}/day={day}/hour={hh}/"
        f"{name or uuid.uuid4().hex}{'.gz' if compress else '.json'}"
    )
    body = "".join(line + "\n" for line in lines).encode()
    aws.client("s3").put_object(
        Bucket=stack.bucket, Key=key, Body=gzip.compress(body) if compress else body
    )
    return key


def catalog_raw_table(
    aws: AwsResource, columns: Iterable[tuple[str, str]] = RAW_COLUMNS, with_partitions: bool = True
) -> None:
    """Create (or replace) the raw table exactly as the crawler does, one partition per hour."""
    stack = aws.stack()
    glue = aws.client("glue")
    location = f"s3://{stack.bucket}/{stack.raw_prefix}"
    descriptor = {
        "Columns": [{"Name": n, "Type": t} for n, t in columns],
        "Location": location,
        "InputFormat": "org.apache.hadoop.mapred.TextInputFormat",
        "OutputFormat": "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
        "Compressed": True,
        "SerdeInfo": {"SerializationLibrary": "org.openx.data.jsonserde.JsonSerDe"},
    }
    table_input = {
        "Name": stack.raw_table,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {"classification": "json", "compressionType": "gzip"},
        "PartitionKeys": [{"Name": k, "Type": "string"} for k in PARTITION_KEYS],
        "StorageDescriptor": descriptor,
    }
    with contextlib.suppress(glue.exceptions.EntityNotFoundException):
        glue.delete_table(DatabaseName=stack.database, Name=stack.raw_table)
    glue.create_table(DatabaseName=stack.database, TableInput=table_input)
    if not with_partitions:
        return
    hours = set()
    for page in (
        aws.client("s3")
        .get_paginator("list_objects_v2")
        .paginate(Bucket=stack.bucket, Prefix=stack.raw_prefix)
    ):
        for obj in page.get("Contents", []):
            hours.add(obj["Key"][len(stack.raw_prefix) :].rsplit("/", 1)[0])
    inputs = []
    for folder in sorted(hours):
        values = [part.split("=", 1)[1] for part in folder.split("/")]
        inputs.append(
            {
                "Values": values,
                "StorageDescriptor": {**descriptor, "Location": f"{location}{folder}/"},
            }
        )
    if inputs:
        glue.batch_create_partition(
            DatabaseName=stack.database, TableName=stack.raw_table, PartitionInputList=inputs
        )
