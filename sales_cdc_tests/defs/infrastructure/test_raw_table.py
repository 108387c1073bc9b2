"""ensure_raw_table: the raw CDC table declared before any crawl, idempotent, types restored."""

import json
from typing import Any

import pytest

from sales_cdc.defs.infrastructure.provision import ProvisioningError
from sales_cdc.defs.infrastructure.raw_table import ensure_raw_table
from sales_cdc.emulator.crawler import EmbeddedCrawler
from sales_cdc.landing_format import LANDING_COLUMNS, PARTITION_KEYS
from sales_cdc.resources.aws import AwsResource
from sales_cdc.resources.lake_catalog import as_table_input
from sales_cdc_tests.emulator.test_crawler import HOUR_10, HOUR_11, landing_row, put_landing


def _table(aws: AwsResource) -> dict[str, Any]:
    stack = aws.stack()
    return aws.client("glue").get_table(DatabaseName=stack.database, Name=stack.raw_table)["Table"]


def _types(descriptor_owner: dict[str, Any]) -> dict[str, str]:
    return {c["Name"]: c["Type"] for c in descriptor_owner["StorageDescriptor"]["Columns"]}


def _crawl(aws: AwsResource) -> None:
    EmbeddedCrawler(aws.client("glue"), aws.client("s3"), aws.stack().crawler_name).crawl()


def test_provisioning_declares_the_raw_table_before_any_crawl(provisioned: AwsResource) -> None:
    stack = provisioned.stack()
    table = _table(provisioned)

    assert _types(table) == dict(LANDING_COLUMNS)
    types = _types(table)
    assert types["total_amount"] == types["unit_price"] == types["discount"] == "decimal(38,6)"
    assert types["quantity"] == types["version"] == "bigint"
    assert types["is_deleted"] == "boolean" and types["event_time"] == "string"
    assert [(k["Name"], k["Type"]) for k in table["PartitionKeys"]] == [
        (key, "string") for key in PARTITION_KEYS
    ]
    storage = table["StorageDescriptor"]
    assert storage["Location"] == f"s3://{stack.bucket}/{stack.raw_prefix}"
    assert storage["Compressed"] is True
    serde = storage["SerdeInfo"]
    assert serde["SerializationLibrary"] == "org.openx.data.jsonserde.JsonSerDe"
    assert serde["Parameters"]["ignore.malformed.json"] == "true"
    # What the Glue JSON classifier writes: a crawler finding other values deprecates the table.
    for name, value in {"classification": "json", "compressionType": "gzip"}.items():
        assert table["Parameters"][name] == value
    glue = provisioned.client("glue")
    assert (
        glue.get_partitions(DatabaseName=stack.database, TableName=stack.raw_table)["Partitions"]
        == []
    )


def test_crawler_only_adds_columns_and_partitions_inheriting_the_table(
    provisioned: AwsResource,
) -> None:
    # Glue "Preventing a crawler from changing an existing schema": CrawlerOutput.Tables
    # MergeNewColumns (add new columns only) and Partitions InheritFromTable, UPDATE_IN_DATABASE.
    crawler = provisioned.client("glue").get_crawler(Name=provisioned.stack().crawler_name)
    crawler = crawler["Crawler"]
    output = json.loads(crawler["Configuration"])["CrawlerOutput"]
    assert output["Tables"] == {"AddOrUpdateBehavior": "MergeNewColumns"}
    assert output["Partitions"] == {"AddOrUpdateBehavior": "InheritFromTable"}
    assert crawler["SchemaChangePolicy"]["UpdateBehavior"] == "UPDATE_IN_DATABASE"


def test_ensure_raw_table_is_unchanged_on_rerun_and_after_crawls(provisioned: AwsResource) -> None:
    stack = provisioned.stack()
    assert ensure_raw_table(provisioned, stack).action == "unchanged"
    put_landing(provisioned, HOUR_10, [landing_row(1, gift_note="hi")])
    _crawl(provisioned)
    assert "gift_note" in _types(_table(provisioned))

    outcome = ensure_raw_table(provisioned, stack)

    assert outcome.action == "unchanged", outcome.changes
    assert "gift_note" in _types(_table(provisioned))  # what the crawler added stays


def test_ensure_raw_table_restores_declared_types_in_table_and_partitions(
    provisioned: AwsResource,
) -> None:
    stack = provisioned.stack()
    glue = provisioned.client("glue")
    put_landing(provisioned, HOUR_10, [landing_row(1)])
    put_landing(provisioned, HOUR_11, [landing_row(2)])
    _crawl(provisioned)
    # A table a crawler typed on its own: whole amounts as bigint, discount never seen.
    table = as_table_input(_table(provisioned))
    table["StorageDescriptor"]["Columns"] = [
        {"Name": c["Name"], "Type": "bigint" if c["Name"] == "total_amount" else c["Type"]}
        for c in table["StorageDescriptor"]["Columns"]
        if c["Name"] != "discount"
    ]
    table["StorageDescriptor"]["SerdeInfo"]["Parameters"].pop("ignore.malformed.json")
    glue.update_table(DatabaseName=stack.database, TableInput=table)

    outcome = ensure_raw_table(provisioned, stack)

    assert outcome.action == "updated"
    assert "column total_amount: bigint -> decimal(38,6)" in outcome.changes
    assert "add column discount" in outcome.changes and "SerDe" in outcome.changes
    assert outcome.details["partitions_updated"] == 2
    restored = _table(provisioned)
    assert _types(restored)["total_amount"] == "decimal(38,6)" and "discount" in _types(restored)
    assert restored["StorageDescriptor"]["SerdeInfo"]["Parameters"]["ignore.malformed.json"]
    pages = glue.get_paginator("get_partitions").paginate(
        DatabaseName=stack.database, TableName=stack.raw_table
    )
    for partition in (p for page in pages for p in page["Partitions"]):
        assert _types(partition)["total_amount"] == "decimal(38,6)"
    assert ensure_raw_table(provisioned, stack).action == "unchanged"


def test_other_partitioning_is_refused_with_the_fix(provisioned: AwsResource) -> None:
    stack = provisioned.stack()
    glue = provisioned.client("glue")
    glue.delete_table(DatabaseName=stack.database, Name=stack.raw_table)
    glue.create_table(
        DatabaseName=stack.database,
        TableInput={
            "Name": stack.raw_table,
            "StorageDescriptor": {"Columns": [{"Name": "event_id", "Type": "string"}]},
            "PartitionKeys": [{"Name": "dt", "Type": "string"}],
        },
    )
    with pytest.raises(ProvisioningError, match="Delete the table"):
        ensure_raw_table(provisioned, stack)
