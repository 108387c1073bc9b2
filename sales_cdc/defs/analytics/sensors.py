"""aggregates_sensor: refresh the aggregate partitions whose orders changed, adding new days."""

from datetime import date
from typing import Any

import dagster as dg

from sales_cdc.defs.analytics.assets import AGGREGATE_KEYS, order_days, partitions_start
from sales_cdc.defs.analytics.checks import ASSET_CHECKS
from sales_cdc.defs.asset_keys import ORDERS_CURRENT
from sales_cdc.defs.instance import tick_instance
from sales_cdc.defs.landing.sensors import LAKE_TAG

PAGE_SIZE = 100
CHANGED_DAYS = "changed_order_dates"


def _changed_days(record: Any) -> list[str] | None:
    """The `changed_order_dates` of an orders_current materialization (None when absent)."""
    materialization = record.asset_materialization
    value = (materialization.metadata if materialization else {}).get(CHANGED_DAYS)
    if value is None:
        return None
    days = getattr(value, "value", value)
    return [str(day) for day in days or []]


def build_aggregates_sensor(analytics: dict[str, Any]) -> dg.SensorDefinition:
    """aggregates_sensor, as the `analytics` section of infra/stack.yaml declares it (its pace,
    and the first order day it adds); SettingsError when partitions_start is not a date."""
    start = partitions_start(analytics)

    @dg.sensor(
        name="aggregates_sensor",
        asset_selection=AGGREGATE_KEYS,
        minimum_interval_seconds=int(analytics.get("sensor_interval_seconds", 30)),
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="On new orders_current materializations, add the order days they report in "
        "changed_order_dates as partitions and refresh them in one run.",
    )
    def aggregates_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        """Add the changed order days as partitions and request one run that refreshes them."""
        return evaluate_aggregates(context, start)

    return aggregates_sensor


def evaluate_aggregates(
    context: dg.SensorEvaluationContext, start: str
) -> dg.SensorResult | dg.SkipReason:
    """One tick of aggregates_sensor; order days before `start` (partitions_start) are skipped."""
    instance = tick_instance(context)
    if _refresh_waiting(instance):
        # The waiting run starts behind the aggregates run now going on: the days changed since
        # are left for the next tick (the cursor stays), so they make one run instead of a queue.
        return dg.SkipReason("An aggregates run is waiting to start; changed days wait for it.")
    after = int(context.cursor) if context.cursor else None
    newest: dict[str, int] = {}  # order day -> storage id of the newest event reporting it
    last_seen = after
    seen = 0
    page_cursor = None
    while True:
        page = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=ORDERS_CURRENT, after_storage_id=after),
            limit=PAGE_SIZE,
            cursor=page_cursor,
            ascending=True,
        )
        for record in page.records:
            seen += 1
            last_seen = max(last_seen or 0, record.storage_id)
            days = _changed_days(record)
            if days is None:
                context.log.warning(
                    f"orders_current materialization {record.storage_id} (run "
                    f"{record.run_id}) has no {CHANGED_DAYS} metadata; nothing to refresh "
                    "from it. Backfill the aggregates from the UI if its days changed."
                )
                continue
            for day in days:
                newest[day] = record.storage_id
        if not page.has_more:
            break
        page_cursor = page.cursor

    if not seen:
        return dg.SkipReason("No new orders_current materialization.")

    valid = {day for day in newest if _is_order_day(day, start)}
    skipped = sorted(set(newest) - valid)
    if skipped:
        context.log.info(
            f"Skipping {len(skipped)} changed order day(s) that are not dates on or after "
            f"analytics.partitions_start ({start}): {skipped[:10]}"
        )
    assert order_days.name is not None
    known = list(instance.get_dynamic_partitions(order_days.name))
    new_days = sorted(valid - set(known))
    run_requests = []
    if valid:
        # One run refreshes every changed day: the days between the first and the last changed
        # one (in partition order) are refreshed too. That is idempotent and costs far less than
        # one run launch per day, which dominates on a small machine.
        order = {day: index for index, day in enumerate([*known, *new_days])}
        first, last = min(valid, key=order.__getitem__), max(valid, key=order.__getitem__)
        trigger = max(newest[day] for day in valid)
        # LAKE_TAG: the instance runs one aggregates run at a time (infra/dagster.yaml).
        tags = {"sales_cdc/trigger": f"orders_current:{trigger}", LAKE_TAG: "aggregates"}
        if first != last:
            tags["dagster/asset_partition_range_start"] = first
            tags["dagster/asset_partition_range_end"] = last
        check_keys = [key for checks in ASSET_CHECKS for key in checks.check_keys]
        run_requests.append(
            dg.RunRequest(
                run_key=f"aggregates:{first}..{last}:{trigger}",
                partition_key=first if first == last else None,
                asset_selection=AGGREGATE_KEYS,
                asset_check_keys=check_keys,
                tags=tags,
            )
        )
    context.log.info(
        f"{seen} new orders_current materialization(s), {len(valid)} changed order day(s); "
        f"adding {len(new_days)} partition(s); requesting {len(run_requests)} refresh run(s)."
    )
    return dg.SensorResult(
        run_requests=run_requests,
        cursor=str(last_seen),
        dynamic_partitions_requests=([order_days.build_add_request(new_days)] if new_days else []),
    )


def _refresh_waiting(instance: dg.DagsterInstance) -> bool:
    """Whether an aggregates run this sensor requested is queued and not started yet."""
    return bool(
        instance.get_run_records(
            filters=dg.RunsFilter(
                statuses=[dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED],
                tags={LAKE_TAG: "aggregates"},
            ),
            limit=1,
        )
    )


def _is_order_day(day: str, start: str) -> bool:
    """A YYYY-MM-DD day on or after `start` (analytics.partitions_start)."""
    try:
        parsed = date.fromisoformat(day)
    except ValueError:
        return False
    return len(day) == 10 and parsed >= date.fromisoformat(start)
