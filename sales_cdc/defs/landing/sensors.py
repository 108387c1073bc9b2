"""landing_objects_sensor: records each new batch of landed objects (from the S3 listing alone)
and requests the runs that read them."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
from botocore.exceptions import ClientError

from sales_cdc.defs.asset_keys import (
    ERRORS_ORDERS_CDC,
    GLUE_ORDERS_CDC,
    MATCHES_DYNAMODB,
    ORDERS_CURRENT,
    RAW_ORDERS_CDC,
)
from sales_cdc.defs.instance import tick_instance
from sales_cdc.defs.lake import catalog, projection
from sales_cdc.defs.landing.checks import error_rate_check, no_error_records
from sales_cdc.defs.landing.objects import partition_of
from sales_cdc.resources.aws import AwsResource

# The run requested for new landing objects: orders_current with its checks (not the
# reconciliation with OrderTable, which has its own schedule), crawling first when an hour folder
# is not in the raw table yet.
lake_refresh_job = dg.define_asset_job(
    "lake_refresh",
    selection=dg.AssetSelection.assets(GLUE_ORDERS_CDC, ORDERS_CURRENT)
    - dg.AssetSelection.checks(MATCHES_DYNAMODB),
    description="Merge new landing objects into orders_current (crawl first when needed).",
)
# The landing checks, which read the error objects (and the ledger of merged records).
landing_checks_job = dg.define_asset_job(
    "landing_checks",
    selection=dg.AssetSelection.checks(no_error_records, error_rate_check),
    description="No record in errors/orders_cdc/; error rate under its threshold.",
)

# How far before the newest LastModified seen the sensor keeps listing (see new_objects).
LOOKBACK = timedelta(minutes=5)
# raw/ is listed from the hour folder an hour before the look-back on: Firehose's keys sort by the
# hour of their events (firehose.prefix in infra/stack.yaml), so a tick lists the last hours, not
# the whole history. The first tick of every minute lists the whole prefix: an object delivered
# late into an older folder (a stream backlog, a re-drive) is found within a minute, well inside
# LOOKBACK, so nothing is missed.
FOLDER_MARGIN = timedelta(hours=1)


def hour_folder(moment: datetime) -> str:
    """The hour folder Firehose writes the events of `moment` (UTC) to."""
    return f"year={moment:%Y}/month={moment:%m}/day={moment:%d}/hour={moment:%H}"


def whole_listing_due(context: dg.SensorEvaluationContext, now: datetime) -> bool:
    """The first tick of a minute (or the first tick at all) lists the whole raw prefix."""
    previous = context.last_tick_completion_time
    return previous is None or int(previous // 60) != int(now.timestamp() // 60)


def new_objects(
    client: Any,
    bucket: str,
    prefix: str,
    state: dict[str, Any],
    limit: int,
    hour_folders: bool = False,
) -> tuple[list[dict], dict[str, Any]]:
    """Objects not recorded yet, oldest first, at most `limit`; and the advanced cursor.

    S3 stamps an object with the time its upload started and with a coarse resolution, so an
    object can show up after others that carry a later LastModified. The cursor therefore lists
    from LOOKBACK before the newest LastModified it has seen and remembers the keys it recorded
    since then: nothing is missed and nothing is recorded twice. With `hour_folders`, only the
    hour folders from FOLDER_MARGIN before that on are listed.
    """
    newest_seen = (
        datetime.fromisoformat(state["last_modified"]) if state.get("last_modified") else None
    )
    since = newest_seen - LOOKBACK if newest_seen else None
    seen: dict[str, str] = dict(state.get("keys") or {})
    listing = {"Bucket": bucket, "Prefix": prefix}
    if hour_folders and since:
        # S3 lists keys in UTF-8 lexicographic order from after StartAfter, which need not exist
        # (https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html): every key of
        # that folder and of the later ones sorts after the folder's own name.
        listing["StartAfter"] = prefix + hour_folder(since.astimezone(UTC) - FOLDER_MARGIN)
    fresh = sorted(
        (
            o
            for page in client.get_paginator("list_objects_v2").paginate(**listing)
            for o in page.get("Contents", [])
            if (since is None or o["LastModified"] > since) and o["Key"] not in seen
        ),
        key=lambda o: (o["LastModified"], o["Key"]),
    )[:limit]
    if not fresh:
        return [], state
    newest = max(filter(None, (newest_seen, fresh[-1]["LastModified"])))
    seen.update({o["Key"]: o["LastModified"].isoformat() for o in fresh})
    horizon = newest - LOOKBACK
    kept = {k: t for k, t in seen.items() if datetime.fromisoformat(t) > horizon}
    return fresh, {"last_modified": newest.isoformat(), "keys": kept}


def listing_metadata(objects: list[dict], prefix: str, now: datetime) -> dict[str, Any]:
    """What the listing of a batch tells without reading a body: objects, bytes, hour folders,
    and how long ago the newest object landed (S3 LastModified)."""
    newest = max(o["LastModified"] for o in objects)
    return {
        "objects": dg.MetadataValue.int(len(objects)),
        "bytes": dg.MetadataValue.int(sum(int(o.get("Size", 0)) for o in objects)),
        "partitions": dg.MetadataValue.json(
            sorted({partition_of(o["Key"], prefix) for o in objects})
        ),
        "newest_landed_at": dg.MetadataValue.text(newest.isoformat()),
        "seconds_since_newest_landed": dg.MetadataValue.float(
            round(max((now - newest).total_seconds(), 0.0), 3)
        ),
    }


def build_landing_objects_sensor(landing: dict[str, Any]) -> dg.SensorDefinition:
    """landing_objects_sensor, at the pace the `landing` section of infra/stack.yaml declares."""
    limit = int(landing["max_objects_per_tick"])

    @dg.sensor(
        name="landing_objects_sensor",
        minimum_interval_seconds=int(landing["sensor_interval_seconds"]),
        default_status=dg.DefaultSensorStatus.RUNNING,
        jobs=[lake_refresh_job, landing_checks_job],
        description=(
            "Lists new objects in raw/ and errors/ (keys, sizes and LastModified only; a cursor "
            "on LastModified), records each batch on the landing assets (objects, bytes, hour "
            "folders), requests athena/orders_current for new landing objects (it reads them) "
            "and the landing checks for new error objects (they read them)."
        ),
    )
    def landing_objects_sensor(
        context: dg.SensorEvaluationContext, aws: AwsResource
    ) -> dg.SensorResult | dg.SkipReason:
        return evaluate_landing_objects(context, aws, limit)

    return landing_objects_sensor


def bucket_exists(client: Any, bucket: str) -> bool:
    """Whether the lake bucket exists (HeadBucket: 404 when it does not)."""
    try:
        client.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchBucket"):
            return False
        raise
    return True


def evaluate_landing_objects(
    context: dg.SensorEvaluationContext, aws: AwsResource, limit: int
) -> dg.SensorResult | dg.SkipReason:
    """One tick of landing_objects_sensor: at most `limit` new objects of each prefix."""
    stack = aws.stack()
    client = aws.client("s3")
    if not bucket_exists(client, stack.bucket):
        # Dagster runs before the stack is provisioned: nothing can have landed yet.
        return dg.SkipReason(
            f"Bucket {stack.bucket} does not exist yet: run provision_infrastructure first."
        )
    cursor = json.loads(context.cursor) if context.cursor else {}
    now = datetime.now(UTC)
    events: list[Any] = []
    run_requests: list[dg.RunRequest] = []

    landing, raw_state = new_objects(
        client,
        stack.bucket,
        stack.raw_prefix,
        cursor.get("raw", {}),
        limit,
        hour_folders=not whole_listing_due(context, now),
    )
    errors, error_state = new_objects(
        client, stack.bucket, stack.errors_prefix, cursor.get("errors", {}), limit
    )
    if not landing and not errors:
        return dg.SkipReason("no new objects in raw/orders_cdc/ or errors/orders_cdc/")

    if landing:
        metadata = listing_metadata(landing, stack.raw_prefix, now)
        events.append(dg.AssetObservation(asset_key=RAW_ORDERS_CDC, metadata=metadata))
        # Freshness policies look at materializations: Firehose's delivery is reported as one.
        events.append(dg.AssetMaterialization(asset_key=RAW_ORDERS_CDC, metadata=metadata))
        folders = {partition_of(o["Key"], stack.raw_prefix) for o in landing}
        run_requests += landing_run_requests(tick_instance(context), aws, folders, raw_state)
    if errors:
        metadata = listing_metadata(errors, stack.errors_prefix, now)
        metadata["sample_keys"] = dg.MetadataValue.json([o["Key"] for o in errors][:3])
        events.append(dg.AssetObservation(asset_key=ERRORS_ORDERS_CDC, metadata=metadata))
        events.append(dg.AssetMaterialization(asset_key=ERRORS_ORDERS_CDC, metadata=metadata))
        run_requests.append(
            dg.RunRequest(
                run_key=f"landing-checks-{error_state['last_modified']}",
                job_name=landing_checks_job.name,
            )
        )
    context.log.info(f"{len(landing)} new landing objects, {len(errors)} new error objects")
    return dg.SensorResult(
        asset_events=events,
        run_requests=run_requests,
        cursor=json.dumps({"raw": raw_state, "errors": error_state}),
    )


# Every run the sensors request to write the lake carries this tag, valued by its kind
# (orders_current, aggregates): the Dagster instance runs one aggregates run at a time
# (tag_concurrency_limits in infra/dagster.yaml) and one orders_current merge at a time (the
# asset's pool), so no two runs merge into the same tables at once.
LAKE_TAG = "sales_cdc/lake"
# The step that merges into orders_current (Dagster names an asset's step after its key).
ORDERS_CURRENT_STEP = "__".join(ORDERS_CURRENT.path)
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


def merge_pending(instance: dg.DagsterInstance) -> bool:
    """Whether an orders_current run has not begun its merge yet: queued, starting, or started and
    loading the code location, crawling or waiting for the orders_current pool. Its merge lists
    the landing objects when it begins, so it reads every object landed before then."""
    records = instance.get_run_records(
        filters=dg.RunsFilter(
            statuses=[
                dg.DagsterRunStatus.QUEUED,
                dg.DagsterRunStatus.NOT_STARTED,
                dg.DagsterRunStatus.STARTING,
                dg.DagsterRunStatus.STARTED,
            ],
            tags={LAKE_TAG: "orders_current"},
        )
    )
    for record in records:
        run = record.dagster_run
        if run.status != dg.DagsterRunStatus.STARTED:
            return True
        stats = instance.get_run_step_stats(run.run_id, step_keys=[ORDERS_CURRENT_STEP])
        if not any(stat.start_time for stat in stats):
            return True
    return False


def lake_refresh_checks(assets: list[dg.AssetKey]) -> list[dg.AssetCheckKey]:
    """The checks a lake_refresh run of `assets` runs: all of theirs but matches_dynamodb.

    A RunRequest that names assets but no checks runs every check of those assets (Dagster
    resolves it against the whole asset graph, not the job's selection): without this list the
    reconciliation, which reads all of OrderTable and orders_current, would run in every merge.
    """
    return [
        key
        for checks in (*catalog.ASSET_CHECKS, *projection.ASSET_CHECKS)
        for key in checks.check_keys
        if key.asset_key in assets and key != MATCHES_DYNAMODB
    ]


def landing_run_requests(
    instance: dg.DagsterInstance, aws: AwsResource, folders: set[str], raw_state: dict[str, Any]
) -> list[dg.RunRequest]:
    """A run of orders_current for new landing objects, unless one has not begun its merge yet.

    orders_current merges every landing object not merged yet, so a run whose merge has not
    begun will read this batch too: piling up more runs behind it would only repeat the same
    work. When the new objects landed in an hour folder the raw table does not list yet, the run
    crawls first.
    """
    if merge_pending(instance):
        return []
    crawl_first = needs_crawl(aws, folders)
    selection = [GLUE_ORDERS_CDC, ORDERS_CURRENT] if crawl_first else [ORDERS_CURRENT]
    return [
        dg.RunRequest(
            run_key=f"landing-{raw_state['last_modified']}",
            job_name=lake_refresh_job.name,
            asset_selection=selection,
            asset_check_keys=lake_refresh_checks(selection),
            tags={LAKE_TAG: "orders_current"},
        )
    ]
