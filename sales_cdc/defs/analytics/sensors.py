"""aggregates_sensor: refresh exactly the aggregate partitions whose orders changed."""

from typing import Any

import dagster as dg

from sales_cdc.defs.analytics.assets import AGGREGATE_KEYS, ORDERS_CURRENT, order_days
from sales_cdc.defs.analytics.checks import ASSET_CHECKS

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


@dg.sensor(
    name="aggregates_sensor",
    asset_selection=AGGREGATE_KEYS,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="On each orders_current materialization, refresh the aggregate partitions of "
    "exactly the order days it reports in changed_order_dates.",
)
def aggregates_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    """Request one run per changed order day for the four aggregate assets."""
    after = int(context.cursor) if context.cursor else None
    newest: dict[str, int] = {}  # order day -> storage id of the newest event reporting it
    last_seen = after
    seen = 0
    page_cursor = None
    while True:
        page = context.instance.fetch_materializations(
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

    valid = set(order_days.get_partition_keys())
    skipped = sorted(day for day in newest if day not in valid)
    if skipped:
        context.log.info(
            f"Skipping {len(skipped)} changed order day(s) outside the aggregates' partitions "
            f"({order_days.start.date()} .. today+1): {skipped[:10]}"
        )
    check_keys = [key for checks in ASSET_CHECKS for key in checks.check_keys]
    run_requests = [
        dg.RunRequest(
            run_key=f"aggregates:{day}:{storage_id}",
            partition_key=day,
            asset_selection=AGGREGATE_KEYS,
            asset_check_keys=check_keys,
            tags={"sales_cdc/trigger": f"orders_current:{storage_id}"},
        )
        for day, storage_id in sorted(newest.items())
        if day in valid
    ]
    context.log.info(
        f"{seen} new orders_current materialization(s); requesting {len(run_requests)} "
        "aggregate refresh run(s)."
    )
    return dg.SensorResult(run_requests=run_requests, cursor=str(last_seen))


SENSORS = [aggregates_sensor]
