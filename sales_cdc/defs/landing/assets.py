"""The landing data in S3: external assets written by Firehose, not by Dagster."""

from datetime import timedelta
from typing import Any

import dagster as dg

from sales_cdc.defs.asset_keys import ERRORS_ORDERS_CDC, ORDERS, RAW_ORDERS_CDC


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
