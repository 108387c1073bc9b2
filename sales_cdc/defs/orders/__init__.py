"""The order generator: DynamoDB OrderTable as a Dagster asset."""

from typing import Any

import dagster as dg

from sales_cdc.defs.orders.assets import orders
from sales_cdc.defs.orders.schedules import build_order_generator_schedule


def build_defs(declaration: dict[str, Any]) -> dg.Definitions:
    """The generator asset and its schedule, as `declaration` (infra/stack.yaml) sets it."""
    return dg.Definitions(
        assets=[orders], schedules=[build_order_generator_schedule(declaration["schedules"])]
    )
