"""The lake's Glue catalog as both query engines use it: read tables, sync partitions, publish."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from botocore.exceptions import ClientError

from sales_cdc.landing_format import partition_values

PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
PARQUET_INPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
FINGERPRINT_PREFIX = "sales_cdc.fingerprint"
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

    def delete_location(self, uri: str) -> int:
        """Delete every object under an s3:// prefix; the number deleted."""
        bucket, prefix = split_uri(uri.rstrip("/") + "/")
        keys = [obj["Key"] for obj in self.list_objects(f"s3://{bucket}/{prefix}")]
        for start in range(0, len(keys), 1000):
            chunk = keys[start : start + 1000]
            self.s3.delete_objects(
                Bucket=bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True}
            )
        return len(keys)

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

    # -- publishing curated tables ---------------------------------------------------------
    def publish(
        self,
        name: str,
        *,
        columns: Sequence[Mapping[str, str]],
        partition_keys: Sequence[str],
        table_location: str,
        run_location: str,
        partitions: Mapping[tuple[str, ...], str],
        replace_partitions: Iterable[tuple[str, ...]] | None,
        parameters: Mapping[str, str] | None = None,
    ) -> list[str]:
        """Point the Glue table (and partitions) at freshly written Parquet, then delete the data
        it no longer points at; return those stale locations.

        `partitions` maps partition values to the new data's locations. With
        `replace_partitions=None` the table becomes exactly the new data (partitions not in it
        are dropped); otherwise only the listed partitions change (a listed partition without
        new data is dropped) and every other partition keeps its data. Old files are deleted only
        once the switch is done (until then readers still find them), and only under
        `table_location`.
        """
        stale = self._switch(
            name,
            columns=columns,
            partition_keys=partition_keys,
            table_location=table_location,
            run_location=run_location,
            partitions=partitions,
            replace_partitions=replace_partitions,
            parameters=parameters,
        )
        for location in stale:
            if location.startswith(table_location):
                self.delete_location(location)
        return stale

    def _switch(
        self,
        name: str,
        *,
        columns: Sequence[Mapping[str, str]],
        partition_keys: Sequence[str],
        table_location: str,
        run_location: str,
        partitions: Mapping[tuple[str, ...], str],
        replace_partitions: Iterable[tuple[str, ...]] | None,
        parameters: Mapping[str, str] | None,
    ) -> list[str]:
        """The catalog side of publish: table and partitions switched, stale locations listed."""
        current = self.get_table(name)
        keep = dict(current.get("Parameters") or {}) if current else {}
        if replace_partitions is None:
            keep = {k: v for k, v in keep.items() if not k.startswith(FINGERPRINT_PREFIX)}
        keep.update(parameters or {})
        keep.update({"classification": "parquet", "EXTERNAL": "TRUE"})
        descriptor = {
            "Columns": [dict(c) for c in columns],
            "Location": table_location if partition_keys else run_location,
            "InputFormat": PARQUET_INPUT,
            "OutputFormat": PARQUET_OUTPUT,
            "Compressed": False,
            "SerdeInfo": {
                "SerializationLibrary": PARQUET_SERDE,
                "Parameters": {"serialization.format": "1"},
            },
            "StoredAsSubDirectories": False,
        }
        table_input = {
            "Name": name,
            "TableType": "EXTERNAL_TABLE",
            "Parameters": keep,
            "PartitionKeys": [{"Name": key, "Type": "string"} for key in partition_keys],
            "StorageDescriptor": descriptor,
        }
        stale: list[str] = []
        if current is None:
            self.glue.create_table(DatabaseName=self.database, TableInput=table_input)
        else:
            self.glue.update_table(DatabaseName=self.database, TableInput=table_input)
            if not partition_keys:
                old = current["StorageDescriptor"].get("Location", "")
                if old and old.rstrip("/") != run_location.rstrip("/"):
                    stale.append(old)
        if not partition_keys:
            return stale

        existing = {tuple(p["Values"]): p for p in self.get_partitions(name)} if current else {}
        targets = (
            set(existing) | set(partitions)
            if replace_partitions is None
            else {tuple(v) for v in replace_partitions}
        )
        create = [(v, loc) for v, loc in sorted(partitions.items()) if v not in existing]
        update = [(v, loc) for v, loc in sorted(partitions.items()) if v in existing]
        drop = sorted(v for v in targets if v in existing and v not in partitions)
        self._create_partitions(name, descriptor, create)
        for start in range(0, len(update), 100):
            batch = update[start : start + 100]
            response = self.glue.batch_update_partition(
                DatabaseName=self.database,
                TableName=name,
                Entries=[
                    {
                        "PartitionValueList": list(v),
                        "PartitionInput": {
                            "Values": list(v),
                            "StorageDescriptor": {**descriptor, "Location": loc},
                        },
                    }
                    for v, loc in batch
                ],
            )
            if response.get("Errors"):
                raise RuntimeError(
                    f"Glue refused partition updates of {name}: {response['Errors']}"
                )
        for start in range(0, len(drop), 25):
            self.glue.batch_delete_partition(
                DatabaseName=self.database,
                TableName=name,
                PartitionsToDelete=[{"Values": list(v)} for v in drop[start : start + 25]],
            )
        for values in [v for v, _ in update] + drop:
            old = existing[values]["StorageDescriptor"].get("Location", "")
            if old and old.rstrip("/") != partitions.get(values, "").rstrip("/"):
                stale.append(old)
        return stale

    def set_parameters(self, name: str, parameters: Mapping[str, str]) -> None:
        """Merge `parameters` into a table's Glue parameters."""
        table = self.get_table(name)
        if table is None:
            raise RuntimeError(f"Glue table {self.database}.{name} does not exist.")
        table_input = as_table_input(table)
        table_input["Parameters"] = {**(table.get("Parameters") or {}), **parameters}
        self.glue.update_table(DatabaseName=self.database, TableInput=table_input)


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
