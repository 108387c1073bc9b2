"""The lake: the raw CDC table in the Glue catalog, and the tables projected from it."""

from typing import Any

import dagster as dg

from sales_cdc.defs.lake import catalog, maintenance, projection


def build_defs(declaration: dict[str, Any]) -> dg.Definitions:
    """The lake stage, its crawler, maintenance and reconciliation schedules as `declaration` sets them."""
    maintain_lake_tables, maintain_lake_tables_schedule = maintenance.build_maintenance(
        declaration["maintenance"]
    )
    return dg.Definitions(
        assets=[*catalog.ASSETS, *projection.ASSETS],
        asset_checks=[*catalog.ASSET_CHECKS, *projection.ASSET_CHECKS],
        schedules=[
            catalog.build_crawler_schedule(declaration["schedules"]),
            maintain_lake_tables_schedule,
            projection.build_reconcile_schedule(declaration["schedules"]),
        ],
        sensors=projection.SENSORS,
        jobs=[maintain_lake_tables, projection.reconcile_orders_job],
    )
