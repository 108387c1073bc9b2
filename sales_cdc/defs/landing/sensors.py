"""landing_objects_sensor: records each new batch of landed objects and evaluates its checks."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
from dagster_aws.s3 import S3Resource
from dagster_aws.s3.sensor import get_objects

from sales_cdc.defs.landing.assets import (
    ERRORS_ORDERS_CDC,
    GLUE_ORDERS_CDC,
    ORDERS_CURRENT,
    RAW_ORDERS_CDC,
)
from sales_cdc.defs.landing.checks import error_rate_evaluation, no_error_records_evaluation
from sales_cdc.defs.landing.objects import BatchSummary, add_error_object, add_landing_object
from sales_cdc.resources.aws import AwsResource
from sales_cdc.settings import load_settings
from sales_cdc.stack import load_declaration

_landing = load_declaration(load_settings().env)["landing"]


# How far before the newest LastModified seen the sensor keeps listing (see new_objects).
LOOKBACK = timedelta(minutes=5)


def new_objects(
    client: Any, bucket: str, prefix: str, state: dict[str, Any], limit: int
) -> tuple[list[dict], dict[str, Any]]:
    """Objects not recorded yet, oldest first, at most `limit`; and the advanced cursor.

    S3 stamps an object with the time its upload started and with a coarse resolution, so an
    object can show up after others that carry a later LastModified. The cursor therefore lists
    from LOOKBACK before the newest LastModified it has seen and remembers the keys it recorded
    since then: nothing is missed and nothing is recorded twice.
    """
    newest_seen = (
        datetime.fromisoformat(state["last_modified"]) if state.get("last_modified") else None
    )
    seen: dict[str, str] = dict(state.get("keys") or {})
    listed = get_objects(
        bucket,
        prefix,
        since_last_modified=newest_seen - LOOKBACK if newest_seen else None,
        client=client,
    )
    fresh = sorted(
        (o for o in listed if o["Key"] not in seen), key=lambda o: (o["LastModified"], o["Key"])
    )[:limit]
    if not fresh:
        return [], state
    newest = max(filter(None, (newest_seen, fresh[-1]["LastModified"])))
    seen.update({o["Key"]: o["LastModified"].isoformat() for o in fresh})
    horizon = newest - LOOKBACK
    kept = {k: t for k, t in seen.items() if datetime.fromisoformat(t) > horizon}
    return fresh, {"last_modified": newest.isoformat(), "keys": kept}


def _observation_metadata(summary: BatchSummary, now: datetime) -> dict[str, Any]:
    lag = summary.lag_seconds(now)
    return {
        "objects": summary.objects,
        "records": summary.records,
        "bytes": summary.bytes,
        "unreadable_lines": summary.unreadable_lines,
        "newest_event_time": (
            summary.newest_event_time.isoformat() if summary.newest_event_time else "none"
        ),
        "lag_seconds": dg.MetadataValue.float(lag) if lag is not None else 0.0,
        "event_days": dg.MetadataValue.json(sorted(summary.event_days)),
        "partitions": dg.MetadataValue.json(sorted(summary.partitions)),
    }


@dg.sensor(
    name="landing_objects_sensor",
    minimum_interval_seconds=int(_landing["sensor_interval_seconds"]),
    default_status=dg.DefaultSensorStatus.RUNNING,
    target=dg.AssetSelection.assets(GLUE_ORDERS_CDC, ORDERS_CURRENT),
    description=(
        "Lists new objects in raw/ and errors/ (LastModified cursor), records each batch on the "
        "landing assets (objects, records, bytes, newest event time, lag, event days), "
        "evaluates the landing checks and requests athena/orders_current for new data."
    ),
)
def landing_objects_sensor(
    context: dg.SensorEvaluationContext, aws: AwsResource, s3: S3Resource
) -> dg.SensorResult | dg.SkipReason:
    stack = aws.stack()
    client = s3.get_client()
    cursor = json.loads(context.cursor) if context.cursor else {}
    limit = int(_landing["max_objects_per_tick"])
    now = datetime.now(UTC)
    events: list[Any] = []

    landing, raw_state = new_objects(
        client, stack.bucket, stack.raw_prefix, cursor.get("raw", {}), limit
    )
    errors, error_state = new_objects(
        client, stack.bucket, stack.errors_prefix, cursor.get("errors", {}), limit
    )
    if not landing and not errors:
        return dg.SkipReason("no new objects in raw/orders_cdc/ or errors/orders_cdc/")

    raw_summary = BatchSummary()
    for obj in landing:
        body = client.get_object(Bucket=stack.bucket, Key=obj["Key"])["Body"].read()
        add_landing_object(raw_summary, obj["Key"], stack.raw_prefix, body)
    error_summary = BatchSummary()
    for obj in errors:
        body = client.get_object(Bucket=stack.bucket, Key=obj["Key"])["Body"].read()
        add_error_object(error_summary, obj["Key"], stack.errors_prefix, body)

    if landing:
        metadata = _observation_metadata(raw_summary, now)
        events.append(dg.AssetObservation(asset_key=RAW_ORDERS_CDC, metadata=metadata))
        # Freshness policies look at materializations: Firehose's delivery is reported as one.
        events.append(dg.AssetMaterialization(asset_key=RAW_ORDERS_CDC, metadata=metadata))
    if errors:
        metadata = _observation_metadata(error_summary, now)
        metadata["sample_reasons"] = dg.MetadataValue.json(error_summary.sample_errors)
        events.append(dg.AssetObservation(asset_key=ERRORS_ORDERS_CDC, metadata=metadata))
        events.append(dg.AssetMaterialization(asset_key=ERRORS_ORDERS_CDC, metadata=metadata))

    landed_total = int(cursor.get("landed_records", 0)) + raw_summary.records
    errors_total = int(cursor.get("error_records", 0)) + error_summary.records
    events.append(no_error_records_evaluation(error_summary))
    events.append(
        error_rate_evaluation(
            landed_total, errors_total, float(stack.section("landing")["error_rate_threshold"])
        )
    )
    context.log.info(
        f"{raw_summary.objects} landing objects ({raw_summary.records} records), "
        f"{error_summary.objects} error objects ({error_summary.records} records)"
    )
    new_cursor = {
        "raw": raw_state,
        "errors": error_state,
        "landed_records": landed_total,
        "error_records": errors_total,
    }
    return dg.SensorResult(
        asset_events=events,
        run_requests=landing_run_requests(context.instance, aws, raw_summary, raw_state),
        cursor=json.dumps(new_cursor),
    )


# Every run the sensors request to write the lake (orders_current, the aggregates) carries this
# tag; the Dagster instance runs one of them at a time (tag_concurrency_limits, see README), so an
# aggregate's check compares its day with the orders_current its refresh read.
LAKE_TAG = "sales_cdc/lake"
PARTITIONS_PER_LOOKUP = 1000  # Glue BatchGetPartition's limit


def needs_crawl(aws: AwsResource, partitions: set[str]) -> bool:
    """Whether the raw table is missing, or lacks one of these folders (year=…/…/hour=…)."""
    stack = aws.stack()
    glue = aws.client("glue")
    try:
        glue.get_table(DatabaseName=stack.database, Name=stack.raw_table)
    except glue.exceptions.EntityNotFoundException:
        return True
    values = [[part.split("=", 1)[1] for part in folder.split("/")] for folder in partitions]
    values = sorted(v for v in values if v)
    for start in range(0, len(values), PARTITIONS_PER_LOOKUP):
        chunk = values[start : start + PARTITIONS_PER_LOOKUP]
        found = glue.batch_get_partition(
            DatabaseName=stack.database,
            TableName=stack.raw_table,
            PartitionsToGet=[{"Values": v} for v in chunk],
        )
        if found.get("UnprocessedKeys") or len(found.get("Partitions", [])) < len(chunk):
            return True
    return False


def landing_run_requests(
    instance: dg.DagsterInstance, aws: AwsResource, summary: BatchSummary, raw_state: dict[str, Any]
) -> list[dg.RunRequest]:
    """A run of orders_current for new landing rows, unless one is already waiting to start.

    orders_current rebuilds from the whole log, so a run that has not started yet will read
    this batch too: piling up more runs behind it would only repeat the same work. When the
    new objects landed in an hour partition the raw table does not list yet, the run crawls first.
    """
    if not summary.records:
        return []
    waiting = instance.get_run_records(
        filters=dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED],
            tags={LAKE_TAG: "orders_current"},
        ),
        limit=1,
    )
    if waiting:
        return []
    if needs_crawl(aws, summary.partitions):
        selection = [GLUE_ORDERS_CDC, ORDERS_CURRENT]
    else:
        selection = [ORDERS_CURRENT]
    return [
        dg.RunRequest(
            run_key=f"landing-{raw_state['last_modified']}",
            asset_selection=selection,
            tags={
                LAKE_TAG: "orders_current",
                "sales_cdc/event_days": ",".join(sorted(summary.event_days)),
            },
        )
    ]
