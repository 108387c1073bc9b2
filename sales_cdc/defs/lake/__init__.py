"""The lake: the raw CDC table in the Glue catalog, and the tables projected from it."""

import importlib
import importlib.util

import dagster as dg

from sales_cdc.defs.lake import catalog, maintenance

assets = list(catalog.ASSETS)
asset_checks = list(catalog.ASSET_CHECKS)
schedules = list(catalog.SCHEDULES) + list(maintenance.SCHEDULES)
sensors: list = []
jobs = list(maintenance.JOBS)

# The orders_current projection plugs in when its module is there.
if importlib.util.find_spec("sales_cdc.defs.lake.projection") is not None:
    projection = importlib.import_module("sales_cdc.defs.lake.projection")
    assets += projection.ASSETS
    asset_checks += projection.ASSET_CHECKS
    sensors += projection.SENSORS
    schedules += projection.SCHEDULES

defs = dg.Definitions(
    assets=assets, asset_checks=asset_checks, schedules=schedules, sensors=sensors, jobs=jobs
)
