"""The landing data in S3: external assets written by Firehose, not by Dagster."""

from datetime import timedelta
from typing import Any

import dagster as dg

ORDERS = dg.AssetKey(["dynamodb", "orders"])
RAW_ORDERS_CDC = dg.AssetKey(["s3", "raw", "orders_cdc"])
ERRORS_ORDERS_CDC = dg.AssetKey(["s3", "errors", "orders_cdc"])
# Requested by landing_objects_sensor when new landing rows arrive (defined in the lake stage).
GLUE_ORDERS_CDC = dg.AssetKey(["glue", "orders_cdc"])
ORDERS_CURRENT = dg.AssetKey(["athena", "orders_current"])
# orders_current's reconciliation with OrderTable: run by reconcile_schedule, not by lake_refresh.
MATCHES_DYNAMODB = dg.AssetCheckKey(ORDERS_CURRENT, "matches_dynamodb")


def build_raw_orders_cdc(freshness: dict[str, Any]) -> dg.AssetSpec:
    """s3/raw/orders_cdc, fresh within the `freshness` section's landing_minutes."""
    return dg.AssetSpec(
        key=RAW_ORDERS_CDC,
        deps=[ORDERS],
        kinds={"s3"},
        group_name="landing",
        description=(
            "CDC landing rows in raw/orders_cdc/year=/month=/day=/hour=/ (GZIP JSON lines), "
            "delivered by Firehose; recorded by landing_objects_sensor."
        ),
        freshness_policy=dg.FreshnessPolicy.time_window(
            fail_window=timedelta(minutes=int(freshness["landing_minutes"]))
        ),
    )


errors_orders_cdc = dg.AssetSpec(
    key=ERRORS_ORDERS_CDC,
    deps=[ORDERS],
    kinds={"s3"},
    group_name="landing",
    description="Records Firehose could not transform, in errors/orders_cdc/ (Firehose error shape).",
)
