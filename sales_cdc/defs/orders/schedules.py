"""The generator's schedule: every minute, on in the demo, off by default in aws."""

import dagster as dg

from sales_cdc.defs.orders.assets import ORDERS
from sales_cdc.settings import load_settings
from sales_cdc.stack import load_declaration

_schedules = load_declaration(load_settings().env)["schedules"]

order_generator_schedule = dg.ScheduleDefinition(
    name="order_generator_schedule",
    target=dg.AssetSelection.assets(ORDERS),
    cron_schedule=_schedules["generator_cron"],
    default_status=(
        dg.DefaultScheduleStatus.RUNNING
        if _schedules["generator_running"]
        else dg.DefaultScheduleStatus.STOPPED
    ),
    description="Writes a batch of new orders, status changes and deletes every minute.",
)
