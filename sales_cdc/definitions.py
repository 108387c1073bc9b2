"""The sales-cdc Dagster code location: assembles each stage's definitions and the resources."""

import dagster as dg

from sales_cdc.defs import analytics, infrastructure, lake, landing, orders
from sales_cdc.resources import build_resources
from sales_cdc.settings import apply_local_credentials, load_settings

settings = load_settings()
apply_local_credentials(settings)

# One entry per pipeline stage (sales_cdc/defs/<stage>/__init__.py exposes `defs`).
STAGES = [infrastructure, orders, landing, lake, analytics]

defs = dg.Definitions.merge(
    *(stage.defs for stage in STAGES),
    # Steps here are I/O-bound AWS calls and queries: one process per run, not one per step,
    # keeps a run's start-up cost low (a 2-core laptop runs the whole demo).
    dg.Definitions(resources=build_resources(settings), executor=dg.in_process_executor),
)
