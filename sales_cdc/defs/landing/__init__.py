"""Landing data in S3: external assets, the landing sensor, freshness and error checks."""

import dagster as dg

from sales_cdc.defs.landing.assets import errors_orders_cdc, raw_orders_cdc
from sales_cdc.defs.landing.checks import error_rate_check, no_error_records
from sales_cdc.defs.landing.redrive import redrive_failed_records
from sales_cdc.defs.landing.sensors import landing_objects_sensor

defs = dg.Definitions(
    assets=[raw_orders_cdc, errors_orders_cdc],
    asset_checks=[no_error_records, error_rate_check],
    sensors=[landing_objects_sensor],
    jobs=[redrive_failed_records],
)
