"""The crawler resources: the Glue crawler against moto (the emulator), and the embedded one."""

import json
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import pytest
from botocore.awsrequest import AWSResponse
from botocore.stub import Stubber

from sales_cdc.emulator.server import Emulator
from sales_cdc.resources import build_resources
from sales_cdc.resources.aws import AwsResource
from sales_cdc.resources.crawler import (
    CrawlerError,
    EmbeddedCrawlerResource,
    GlueCrawlerResource,
)
from sales_cdc.settings import Settings
from sales_cdc_tests.emulator.test_crawler import HOUR_10, landing_row, put_landing

METRICS = {"CrawlerName": "", "TablesCreated": 0, "TablesUpdated": 1, "TablesDeleted": 0}


def _moto_api(emulator: Emulator, action: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(
        f"{emulator.endpoint}/moto-api/state-manager/{action}",
        data=json.dumps(body).encode(),
        method="POST",
    )
    urllib.request.urlopen(request).close()


@pytest.fixture
def crawls_take_a_while(emulator: Emulator) -> Iterator[None]:
    """moto's crawls stay RUNNING for 2 s, then complete (instead of on ListCrawls)."""
    _moto_api(
        emulator,
        "set-transition",
        {"model_name": "glue::crawl", "transition": {"progression": "time", "seconds": 2}},
    )
    yield
    _moto_api(emulator, "unset-transition", {"model_name": "glue::crawl"})


@pytest.fixture
def glue_calls(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """Counts Glue operations; answers GetCrawlerMetrics as Glue would (moto lacks it)."""
    calls: Counter = Counter()
    original = AwsResource.client

    def count(model: Any, **kwargs: Any) -> None:
        calls[model.name] += 1

    def metrics(**kwargs: Any) -> tuple[AWSResponse, dict[str, Any]]:
        return AWSResponse("", 200, {}, None), {"CrawlerMetricsList": [METRICS]}

    def client(self: AwsResource, service: str) -> Any:
        made = original(self, service)
        if service == "glue":
            made.meta.events.register("before-call.glue.*", count)
            made.meta.events.register("before-call.glue.GetCrawlerMetrics", metrics)
        return made

    monkeypatch.setattr(AwsResource, "client", client)
    return calls


@pytest.fixture
def glue_crawler(aws: AwsResource) -> AwsResource:
    """The deployment's Glue database, crawler and a raw table already cataloged once."""
    stack = aws.stack()
    glue = aws.client("glue")
    glue.create_database(DatabaseInput={"Name": stack.database})
    glue.create_crawler(
        Name=stack.crawler_name,
        Role=stack.role_arn("crawler"),
        DatabaseName=stack.database,
        Targets={"S3Targets": [{"Path": f"s3://{stack.bucket}/{stack.raw_prefix}"}]},
    )
    glue.create_table(
        DatabaseName=stack.database,
        TableInput={
            "Name": stack.raw_table,
            "StorageDescriptor": {"Columns": [{"Name": "quantity", "Type": "bigint"}]},
            "PartitionKeys": [{"Name": k, "Type": "string"} for k in ("year", "month")],
        },
    )
    glue.create_partition(
        DatabaseName=stack.database,
        TableName=stack.raw_table,
        PartitionInput={"Values": ["2026", "11"]},
    )
    return aws


def test_glue_crawler_is_polled_until_ready(
    glue_crawler: AwsResource,
    glue_calls: Counter,
    crawls_take_a_while: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    aws = glue_crawler
    stack = aws.stack()
    glue = aws.client("glue")

    def crawl_changes_the_table(**kwargs: Any) -> None:
        # What Glue does during the crawl: a wider type, a new column, a new partition.
        columns = [{"Name": "quantity", "Type": "double"}, {"Name": "gift_note", "Type": "string"}]
        glue.update_table(
            DatabaseName=stack.database,
            TableInput={
                "Name": stack.raw_table,
                "StorageDescriptor": {"Columns": columns},
                "PartitionKeys": [{"Name": k, "Type": "string"} for k in ("year", "month")],
            },
        )
        glue.create_partition(
            DatabaseName=stack.database,
            TableName=stack.raw_table,
            PartitionInput={"Values": ["2026", "12"]},
        )

    counting = AwsResource.client

    def client(self: AwsResource, service: str) -> Any:
        made = counting(self, service)
        made.meta.events.register("after-call.glue.StartCrawler", crawl_changes_the_table)
        return made

    monkeypatch.setattr(AwsResource, "client", client)
    started = time.monotonic()
    result = GlueCrawlerResource(aws=aws, poll_seconds=0.05).run(dg.build_asset_context())

    assert time.monotonic() - started >= 0.3
    assert glue_calls["StartCrawler"] == 1 and glue_calls["GetCrawler"] >= 3
    assert result.status == "COMPLETED"
    assert result.tables_created == 0 and result.tables_updated == 1  # from get_crawler_metrics
    assert result.columns == [("quantity", "double"), ("gift_note", "string")]
    assert result.columns_added == ["gift_note"]
    assert result.columns_widened == ["quantity: bigint -> double"]
    assert result.partitions == 2 and result.partitions_added == 1
    assert result.partition_keys == ["year", "month"]


def test_glue_crawler_already_running_is_waited_for_then_started_again(
    glue_crawler: AwsResource, glue_calls: Counter, crawls_take_a_while: None
) -> None:
    aws = glue_crawler
    name = aws.stack().crawler_name
    glue = aws.client("glue")
    glue.start_crawler(Name=name)  # a crawl started by someone else
    glue_calls.clear()

    result = GlueCrawlerResource(aws=aws, poll_seconds=0.05).run(dg.build_asset_context())

    assert result.status == "COMPLETED"
    assert glue_calls["StartCrawler"] == 2  # refused once, then a fresh crawl of ours
    crawls = glue.list_crawls(CrawlerName=name)["Crawls"]
    assert len(crawls) == 2 and all(c["State"] == "COMPLETED" for c in crawls)


def test_glue_crawler_timeout_names_the_setting(
    glue_crawler: AwsResource, glue_calls: Counter
) -> None:
    # moto's default: a crawl completes only once observed through ListCrawls, so it stays RUNNING.
    resource = GlueCrawlerResource(aws=glue_crawler, poll_seconds=0.05, timeout_seconds=0.2)
    with pytest.raises(CrawlerError, match="timeout_seconds"):
        resource.run(dg.build_asset_context())
    glue_crawler.client("glue").list_crawls(CrawlerName=glue_crawler.stack().crawler_name)


def test_glue_crawler_failure_reports_the_crawlers_own_error(
    aws: AwsResource, monkeypatch: pytest.MonkeyPatch
) -> None:
    # moto cannot fail a crawl: Glue's answers for a failing crawl, stubbed.
    stack = aws.stack()
    glue = AwsResource.client(aws, "glue")
    stubber = Stubber(glue)
    start = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
    reason = (
        "Service Principal: glue.amazonaws.com is not authorized to perform: s3:GetObject "
        f"on resource: arn:aws:s3:::{stack.bucket}/raw/orders_cdc/"
    )
    stubber.add_client_error("get_table", "EntityNotFoundException", "Table not found")
    stubber.add_response(
        "get_crawler",
        {"Crawler": {"Name": stack.crawler_name, "State": "READY"}},
    )
    stubber.add_response("start_crawler", {})
    stubber.add_response("get_crawler", {"Crawler": {"State": "RUNNING"}})
    stubber.add_response(
        "get_crawler",
        {
            "Crawler": {
                "State": "READY",
                "LastCrawl": {
                    "Status": "FAILED",
                    "ErrorMessage": reason,
                    "LogGroup": "/aws-glue/crawlers",
                    "LogStream": stack.crawler_name,
                    "MessagePrefix": "c0ffee",
                    "StartTime": start,
                },
            }
        },
    )
    original = AwsResource.client
    monkeypatch.setattr(
        AwsResource,
        "client",
        lambda self, service: glue if service == "glue" else original(self, service),
    )
    with stubber, pytest.raises(CrawlerError) as failure:
        GlueCrawlerResource(aws=aws, poll_seconds=0.01).run(dg.build_asset_context())
    assert reason in str(failure.value) and stack.crawler_name in str(failure.value)
    stubber.assert_no_pending_responses()


def test_build_resources_picks_the_crawler_for_the_environment(local_env: Settings) -> None:
    assert isinstance(build_resources(local_env)["crawler"], EmbeddedCrawlerResource)
    aws_settings = Settings(
        env="aws", prefix=local_env.prefix, region="eu-west-1", endpoint_url=None
    )
    assert isinstance(build_resources(aws_settings)["crawler"], GlueCrawlerResource)


def test_embedded_crawler_resource_reports_the_crawl(provisioned: AwsResource) -> None:
    put_landing(provisioned, HOUR_10, [landing_row(1), landing_row(2)])
    resource = EmbeddedCrawlerResource(aws=provisioned)
    result = resource.run(dg.build_asset_context())
    # The table is declared by provisioning: the crawl updates it, it does not create it.
    assert result.tables_created == 0 and result.tables_updated == 1
    assert result.objects_read == 1 and result.bytes_read > 0
    assert result.partitions == result.partitions_added == 1
    assert dict(result.columns)["is_deleted"] == "boolean"
    metadata = result.metadata()
    assert metadata["columns"].value == len(result.columns)
    assert "| is_deleted | boolean |" in metadata["schema"].value
    assert metadata["objects_unreadable"].value == 0
    assert metadata["unreadable_objects"] == "none"


def test_embedded_crawler_resource_names_unreadable_objects(provisioned: AwsResource) -> None:
    stack = provisioned.stack()
    put_landing(provisioned, HOUR_10, [landing_row(1)])
    key = f"{stack.raw_prefix}{HOUR_10}broken.gz"
    provisioned.client("s3").put_object(Bucket=stack.bucket, Key=key, Body=b"\x1f\x8b\x08rest")
    result = EmbeddedCrawlerResource(aws=provisioned).run(dg.build_asset_context())
    assert result.unreadable_objects == [key]
    metadata = result.metadata()
    assert metadata["objects_unreadable"].value == 1
    assert metadata["unreadable_objects"] == key


def test_embedded_crawler_resource_without_landed_data_crawls_the_declared_table(
    provisioned: AwsResource,
) -> None:
    result = EmbeddedCrawlerResource(aws=provisioned).run(dg.build_asset_context())
    assert result.partitions == 0 and result.objects_read == 0 and result.columns


def test_embedded_crawler_resource_without_table_or_data_says_so(provisioned: AwsResource) -> None:
    stack = provisioned.stack()
    provisioned.client("glue").delete_table(DatabaseName=stack.database, Name=stack.raw_table)
    with pytest.raises(CrawlerError, match="nothing to catalog"):
        EmbeddedCrawlerResource(aws=provisioned).run(dg.build_asset_context())
