"""The lake's Glue catalog as both query engines use it: read tables, sync partitions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from botocore.exceptions import ClientError

from sales_cdc.landing_format import partition_values

BATCH_GET_PARTITIONS = 1000  # Glue BatchGetPartition's PartitionsToGet limit
UNPROCESSED_ATTEMPTS = 5


# The fields of a get_table answer that update_table accepts back as TableInput.
TABLE_INPUT_KEYS = (
    "Name",
    "Description",
    "Owner",
    "Retention",
    "StorageDescriptor",
    "PartitionKeys",
    "TableType",
    "Parameters",
)


def as_table_input(table: Mapping[str, Any] | None) -> dict[str, Any]:
    """A Glue get_table answer as the TableInput of update_table (read-only fields left out)."""
    return {key: table[key] for key in TABLE_INPUT_KEYS if table and key in table}


def split_uri(uri: str) -> tuple[str, str]:
    """('bucket', 'key/prefix/') of an s3:// URI."""
    if not uri.startswith("s3://"):
        raise ValueError(f"{uri!r} is not an s3:// location.")
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


class LakeCatalog:
    """Glue tables of one database, and the S3 objects behind them."""

    def __init__(self, glue: Any, s3: Any, database: str) -> None:
        self.glue = glue
        self.s3 = s3
        self.database = database

    # -- reading ---------------------------------------------------------------------------
    def get_table(self, name: str) -> dict[str, Any] | None:
        try:
            return self.glue.get_table(DatabaseName=self.database, Name=name)["Table"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "EntityNotFoundException":
                return None
            raise

    def get_partitions(self, name: str) -> list[dict[str, Any]]:
        partitions: list[dict[str, Any]] = []
        for page in self.glue.get_paginator("get_partitions").paginate(
            DatabaseName=self.database, TableName=name
        ):
            partitions.extend(page["Partitions"])
        return partitions

    def get_partitions_of(self, name: str, values: Iterable[Sequence[str]]) -> list[dict[str, Any]]:
        """The registered partitions among `values` (BatchGetPartition, 1,000 a call): what a
        read of some objects needs, without listing every partition of the table."""
        wanted = [list(v) for v in dict.fromkeys(tuple(v) for v in values)]
        found: list[dict[str, Any]] = []
        for start in range(0, len(wanted), BATCH_GET_PARTITIONS):
            pending = [{"Values": v} for v in wanted[start : start + BATCH_GET_PARTITIONS]]
            for _ in range(UNPROCESSED_ATTEMPTS):
                # AWS Glue API "BatchGetPartition": up to 1,000 PartitionsToGet; UnprocessedKeys are to be
                # asked for again.
                response = self.glue.batch_get_partition(
                    DatabaseName=self.database, TableName=name, PartitionsToGet=pending
                )
                found.extend(response.get("Partitions", []))
                pending = response.get("UnprocessedKeys") or []
                if not pending:
                    break
            else:
                raise RuntimeError(
                    f"Glue left {len(pending)} partition(s) of {self.database}.{name} "
                    f"unprocessed {UNPROCESSED_ATTEMPTS} times in a row (throttled?)."
                )
        return found

    def list_objects(self, uri: str) -> list[dict[str, Any]]:
        """Every object under an s3:// prefix (Key, Size)."""
        bucket, prefix = split_uri(uri)
        objects: list[dict[str, Any]] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            objects.extend(page.get("Contents", []))
        return objects

    # -- raw table partitions --------------------------------------------------------------
    def add_missing_partitions(
        self, name: str, object_keys: Iterable[str] | None = None
    ) -> list[list[str]]:
        """Register the hive folders under the table's location that Glue does not list yet:
        the folders of `object_keys` (objects about to be read), or of every object.

        Columns stay the crawler's: a new partition copies the table's storage descriptor with
        its own location, exactly as the crawler would register it.
        """
        table = self.get_table(name)
        if table is None or not table.get("PartitionKeys"):
            return []
        keys = [key["Name"] for key in table["PartitionKeys"]]
        location = table["StorageDescriptor"]["Location"].rstrip("/") + "/"
        if object_keys is None:
            object_keys = [obj["Key"] for obj in self.list_objects(location)]
        found: dict[tuple[str, ...], str] = {}
        for key in object_keys:
            values = partition_values(f"s3://{split_uri(location)[0]}/{key}", location, keys)
            if values is not None:
                found[values] = location + "".join(
                    f"{k}={v}/" for k, v in zip(keys, values, strict=True)
                )
        if not found:
            return []
        registered = (
            self.get_partitions(name)
            if len(found) > BATCH_GET_PARTITIONS
            else self.get_partitions_of(name, found)
        )
        known = {tuple(p["Values"]) for p in registered}
        missing = [(values, loc) for values, loc in sorted(found.items()) if values not in known]
        descriptor = table["StorageDescriptor"]
        self._create_partitions(name, descriptor, missing)
        return [list(values) for values, _ in missing]

    def _create_partitions(
        self,
        name: str,
        descriptor: Mapping[str, Any],
        partitions: Sequence[tuple[Sequence[str], str]],
    ) -> None:
        for start in range(0, len(partitions), 100):
            batch = partitions[start : start + 100]
            response = self.glue.batch_create_partition(
                DatabaseName=self.database,
                TableName=name,
                PartitionInputList=[
                    {"Values": list(values), "StorageDescriptor": {**descriptor, "Location": loc}}
                    for values, loc in batch
                ],
            )
            errors = [
                e
                for e in response.get("Errors", [])
                if e["ErrorDetail"]["ErrorCode"] != "AlreadyExistsException"
            ]
            if errors:
                raise RuntimeError(f"Glue refused partitions of {self.database}.{name}: {errors}")


def iceberg_catalog(aws: Any) -> Any:
    """A pyiceberg GlueCatalog + PyArrow S3 FileIO for the deployment (the embedded engine's writer).

    Glue calls go through the deployment's own boto3 client (endpoint, region, retries); data
    and metadata files through pyarrow's S3 filesystem at the same endpoint. Only the local
    environment uses it: on AWS, Athena writes the Iceberg tables.
    """
    import os

    from pyiceberg.catalog.glue import GlueCatalog

    settings = aws.settings
    properties = {
        "py-io-impl": "pyiceberg.io.pyarrow.PyArrowFileIO",
        "s3.region": settings.region,
        "s3.access-key-id": aws.aws_access_key_id or os.environ.get("AWS_ACCESS_KEY_ID", ""),
        "s3.secret-access-key": aws.aws_secret_access_key
        or os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
    }
    if settings.endpoint_url:
        properties["s3.endpoint"] = settings.endpoint_url
        properties["s3.force-virtual-addressing"] = "false"
    return GlueCatalog(f"{aws.prefix}-lake", client=aws.client("glue"), **properties)


class S3Objects:
    """List and delete the objects under an s3:// prefix (orphan-file removal of Iceberg tables)."""

    def __init__(self, s3: Any) -> None:
        self.s3 = s3

    def list(self, uri: str) -> list[tuple[str, int, int]]:
        """(s3 uri, size, LastModified in epoch milliseconds) of every object under `uri`."""
        bucket, prefix = split_uri(uri.rstrip("/") + "/")
        found: list[tuple[str, int, int]] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                modified = int(obj["LastModified"].timestamp() * 1000)
                found.append((f"s3://{bucket}/{obj['Key']}", int(obj["Size"]), modified))
        return found

    def delete(self, uri: str) -> None:
        bucket, key = split_uri(uri)
        self.s3.delete_object(Bucket=bucket, Key=key)
