"""The embedded crawler: Glue table and partitions from landed GZIP JSON, incremental re-runs.

Provisioning declares the raw table (defs/infrastructure/raw_table.py); `undeclared` removes it for
the tests of what the crawler does on its own.
"""

import gzip
import json
import threading
import uuid
from decimal import Decimal
from typing import Any

import pytest

from sales_cdc.defs.infrastructure.provision import crawler_configuration
from sales_cdc.emulator.crawler import EmbeddedCrawler, infer_object_schema
from sales_cdc.hive_types import render
from sales_cdc.landing_format import LANDING_COLUMNS
from sales_cdc.resources.aws import AwsResource

HOUR_10 = "year=2026/month=11/day=21/hour=10/"
HOUR_11 = "year=2026/month=11/day=21/hour=11/"
HOUR_12 = "year=2026/month=11/day=21/hour=12/"


def landing_row(sequence: int, **overrides: Any) -> dict[str, Any]:
    """One landing row (ARCHITECTURE §3.4), numbers as the transform writes them."""
    row: dict[str, Any] = {
        "event_id": uuid.uuid4().hex,
        "event_name": "INSERT",
        "sequence_number": str(100000000000000000000 + sequence),
        "event_time": "2026-11-21 10:15:00.123456",
        "order_id": str(uuid.uuid4()),
        "is_deleted": False,
        "customer_id": "c-1",
        "customer_name": "Ada Lovelace",
        "customer_city": "London",
        "customer_country": "GB",
        "product_id": "p-7",
        "product_name": "Desk lamp",
        "category": "home",
        "quantity": 2,
        "unit_price": Decimal("19.99"),
        "total_amount": Decimal("39.98"),
        "currency": "EUR",
        "payment_method": "card",
        "channel": "web",
        "status": "PLACED",
        "created_at": "2026-11-21T10:15:00.123456Z",
        "updated_at": "2026-11-21T10:15:00.123456Z",
        "version": 1,
    }
    row.update(overrides)
    return row


def _json_number(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)  # json cannot write Decimal; the landed text is the same digits
    raise TypeError(value)


def put_landing(aws: AwsResource, folder: str, rows: list[dict[str, Any]]) -> str:
    """Write `rows` as one GZIP JSON-lines object under raw/orders_cdc/<folder>."""
    stack = aws.stack()
    key = f"{stack.raw_prefix}{folder}{stack.delivery_name}-1-{uuid.uuid4()}.gz"
    body = "".join(json.dumps(row, default=_json_number) + "\n" for row in rows)
    aws.client("s3").put_object(Bucket=stack.bucket, Key=key, Body=gzip.compress(body.encode()))
    return key


def crawl(aws: AwsResource, **kwargs: Any) -> Any:
    """One embedded crawl of the deployment's crawler; the report of the raw table."""
    crawler = EmbeddedCrawler(
        aws.client("glue"), aws.client("s3"), aws.stack().crawler_name, **kwargs
    )
    report = crawler.crawl()
    assert [t.table for t in report.tables] == ["orders_cdc"]
    return report.tables[0]


def raw_table(aws: AwsResource) -> dict[str, Any]:
    stack = aws.stack()
    return aws.client("glue").get_table(DatabaseName=stack.database, Name="orders_cdc")["Table"]


def column_types(table: dict[str, Any]) -> dict[str, str]:
    return {c["Name"]: c["Type"] for c in table["StorageDescriptor"]["Columns"]}


def partitions(aws: AwsResource) -> dict[tuple[str, ...], dict[str, Any]]:
    stack = aws.stack()
    pages = (
        aws.client("glue")
        .get_paginator("get_partitions")
        .paginate(DatabaseName=stack.database, TableName="orders_cdc")
    )
    return {tuple(p["Values"]): p for page in pages for p in page["Partitions"]}


def undeclare(aws: AwsResource) -> AwsResource:
    """Delete the declared raw table: the crawler creates it from what it finds, as Glue would."""
    stack = aws.stack()
    aws.client("glue").delete_table(DatabaseName=stack.database, Name=stack.raw_table)
    return aws


def set_table_behavior(aws: AwsResource, behavior: str | None) -> None:
    """Change the crawler's CrawlerOutput.Tables.AddOrUpdateBehavior (None: Glue's default)."""
    configuration = json.loads(crawler_configuration())
    if behavior is None:
        del configuration["CrawlerOutput"]["Tables"]
    else:
        configuration["CrawlerOutput"]["Tables"]["AddOrUpdateBehavior"] = behavior
    glue = aws.client("glue")
    crawler = glue.get_crawler(Name=aws.stack().crawler_name)["Crawler"]
    glue.delete_crawler(Name=crawler["Name"])  # the emulator has no UpdateCrawler
    glue.create_crawler(
        Name=crawler["Name"],
        Role=crawler["Role"],
        DatabaseName=crawler["DatabaseName"],
        Targets={"S3Targets": [{"Path": t["Path"]} for t in crawler["Targets"]["S3Targets"]]},
        SchemaChangePolicy=crawler["SchemaChangePolicy"],
        Configuration=json.dumps(configuration),
    )


# -- reading objects -----------------------------------------------------------------------------


def test_inference_uses_pyarrow_and_survives_malformed_lines() -> None:
    body = (
        b'{"a": 1, "t": "2026-11-21 10:00:00.000001", "n": null}\nnot json\n{"a": 2.5, "l": [1]}\n'
    )
    inferred = infer_object_schema(gzip.compress(body))
    assert inferred.gzip and inferred.records == 2 and inferred.malformed_lines == 1
    assert [(n, render(t)) for n, t in inferred.columns] == [
        ("a", "double"),
        ("t", "string"),
        ("n", "string"),
        ("l", "array<bigint>"),
    ]
    conflicting = infer_object_schema(b'{"a": 1}\n{"a": "x"}\n')
    assert [(n, render(t)) for n, t in conflicting.columns] == [("a", "string")]
    truncated = infer_object_schema(gzip.compress(body)[:-8])
    assert (truncated.columns, truncated.records) == ([], 0)
    assert "GZIP" in (truncated.unreadable or "")
    random = infer_object_schema(bytes(range(7, 256)) * 40)
    assert random.records == 0 and random.unreadable and random.malformed_lines > 0


def test_inference_of_conflicting_and_odd_values_never_raises() -> None:
    lines = [
        {"mixed": ["a", 1, True], "n": 1, "deep": {"a": {"b": [1]}}},
        {"mixed": [{"x": 1}], "n": "one", "deep": {"a": "flat"}, "big": 10**37},
        {"tags": [], "nothing": None, "big": Decimal("1.5")},
    ]
    body = "".join(json.dumps(line, default=_json_number) + "\n" for line in lines).encode()
    types = {name: render(t) for name, t in infer_object_schema(body).columns}
    assert types == {
        "mixed": "array<string>",
        "n": "string",
        "deep": "struct<a:string>",
        "big": "double",
        "tags": "array<string>",
        "nothing": "string",
    }


# -- crawls in the emulator ---------------------------------------------------------------------


def test_first_crawl_creates_the_table_and_its_partitions(provisioned: AwsResource) -> None:
    aws = undeclare(provisioned)
    stack = aws.stack()
    put_landing(aws, HOUR_10, [landing_row(1), landing_row(2, discount=Decimal("1.5"))])
    put_landing(aws, HOUR_10, [landing_row(3, event_name="REMOVE", is_deleted=True)])
    put_landing(aws, HOUR_11, [landing_row(4, quantity=3)])

    report = crawl(aws)

    assert report.created and report.objects_read == 3 and report.records_read == 4
    assert report.partitions == report.partitions_added == 2
    table = raw_table(aws)
    types = column_types(table)
    assert types["event_id"] == "string" and types["sequence_number"] == "string"
    assert types["event_time"] == "string" and types["created_at"] == "string"
    assert types["is_deleted"] == "boolean" and types["quantity"] == "bigint"
    assert types["version"] == "bigint"
    assert types["total_amount"] == "double" and types["discount"] == "double"
    assert table["TableType"] == "EXTERNAL_TABLE"
    for name, value in {
        "classification": "json",
        "compressionType": "gzip",
        "typeOfData": "file",
    }.items():
        assert table["Parameters"][name] == value
    storage = table["StorageDescriptor"]
    assert storage["Location"] == f"s3://{stack.bucket}/raw/orders_cdc/"
    assert storage["InputFormat"] == "org.apache.hadoop.mapred.TextInputFormat"
    assert storage["OutputFormat"] == "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"
    assert storage["SerdeInfo"]["SerializationLibrary"] == "org.openx.data.jsonserde.JsonSerDe"
    assert [(k["Name"], k["Type"]) for k in table["PartitionKeys"]] == [
        ("year", "string"),
        ("month", "string"),
        ("day", "string"),
        ("hour", "string"),
    ]
    found = partitions(aws)
    assert set(found) == {("2026", "11", "21", "10"), ("2026", "11", "21", "11")}
    location = found[("2026", "11", "21", "11")]["StorageDescriptor"]["Location"]
    assert location == f"s3://{stack.bucket}/raw/orders_cdc/{HOUR_11}"
    crawler = aws.client("glue").get_crawler(Name=stack.crawler_name)["Crawler"]
    assert crawler["State"] == "READY" and crawler["LastCrawl"]["Status"] == "COMPLETED"


def test_first_crawl_keeps_the_declared_types_and_adds_partitions(
    provisioned: AwsResource,
) -> None:
    aws = provisioned
    declared = raw_table(aws)
    # Whole amounts only (DynamoDB trims "40.00" to 40): a crawler alone would type them bigint.
    put_landing(aws, HOUR_10, [landing_row(1, total_amount=40, unit_price=20, discount=0)])

    report = crawl(aws)

    assert not report.created and report.updated and report.partitions_added == 1
    assert report.columns_added == [] and report.columns_widened == []
    types = column_types(raw_table(aws))
    assert types == dict(LANDING_COLUMNS)
    assert types["total_amount"] == types["discount"] == "decimal(38,6)"
    assert raw_table(aws)["PartitionKeys"] == declared["PartitionKeys"]
    partition = partitions(aws)[("2026", "11", "21", "10")]
    assert column_types(partition)["total_amount"] == "decimal(38,6)"


def test_rerun_reads_only_new_objects_and_adds_only_new_partitions(
    provisioned: AwsResource,
) -> None:
    aws = provisioned
    put_landing(aws, HOUR_10, [landing_row(1)])
    put_landing(aws, HOUR_11, [landing_row(2)])
    crawl(aws)

    put_landing(aws, HOUR_11, [landing_row(3)])
    put_landing(aws, HOUR_12, [landing_row(4)])
    second = crawl(aws)
    assert second.objects_read == 2 and second.objects_listed == 4
    assert second.partitions_added == 1 and second.partitions == 3
    assert second.columns_added == [] and second.columns_widened == []
    assert set(partitions(aws)) == {("2026", "11", "21", h) for h in ("10", "11", "12")}

    stack = aws.stack()
    glue = aws.client("glue")
    versions = len(
        glue.get_table_versions(DatabaseName=stack.database, TableName="orders_cdc")[
            "TableVersions"
        ]
    )
    third = crawl(aws)
    assert third.objects_read == 0 and third.partitions_added == 0 and not third.updated
    # Nothing new: the table is left alone (no new table version).
    after = glue.get_table_versions(DatabaseName=stack.database, TableName="orders_cdc")
    assert len(after["TableVersions"]) == versions
    assert raw_table(aws)["Parameters"]["recordCount"] == "4"


def test_new_attribute_mid_stream_adds_a_column_and_drops_none(provisioned: AwsResource) -> None:
    aws = provisioned
    put_landing(aws, HOUR_10, [landing_row(1)])
    crawl(aws)
    before = [c["Name"] for c in raw_table(aws)["StorageDescriptor"]["Columns"]]
    assert "gift_note" not in before

    # Later rows carry a new attribute, and lack one the table already has.
    row = landing_row(2, gift_note="happy birthday")
    del row["channel"]
    put_landing(aws, HOUR_11, [row])
    report = crawl(aws)

    after = [c["Name"] for c in raw_table(aws)["StorageDescriptor"]["Columns"]]
    assert report.columns_added == ["gift_note"] and report.updated
    assert after == [*before, "gift_note"]
    assert column_types(raw_table(aws))["gift_note"] == "string"


def test_declared_types_never_change_only_new_columns_are_added(provisioned: AwsResource) -> None:
    # Glue "Preventing a crawler from changing an existing schema" (crawler-schema-changes-prevent):
    # MergeNewColumns adds new columns and never changes the type of existing ones.
    aws = provisioned
    put_landing(aws, HOUR_10, [landing_row(1)])
    crawl(aws)
    odd = landing_row(2, quantity="three", is_deleted="false", total_amount=[1, "x"], gift=True)
    put_landing(aws, HOUR_11, [odd, landing_row(3, version=Decimal("2.5"))])

    report = crawl(aws)

    assert report.columns_widened == [] and report.columns_added == ["gift"]
    types = column_types(raw_table(aws))
    assert {name: types[name] for name, _ in LANDING_COLUMNS} == dict(LANDING_COLUMNS)
    assert types["gift"] == "boolean"


def test_without_merge_new_columns_the_crawler_widens_like_glue(provisioned: AwsResource) -> None:
    aws = undeclare(provisioned)
    set_table_behavior(aws, None)  # Glue's default: update the table definition
    put_landing(aws, HOUR_10, [landing_row(1, total_amount=40, unit_price=20)])
    crawl(aws)
    assert column_types(raw_table(aws))["total_amount"] == "bigint"

    put_landing(aws, HOUR_11, [landing_row(2, total_amount=Decimal("12.5"))])
    report = crawl(aws)

    assert column_types(raw_table(aws))["total_amount"] == "double"
    assert ("total_amount", "bigint", "double") in report.columns_widened
    # Partitions inherit the table's schema (crawler Configuration InheritFromTable).
    old = partitions(aws)[("2026", "11", "21", "10")]["StorageDescriptor"]["Columns"]
    assert {c["Name"]: c["Type"] for c in old}["total_amount"] == "double"


def test_crawl_waits_for_a_crawl_already_running(provisioned: AwsResource) -> None:
    aws = provisioned
    glue = aws.client("glue")
    name = aws.stack().crawler_name
    put_landing(aws, HOUR_10, [landing_row(1)])
    glue.start_crawler(Name=name)  # someone else's crawl
    waits: list[float] = []

    def other_crawl_finishes(seconds: float) -> None:
        waits.append(seconds)
        glue.list_crawls(CrawlerName=name)  # the emulator completes an observed crawl

    report = crawl(aws, poll_seconds=0.01, sleep=other_crawl_finishes)
    assert waits and report.objects_read == 1
    crawls = glue.list_crawls(CrawlerName=name)["Crawls"]
    assert len(crawls) == 2 and all(c["State"] == "COMPLETED" for c in crawls)


def test_a_failed_crawl_leaves_the_crawler_ready(
    provisioned: AwsResource, monkeypatch: pytest.MonkeyPatch
) -> None:
    aws = provisioned
    put_landing(aws, HOUR_10, [landing_row(1)])

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr("sales_cdc.emulator.crawler.infer_object_schema", broken)
    with pytest.raises(RuntimeError, match="boom"):
        crawl(aws)
    crawler = aws.client("glue").get_crawler(Name=aws.stack().crawler_name)["Crawler"]
    assert crawler["State"] == "READY" and crawler["LastCrawl"]["Status"] == "STOPPED"
    monkeypatch.undo()
    assert crawl(aws).objects_read == 1


def test_nothing_landed_crawls_the_declared_table_without_partitions(
    provisioned: AwsResource,
) -> None:
    report = crawl(provisioned)
    assert not report.created and report.partitions == 0 and report.objects_read == 0
    assert column_types(raw_table(provisioned)) == dict(LANDING_COLUMNS)


def test_nothing_landed_means_no_table(provisioned: AwsResource) -> None:
    report = crawl(undeclare(provisioned))
    assert not report.created and report.columns == []
    glue = provisioned.client("glue")
    with pytest.raises(glue.exceptions.EntityNotFoundException):
        raw_table(provisioned)


def test_concurrent_crawls_do_not_duplicate_partitions(provisioned: AwsResource) -> None:
    aws = provisioned
    for hour in ("10", "11", "12"):
        put_landing(aws, f"year=2026/month=11/day=21/hour={hour}/", [landing_row(int(hour))])
    errors: list[BaseException] = []

    def run() -> None:
        try:
            crawl(aws, poll_seconds=0.05)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert len(partitions(aws)) == 3


def test_unreadable_objects_are_skipped_and_named(provisioned: AwsResource) -> None:
    aws = provisioned
    stack = aws.stack()
    s3 = aws.client("s3")
    good = put_landing(aws, HOUR_10, [landing_row(1), landing_row(2)])
    whole = gzip.compress(json.dumps(landing_row(3), default=_json_number).encode() * 50)
    truncated = f"{stack.raw_prefix}{HOUR_10}truncated.gz"
    s3.put_object(Bucket=stack.bucket, Key=truncated, Body=whole[: len(whole) // 2])
    noise = f"{stack.raw_prefix}{HOUR_11}noise.gz"
    s3.put_object(Bucket=stack.bucket, Key=noise, Body=bytes(range(256)) * 64)

    report = crawl(aws)

    assert sorted(report.unreadable_objects) == sorted([truncated, noise])
    assert good not in report.unreadable_objects
    assert report.objects_read == 3 and report.records_read == 2
    assert column_types(raw_table(aws)) == dict(LANDING_COLUMNS)
    again = crawl(aws)  # read once: a later crawl does not report them again
    assert again.unreadable_objects == [] and again.objects_read == 0
