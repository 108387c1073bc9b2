import gzip
import json
import uuid
from datetime import UTC, datetime

import dagster as dg
import pytest

from sales_cdc.definitions import defs
from sales_cdc.defs.asset_keys import ERRORS_ORDERS_CDC, RAW_ORDERS_CDC
from sales_cdc.defs.lake.projection import orders_current
from sales_cdc.defs.landing.checks import error_rate_check, no_error_records
from sales_cdc.defs.landing.objects import BatchSummary, add_error_object, partition_of
from sales_cdc.defs.landing.sensors import build_landing_objects_sensor
from sales_cdc.resources import build_resources
from sales_cdc.resources.aws import AwsResource
from sales_cdc.resources.query import DuckDBQueryEngine
from sales_cdc.settings import load_settings
from sales_cdc.stack import load_declaration

landing_objects_sensor = build_landing_objects_sensor(load_declaration("local")["landing"])


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
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"aws": aws})
    return landing_objects_sensor(context)


def test_error_summary_counts_records_reasons_and_a_broken_gzip():
    summary = BatchSummary()
    prefix = "errors/orders_cdc/"
    folder = f"{prefix}processing-failed/year=2026/month=11/day=21/hour=00/"
    failed = {"errorCode": "Lambda.ProcessingFailed", "errorMessage": "not JSON"}
    body = gzip.compress((json.dumps(failed) + "\n" + json.dumps(failed) + "\n\n").encode())
    add_error_object(summary, f"{folder}a.gz", prefix, body)
    add_error_object(summary, f"{folder}b.gz", prefix, gzip.compress(b"x" * 100)[:-8])
    assert (summary.objects, summary.records, summary.unreadable_lines) == (2, 2, 1)
    assert summary.error_codes == {"Lambda.ProcessingFailed": 2}
    assert summary.sample_errors[0] == "Lambda.ProcessingFailed: not JSON"
    assert partition_of(f"{folder}a.gz", prefix) == "year=2026/month=11/day=21/hour=00"


class CountingS3:
    """The sensor's S3 client, counting GetObject calls (the sensor must make none)."""

    def __init__(self, client) -> None:
        self.client = client
        self.get_object_calls = 0

    def __getattr__(self, name: str):
        if name == "get_object":
            self.get_object_calls += 1
        return getattr(self.client, name)


def test_sensor_records_each_new_batch_once_from_the_listing_alone(
    provisioned: AwsResource, monkeypatch: pytest.MonkeyPatch
):
    s3 = CountingS3(provisioned.client("s3"))
    client = AwsResource.client
    monkeypatch.setattr(
        AwsResource,
        "client",
        lambda self, service: s3 if service == "s3" else client(self, service),
    )
    with dg.instance_for_test() as instance:
        assert isinstance(_tick(provisioned, instance, None), dg.SkipReason)
        first = _put_landing(
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
        head = provisioned.client("s3").head_object(Bucket=provisioned.stack().bucket, Key=first)
        assert metadata["objects"].value == 2 and metadata["bytes"].value > head["ContentLength"]
        assert metadata["partitions"].value == [
            "year=2026/month=11/day=20/hour=23",
            "year=2026/month=11/day=21/hour=01",
        ]
        assert 0 <= metadata["seconds_since_newest_landed"].value < 120
        assert "records" not in metadata  # counting rows is the orders_current run's work
        assert any(isinstance(e, dg.AssetMaterialization) for e in result.asset_events)
        assert not any(isinstance(e, dg.AssetCheckEvaluation) for e in result.asset_events)
        [request] = result.run_requests
        assert request.job_name == "lake_refresh"
        assert s3.get_object_calls == 0

        # Nothing new: nothing recorded twice.
        assert isinstance(_tick(provisioned, instance, result.cursor), dg.SkipReason)
        _put_landing(
            provisioned, "year=2026/month=11/day=21/hour=02", [_row("2026-11-21 02:00:00.000000")]
        )
        later = _tick(provisioned, instance, result.cursor)
        observation = next(e for e in later.asset_events if isinstance(e, dg.AssetObservation))
        assert observation.metadata["objects"].value == 1
        assert s3.get_object_calls == 0


def test_error_objects_request_the_landing_checks_which_name_a_reason(provisioned: AwsResource):
    with dg.instance_for_test() as instance:
        _put_errors(provisioned, 2)
        result = _tick(provisioned, instance, None)
        observation = next(e for e in result.asset_events if isinstance(e, dg.AssetObservation))
        assert observation.asset_key == ERRORS_ORDERS_CDC
        assert observation.metadata["objects"].value == 1
        [request] = result.run_requests  # no landing object: nothing for the lake to do
        assert request.job_name == "landing_checks"

        # The job the sensor requests, run as the daemon would: the checks read the bodies.
        job = defs.resolve_job_def(request.job_name)
        assert {k.name for k in job.asset_layer.asset_graph.asset_check_keys} == {
            "no_error_records",
            "error_rate",
        }
        run = job.execute_in_process(
            instance=instance, resources=build_resources(load_settings()), raise_on_error=False
        )
        checks = {e.check_name: e for e in run.get_asset_check_evaluations()}
        errors = checks["no_error_records"]
        assert errors.asset_key == ERRORS_ORDERS_CDC and not errors.passed
        assert "Lambda.ProcessingFailed: not JSON" in errors.description
        assert not checks["error_rate"].passed  # 2 errors, nothing merged yet


def test_error_rate_compares_error_records_with_the_records_merged(provisioned: AwsResource):
    _put_landing(
        provisioned, "year=2026/month=11/day=21/hour=10", [_row("2026-11-21 10:00:00.000000")] * 300
    )
    engine = DuckDBQueryEngine(aws=provisioned)
    assert error_rate_check(provisioned, engine).passed  # nothing merged, nothing failed
    assert no_error_records(provisioned).passed
    merged = dg.materialize(
        [orders_current], resources={"aws": provisioned, "query_engine": engine}
    )
    assert merged.success
    _put_errors(provisioned, 1)
    result = error_rate_check(provisioned, engine)
    assert result.passed  # 1 / 301 is under the 1% threshold
    assert result.metadata["merged_records"].value == 300
    assert not no_error_records(provisioned).passed
    _put_errors(provisioned, 5)
    assert not error_rate_check(provisioned, engine).passed


def test_new_landing_objects_request_orders_current_once(provisioned: AwsResource):
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
        assert request.tags["sales_cdc/lake"] == "orders_current"
        # The run the daemon launches for it (the job subset it resolves): the rules and the
        # crawl's checks, not the reconciliation with OrderTable, which has its own schedule.
        run_job = defs.resolve_job_def(request.job_name).get_subset(
            asset_selection=set(request.asset_selection),
            asset_check_selection=set(request.asset_check_keys or ()) or None,
        )
        checks = {k.name for k in run_job.asset_layer.asset_graph.asset_check_keys}
        assert {"raw_cdc_columns", "one_row_per_order", "landing_objects_readable"} <= checks
        assert "matches_dynamodb" not in checks
        # Only error objects: the landing checks, nothing for the lake.
        _put_errors(provisioned, 1)
        [checks] = _tick(provisioned, instance, result.cursor).run_requests
        assert checks.job_name == "landing_checks"


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


def test_no_second_orders_current_run_while_one_has_not_begun_its_merge(
    provisioned: AwsResource,
):
    from dagster._core.events import DagsterEvent, DagsterEventType
    from dagster._core.test_utils import create_run_for_test

    from sales_cdc.defs.landing.sensors import LAKE_TAG, ORDERS_CURRENT_STEP

    def land(hour: str) -> None:
        _put_landing(
            provisioned, f"year=2026/month=11/day=21/hour={hour}", [_row(f"2026-11-21 {hour}:00")]
        )

    with dg.instance_for_test() as instance:
        land("05")
        result = _tick(provisioned, instance, None)
        [request] = result.run_requests
        # The run has started (its process loads the code location, or its merge step waits for
        # the orders_current pool): its merge will list this object too, no second run.
        run = create_run_for_test(
            instance,
            job_name="lake_refresh",
            status=dg.DagsterRunStatus.STARTED,
            tags=request.tags,
        )
        land("06")
        result = _tick(provisioned, instance, result.cursor)
        assert result.run_requests == []
        assert any(isinstance(e, dg.AssetMaterialization) for e in result.asset_events)
        # Once its merge has begun, an object landing now needs a run of its own.
        instance.report_dagster_event(
            DagsterEvent(
                DagsterEventType.STEP_START.value,
                job_name="lake_refresh",
                step_key=ORDERS_CURRENT_STEP,
            ),
            run_id=run.run_id,
        )
        land("07")
        [request] = _tick(provisioned, instance, result.cursor).run_requests
        assert request.tags[LAKE_TAG] == "orders_current"


def test_sensor_skips_until_the_stack_is_provisioned(aws: AwsResource):
    """Dagster started before provisioning: a tick before the bucket exists is a skip that says
    so, not an error."""
    with dg.instance_for_test() as instance:
        result = _tick(aws, instance, None)
        assert isinstance(result, dg.SkipReason)
        assert "provision_infrastructure" in (result.skip_message or "")


def test_a_tick_lists_the_last_hours_and_once_a_minute_the_whole_prefix(aws: AwsResource):
    """raw/ is listed from the hour folder an hour before the look-back on; an object delivered
    late into an older folder is found by the whole listing, the first tick of a minute.
    StartAfter as the emulator (moto) models it: a key that need not exist, keys after it in
    lexicographic order (https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html)."""
    from datetime import timedelta

    from sales_cdc.defs.landing.sensors import hour_folder, new_objects, whole_listing_due

    stack = aws.stack()
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=stack.bucket)
    now = datetime.now(UTC)

    def put(moment: datetime) -> str:
        key = f"{stack.raw_prefix}{hour_folder(moment)}/delivery-{uuid.uuid4()}.gz"
        s3.put_object(Bucket=stack.bucket, Key=key, Body=gzip.compress(b"{}\n"))
        return key

    first = put(now)
    fresh, state = new_objects(s3, stack.bucket, stack.raw_prefix, {}, 500, hour_folders=True)
    assert [o["Key"] for o in fresh] == [first]
    # Landed just now, but into a folder three hours old (a stream backlog, a re-drive).
    late, current = put(now - timedelta(hours=3)), put(now)
    listed: list[dict] = []
    paginate = s3.get_paginator("list_objects_v2").paginate

    class Recording:
        def get_paginator(self, operation: str):
            assert operation == "list_objects_v2"
            return self

        def paginate(self, **kwargs):
            listed.append(kwargs)
            return paginate(**kwargs)

    windowed, _ = new_objects(
        Recording(), stack.bucket, stack.raw_prefix, state, 500, hour_folders=True
    )
    assert [o["Key"] for o in windowed] == [current]
    since = datetime.fromisoformat(state["last_modified"]) - timedelta(minutes=5)
    assert listed[-1]["StartAfter"] == stack.raw_prefix + hour_folder(since - timedelta(hours=1))
    whole, state = new_objects(s3, stack.bucket, stack.raw_prefix, state, 500)
    assert sorted(o["Key"] for o in whole) == sorted([late, current])
    assert new_objects(s3, stack.bucket, stack.raw_prefix, state, 500)[0] == []

    # The whole listing is due on the first tick of each minute, and on the very first tick.
    minute = datetime(2026, 12, 6, 1, 7, tzinfo=UTC)
    assert whole_listing_due(dg.build_sensor_context(), minute)
    ticked = dg.SensorEvaluationContext(
        instance_ref=None, last_tick_completion_time=(minute - timedelta(seconds=2)).timestamp()
    )
    assert whole_listing_due(ticked, minute + timedelta(seconds=1))
    assert not whole_listing_due(ticked, minute - timedelta(seconds=1))
