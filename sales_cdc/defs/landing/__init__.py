"""Landing data in S3: external assets, the landing sensor, freshness, error and dead-letter checks."""

from typing import Any

import dagster as dg

from sales_cdc.defs.landing.assets import build_raw_orders_cdc, errors_orders_cdc
from sales_cdc.defs.landing.checks import error_rate_check, no_error_records
from sales_cdc.defs.landing.dead_letters import (
    dead_letter_check_job,
    dead_letter_check_schedule,
    dead_letter_queue_empty,
    orders_cdc_dead_letters,
)
from sales_cdc.defs.landing.redrive import redrive_failed_records
from sales_cdc.defs.landing.sensors import build_landing_objects_sensor


def build_defs(declaration: dict[str, Any]) -> dg.Definitions:
    """The landing stage, its freshness and its sensor's pace as `declaration` sets them."""
    return dg.Definitions(
        assets=[
            build_raw_orders_cdc(declaration["freshness"]),
            errors_orders_cdc,
            orders_cdc_dead_letters,
        ],
        asset_checks=[no_error_records, error_rate_check, dead_letter_queue_empty],
        sensors=[build_landing_objects_sensor(declaration["landing"])],
        schedules=[dead_letter_check_schedule],
        jobs=[redrive_failed_records, dead_letter_check_job],
    )
