import gzip
import json
import uuid
from datetime import UTC, datetime

import dagster as dg
from dagster_aws.s3 import S3Resource

from sales_cdc.defs.landing.assets import ERRORS_ORDERS_CDC, RAW_ORDERS_CDC
from sales_cdc.defs.landing.checks import error_rate_check, no_error_records
from sales_cdc.defs.landing.objects import BatchSummary, add_landing_object, partition_of
from sales_cdc.defs.landing.sensors import landing_objects_sensor
from sales_cdc.resources.aws import AwsResource


def _row(event_time: str, order_id: str = "o1") -> dict:
    return {
        "event_id": uuid.uuid4().hex,
        "event_name": "INSERT",
        "sequence_number": "100",
        "event_time": event_time,
        "order_id": order_id,
        "is_deleted": False,
    }


def _put_landing(aws: AwsResource, hour_folder: str, rows: list[dict]) -> str:
    stack = aws.stack()
    key = f"{stack.raw_prefix}{hour_folder}/delivery-1-{uuid.uuid4()}.gz"
    body = gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode())
    aws.client("s3").put_object(Bucket=stack.bucket, Key=key, Body=body)
    return key


def _put_errors(aws: AwsResource, count: int) -> None:
    stack = aws.stack()
    lines = [
        json.dumps(
            {
                "attemptsMade": 1,
                "errorCode": "Lambda.ProcessingFailed",
                "errorMessage": "not JSON",
                "rawData": "eA==",
            }
        )
        for _ in range(count)
    ]
    key = f"{stack.errors_prefix}processing-failed/year=2026/month=11/day=21/hour=10/e-{uuid.uuid4()}.gz"
    aws.client("s3").put_object(
        Bucket=stack.bucket, Key=key, Body=gzip.compress("\n".join(lines).encode() + b"\n")
    )


def _tick(aws: AwsResource, instance: dg.DagsterInstance, cursor: str | None):
    s3 = S3Resource(region_name="us-east-1", endpoint_url=aws.endpoint_url)
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"aws": aws, "s3": s3}
    )
    return landing_objects_sensor(context)


def test_summary_counts_rows_days_and_partitions():
    summary = BatchSummary()
    body = gzip.compress(
        (
            json.dumps(_row("2026-11-20 23:59:59.000001"))
            + "\n"
            + json.dumps(_row("2026-11-21 00:00:01.5"))
            + "\n\n"
        ).encode()
    )
    add_landing_object(
        summary, "raw/orders_cdc/year=2026/month=11/day=21/hour=00/a.gz", "raw/orders_cdc/", body
    )
    assert summary.records == 2 and summary.objects == 1
    assert sorted(summary.event_days) == ["2026-11-20", "2026-11-21"]
    assert summary.newest_event_time == datetime(2026, 11, 21, 0, 0, 1, 500000, tzinfo=UTC)
    assert partition_of(
        "raw/orders_cdc/year=2026/month=11/day=21/hour=00/a.gz", "raw/orders_cdc/"
    ) == ("year=2026/month=11/day=21/hour=00")


def test_summary_reads_plain_objects_and_counts_a_broken_gzip_as_unreadable():
    summary = BatchSummary()
    plain = (json.dumps(_row("2026-11-21 00:00:01.5")) + "\nnot json\n").encode()
    broken = gzip.compress(plain)[:-8]
    prefix = "raw/orders_cdc/"
    add_landing_object(summary, f"{prefix}year=2026/month=11/day=21/hour=00/a.json", prefix, plain)
    add_landing_object(summary, f"{prefix}year=2026/month=11/day=21/hour=00/b.gz", prefix, broken)
    assert (summary.objects, summary.records, summary.unreadable_lines) == (2, 1, 2)


def test_sensor_records_each_new_batch_once_with_its_figures(provisioned: AwsResource):
    with dg.instance_for_test() as instance:
        assert isinstance(_tick(provisioned, instance, None), dg.SkipReason)
        _put_landing(
            provisioned,
            "year=2026/month=11/day=20/hour=23",
            [_row("2026-11-20 23:10:00.000000")] * 3,
        )
        _put_landing(
            provisioned,
            "year=2026/month=11/day=21/hour=01",
            [_row("2026-11-21 01:00:00.250000")] * 2,
        )
        result = _tick(provisioned, instance, None)
        observations = [e for e in result.asset_events if isinstance(e, dg.AssetObservation)]
        assert [o.asset_key for o in observations] == [RAW_ORDERS_CDC]
        metadata = observations[0].metadata
        assert (metadata["objects"].value, metadata["records"].value) == (2, 5)
        assert metadata["bytes"].value > 0 and metadata["lag_seconds"].value > 0
        assert metadata["newest_event_time"].value == "2026-11-21T01:00:00.250000+00:00"
        assert metadata["event_days"].value == ["2026-11-20", "2026-11-21"]
        assert any(isinstance(e, dg.AssetMaterialization) for e in result.asset_events)
        checks = {
            e.check_name: e for e in result.asset_events if isinstance(e, dg.AssetCheckEvaluation)
        }
        assert checks["no_error_records"].passed and checks["error_rate"].passed

        # Nothing new: nothing recorded twice.
        assert isinstance(_tick(provisioned, instance, result.cursor), dg.SkipReason)
        _put_landing(
            provisioned, "year=2026/month=11/day=21/hour=02", [_row("2026-11-21 02:00:00.000000")]
        )
        later = _tick(provisioned, instance, result.cursor)
        observation = next(e for e in later.asset_events if isinstance(e, dg.AssetObservation))
        assert (observation.metadata["objects"].value, observation.metadata["records"].value) == (
            1,
            1,
        )


def test_error_records_fail_the_check_with_a_sample_reason(provisioned: AwsResource):
    with dg.instance_for_test() as instance:
        _put_landing(
            provisioned,
            "year=2026/month=11/day=21/hour=10",
            [_row("2026-11-21 10:00:00.000000")] * 10,
        )
        _put_errors(provisioned, 2)
        result = _tick(provisioned, instance, None)
        checks = {
            e.check_name: e for e in result.asset_events if isinstance(e, dg.AssetCheckEvaluation)
        }
        errors = checks["no_error_records"]
        assert errors.asset_key == ERRORS_ORDERS_CDC and not errors.passed
        assert "Lambda.ProcessingFailed: not JSON" in errors.description
        rate = checks["error_rate"]
        assert not rate.passed and rate.metadata["error_records"].value == 2  # 2/12 > 1%


def test_checks_run_by_hand_scan_the_prefixes(provisioned: AwsResource):
    _put_landing(
        provisioned, "year=2026/month=11/day=21/hour=10", [_row("2026-11-21 10:00:00.000000")] * 300
    )
    assert error_rate_check(provisioned).passed
    assert no_error_records(provisioned).passed
    _put_errors(provisioned, 1)
    result = error_rate_check(provisioned)
    assert result.passed  # 1 / 301 is under the 1% threshold
    assert not no_error_records(provisioned).passed
    _put_errors(provisioned, 5)
    assert not error_rate_check(provisioned).passed


def test_new_landing_rows_request_orders_current_once(provisioned: AwsResource):
    with dg.instance_for_test() as instance:
        _put_landing(
            provisioned, "year=2026/month=11/day=21/hour=03", [_row("2026-11-21 03:00:00.000000")]
        )
        result = _tick(provisioned, instance, None)
        [request] = result.run_requests
        # The raw table is not cataloged yet: the run crawls first.
        assert request.asset_selection == [
            dg.AssetKey(["glue", "orders_cdc"]),
            dg.AssetKey(["athena", "orders_current"]),
        ]
        assert request.tags["sales_cdc/event_days"] == "2026-11-21"
        # Only error objects: nothing for the lake to do.
        _put_errors(provisioned, 1)
        assert _tick(provisioned, instance, result.cursor).run_requests == []


def test_cursor_catches_an_object_stamped_before_ones_already_recorded():
    from datetime import timedelta

    from sales_cdc.defs.landing.sensors import new_objects

    t0 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
    listing: list[dict] = []

    class FakeS3:
        """The one call get_objects makes: a paginated list_objects_v2."""

        def get_paginator(self, operation: str):
            assert operation == "list_objects_v2"
            return self

        def paginate(self, **kwargs):
            return [{"Contents": list(listing)}]

    def put(key: str, when: datetime) -> None:
        listing.append({"Key": key, "LastModified": when, "Size": 1})

    put("raw/a.gz", t0)
    put("raw/b.gz", t0 + timedelta(seconds=30))
    fresh, state = new_objects(FakeS3(), "bkt", "raw/", {}, 500)
    assert [o["Key"] for o in fresh] == ["raw/a.gz", "raw/b.gz"]
    # A slow upload started at t0+10s shows up only now; another object arrives at the same second.
    put("raw/slow.gz", t0 + timedelta(seconds=10))
    put("raw/c.gz", t0 + timedelta(seconds=30))
    fresh, state = new_objects(FakeS3(), "bkt", "raw/", state, 500)
    assert [o["Key"] for o in fresh] == ["raw/slow.gz", "raw/c.gz"]
    assert new_objects(FakeS3(), "bkt", "raw/", state, 500)[0] == []
    # The limit leaves the rest for the next tick, still nothing twice.
    for i in range(5):
        put(f"raw/d{i}.gz", t0 + timedelta(minutes=1))
    first, state = new_objects(FakeS3(), "bkt", "raw/", state, 3)
    second, state = new_objects(FakeS3(), "bkt", "raw/", state, 3)
    assert len(first) == 3 and len(second) == 2
    assert not {o["Key"] for o in first} & {o["Key"] for o in second}
    # Keys older than the look-back are forgotten; they are not listed again either.
    put("raw/e.gz", t0 + timedelta(minutes=20))
    _, state = new_objects(FakeS3(), "bkt", "raw/", state, 500)
    assert set(state["keys"]) == {"raw/e.gz"}


def test_a_new_hour_crawls_first_a_cataloged_hour_does_not(provisioned: AwsResource):
    # The raw table is declared by provisioning: what decides a crawl is whether the hour
    # partitions of the new objects are registered yet.
    stack = provisioned.stack()
    glue = provisioned.client("glue")
    glue.create_partition(
        DatabaseName=stack.database,
        TableName=stack.raw_table,
        PartitionInput={"Values": ["2026", "11", "21", "03"]},
    )
    with dg.instance_for_test() as instance:
        _put_landing(
            provisioned, "year=2026/month=11/day=21/hour=03", [_row("2026-11-21 03:00:00.000000")]
        )
        result = _tick(provisioned, instance, None)
        [request] = result.run_requests
        assert request.asset_selection == [dg.AssetKey(["athena", "orders_current"])]

        _put_landing(
            provisioned, "year=2026/month=11/day=21/hour=04", [_row("2026-11-21 04:00:00.000000")]
        )
        [request] = _tick(provisioned, instance, result.cursor).run_requests
        assert request.asset_selection == [
            dg.AssetKey(["glue", "orders_cdc"]),
            dg.AssetKey(["athena", "orders_current"]),
        ]
