"""Analytics: daily aggregate tables of orders_current, refreshed in proportion to what changed."""

from typing import Any

import dagster as dg

from sales_cdc.defs.analytics.assets import ASSETS
from sales_cdc.defs.analytics.checks import ASSET_CHECKS
from sales_cdc.defs.analytics.sensors import build_aggregates_sensor


def build_defs(declaration: dict[str, Any]) -> dg.Definitions:
    """The aggregate tables, their checks and aggregates_sensor as `declaration` sets it."""
    return dg.Definitions(
        assets=ASSETS,
        asset_checks=ASSET_CHECKS,
        sensors=[build_aggregates_sensor(declaration["analytics"])],
    )
