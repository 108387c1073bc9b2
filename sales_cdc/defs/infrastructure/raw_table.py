"""The raw CDC table orders_cdc, declared by provisioning rather than left to the first crawl.

Columns and types come from the landing contract (sales_cdc.landing_format.LANDING_COLUMNS): money
is decimal, quantity and version bigint, is_deleted boolean, times strings. The crawler then only
adds new columns and partitions (provision.crawler_configuration: MergeNewColumns,
InheritFromTable), so a first crawl that happens to see only whole amounts cannot type them int.

Partition projection is not used: the full-history reads of the raw log (the recovery rebuild,
orders_cdc_stats) would make Athena enumerate every projected hour of the range in S3, and the
embedded engine reads partitions from Glue; partitions stay registered by the crawler.
"""

from __future__ import annotations

from typing import Any

from sales_cdc.defs.infrastructure.provision import Outcome, ProvisioningError, _exists
from sales_cdc.landing_format import (
    INPUT_FORMAT,
    JSON_SERDE,
    LANDING_COLUMNS,
    OUTPUT_FORMAT,
    PARTITION_KEYS,
)
from sales_cdc.resources.aws import AwsResource
from sales_cdc.resources.lake_catalog import as_table_input
from sales_cdc.stack import Stack

# What the Glue JSON classifier writes on a table it created; a crawler that finds other values
# on its table marks it deprecated (Glue "Setting crawler configuration options": "If a
# fundamental Amazon S3 table attribute changes, such as classification, compression type ...").
FORMAT_PARAMETERS = {"classification": "json", "compressionType": "gzip", "typeOfData": "file"}
SERDE_PARAMETERS = {"ignore.malformed.json": "true"}
PARTITION_BATCH = 100


def raw_table_input(stack: Stack) -> dict[str, Any]:
    """The declared TableInput of the raw table (JSON lines, GZIP, hour partitions)."""
    columns = [{"Name": name, "Type": hive_type} for name, hive_type in LANDING_COLUMNS]
    return {
        "Name": stack.raw_table,
        "Description": "The landed CDC log (raw/orders_cdc/): one row per change event",
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {"EXTERNAL": "TRUE", **FORMAT_PARAMETERS},
        "PartitionKeys": [{"Name": key, "Type": "string"} for key in PARTITION_KEYS],
        "StorageDescriptor": {
            "Columns": columns,
            "Location": f"s3://{stack.bucket}/{stack.raw_prefix}",
            "InputFormat": INPUT_FORMAT,
            "OutputFormat": OUTPUT_FORMAT,
            "Compressed": True,
            "NumberOfBuckets": -1,
            "SerdeInfo": {
                "SerializationLibrary": JSON_SERDE,
                "Parameters": {
                    **SERDE_PARAMETERS,
                    "paths": ",".join(column["Name"] for column in columns),
                },
            },
            "BucketColumns": [],
            "SortColumns": [],
            "StoredAsSubDirectories": False,
            "Parameters": dict(FORMAT_PARAMETERS),
        },
    }


def _reconciled(table: dict[str, Any], wanted: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The table with every declared setting restored (columns it gained since are kept)."""
    base = as_table_input(table)
    storage = dict(base.get("StorageDescriptor") or {})
    changes: list[str] = []

    columns = [dict(column) for column in storage.get("Columns") or []]
    index = {column["Name"]: i for i, column in enumerate(columns)}
    for declared in wanted["StorageDescriptor"]["Columns"]:
        name, hive_type = declared["Name"], declared["Type"]
        if name not in index:
            columns.append(dict(declared))
            changes.append(f"add column {name}")
        elif columns[index[name]].get("Type") != hive_type:
            changes.append(f"column {name}: {columns[index[name]].get('Type')} -> {hive_type}")
            columns[index[name]]["Type"] = hive_type
    storage["Columns"] = columns

    declared_storage = wanted["StorageDescriptor"]
    for key in ("Location", "InputFormat", "OutputFormat", "Compressed"):
        if storage.get(key) != declared_storage[key]:
            changes.append(key)
            storage[key] = declared_storage[key]
    serde = dict(storage.get("SerdeInfo") or {})
    serde_parameters = dict(serde.get("Parameters") or {})
    if serde.get("SerializationLibrary") != JSON_SERDE or any(
        serde_parameters.get(k) != v for k, v in SERDE_PARAMETERS.items()
    ):
        changes.append("SerDe")
        serde["SerializationLibrary"] = JSON_SERDE
        serde_parameters.update(SERDE_PARAMETERS)
    serde_parameters["paths"] = ",".join(column["Name"] for column in columns)
    serde["Parameters"] = serde_parameters
    storage["SerdeInfo"] = serde

    parameters = dict(base.get("Parameters") or {})
    storage_parameters = dict(storage.get("Parameters") or {})
    if any(parameters.get(k) != v for k, v in FORMAT_PARAMETERS.items()) or any(
        storage_parameters.get(k) != v for k, v in FORMAT_PARAMETERS.items()
    ):
        changes.append("format parameters")
        parameters.update(FORMAT_PARAMETERS)
        storage_parameters.update(FORMAT_PARAMETERS)
    storage["Parameters"] = storage_parameters
    return {**base, "Parameters": parameters, "StorageDescriptor": storage}, changes


def ensure_raw_table(aws: AwsResource, stack: Stack) -> Outcome:
    """The raw CDC table with the landing contract's columns and types (before any crawl)."""
    glue = aws.client("glue")
    name = stack.raw_table
    wanted = raw_table_input(stack)
    outcome = Outcome("glue_table", f"{stack.database}.{name}", "unchanged")
    outcome.details["columns"] = len(wanted["StorageDescriptor"]["Columns"])
    table = _exists(
        lambda: glue.get_table(DatabaseName=stack.database, Name=name)["Table"],
        "EntityNotFoundException",
    )
    if table is None:
        glue.create_table(DatabaseName=stack.database, TableInput=wanted)
        outcome.action = "created"
        return outcome

    keys = [(key["Name"], key.get("Type")) for key in table.get("PartitionKeys") or []]
    if keys != [(key["Name"], key["Type"]) for key in wanted["PartitionKeys"]]:
        raise ProvisioningError(
            f"Glue table {stack.database}.{name} is partitioned by {keys or 'nothing'}, not "
            f"{list(PARTITION_KEYS)} (strings) as Firehose lands the objects. Delete the table "
            "(the data in S3 stays) and provision again; the next crawl registers its partitions."
        )
    table_input, changes = _reconciled(table, wanted)
    if changes:
        glue.update_table(DatabaseName=stack.database, TableInput=table_input)
        outcome.action = "updated"
        outcome.changes.extend(changes)
        if any(change.startswith(("column ", "add column ")) for change in changes):
            # Partitions carry their own column list: they follow the table (InheritFromTable).
            outcome.details["partitions_updated"] = _inherit_columns(
                glue, stack.database, name, table_input["StorageDescriptor"]["Columns"]
            )
    return outcome


def _inherit_columns(glue: Any, database: str, table: str, columns: list[dict[str, Any]]) -> int:
    """Give every partition of the table the table's columns; the number of partitions."""
    entries: list[dict[str, Any]] = []
    for page in glue.get_paginator("get_partitions").paginate(
        DatabaseName=database, TableName=table
    ):
        for partition in page["Partitions"]:
            storage = {**partition["StorageDescriptor"], "Columns": columns}
            partition_input = {
                "Values": partition["Values"],
                "StorageDescriptor": storage,
                "Parameters": partition.get("Parameters") or {},
            }
            entries.append(
                {"PartitionValueList": partition["Values"], "PartitionInput": partition_input}
            )
    for start in range(0, len(entries), PARTITION_BATCH):
        response = glue.batch_update_partition(
            DatabaseName=database,
            TableName=table,
            Entries=entries[start : start + PARTITION_BATCH],
        )
        if response.get("Errors"):
            error = response["Errors"][0]
            raise ProvisioningError(
                f"Glue refused to update {len(response['Errors'])} partition(s) of "
                f"{database}.{table}: {error['PartitionValueList']}: "
                f"{error['ErrorDetail']['ErrorMessage']}"
            )
    return len(entries)
