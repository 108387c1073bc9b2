"""The generator's schedule: every minute, on in the demo, off by default in aws."""

from typing import Any

import dagster as dg

from sales_cdc.defs import schedule_status
from sales_cdc.defs.asset_keys import ORDERS


def build_order_generator_schedule(schedules: dict[str, Any]) -> dg.ScheduleDefinition:
    """order_generator_schedule, as the `schedules` section of infra/stack.yaml declares it."""
    return dg.ScheduleDefinition(
        name="order_generator_schedule",
        target=dg.AssetSelection.assets(ORDERS),
        cron_schedule=schedules["generator_cron"],
        default_status=schedule_status(schedules["generator_running"]),
        description="Writes a batch of new orders, status changes and deletes every minute.",
    )
