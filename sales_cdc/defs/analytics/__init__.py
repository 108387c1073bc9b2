"""Analytics: daily aggregate tables of orders_current, refreshed in proportion to what changed."""

import dagster as dg

from sales_cdc.defs.analytics.assets import ASSETS
from sales_cdc.defs.analytics.checks import ASSET_CHECKS
from sales_cdc.defs.analytics.sensors import SENSORS

defs = dg.Definitions(assets=ASSETS, asset_checks=ASSET_CHECKS, sensors=SENSORS)
