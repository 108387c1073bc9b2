"""Landing data in S3: external assets, the landing sensor, freshness, error and dead-letter checks."""

import dagster as dg

from sales_cdc.defs.landing.assets import errors_orders_cdc, raw_orders_cdc
from sales_cdc.defs.landing.checks import error_rate_check, no_error_records
from sales_cdc.defs.landing.dead_letters import (
    dead_letter_check_job,
    dead_letter_check_schedule,
    dead_letter_queue_empty,
    orders_cdc_dead_letters,
)
from sales_cdc.defs.landing.redrive import redrive_failed_records
from sales_cdc.defs.landing.sensors import landing_objects_sensor

defs = dg.Definitions(
    assets=[raw_orders_cdc, errors_orders_cdc, orders_cdc_dead_letters],
    asset_checks=[no_error_records, error_rate_check, dead_letter_queue_empty],
    sensors=[landing_objects_sensor],
    schedules=[dead_letter_check_schedule],
    jobs=[redrive_failed_records, dead_letter_check_job],
)
