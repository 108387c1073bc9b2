"""The order generator: DynamoDB OrderTable as a Dagster asset."""

import dagster as dg

from sales_cdc.defs.orders.assets import orders
from sales_cdc.defs.orders.schedules import order_generator_schedule

defs = dg.Definitions(assets=[orders], schedules=[order_generator_schedule])
