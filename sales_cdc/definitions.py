"""The sales-cdc Dagster code location: assembles each stage's definitions and the resources."""

import dagster as dg

from sales_cdc.defs import analytics, infrastructure, lake, landing, orders
from sales_cdc.resources import build_resources
from sales_cdc.settings import Settings, apply_local_credentials, load_settings
from sales_cdc.stack import load_declaration

# One entry per pipeline stage: sales_cdc/defs/<stage>/__init__.py exposes
# build_defs(declaration), and nothing in sales_cdc/defs reads the environment or infra/stack.yaml.
STAGES = [infrastructure, orders, landing, lake, analytics]


def build_definitions(settings: Settings) -> dg.Definitions:
    """Every stage's definitions, built from the declaration of `settings.env` (infra/stack.yaml,
    loaded once here), and the resources of `settings`."""
    declaration = load_declaration(settings.env)
    return dg.Definitions.merge(
        *(stage.build_defs(declaration) for stage in STAGES),
        # Steps here are I/O-bound AWS calls and queries: one process per run, not one per step,
        # keeps a run's start-up cost low (a 2-core laptop runs the whole demo).
        dg.Definitions(resources=build_resources(settings), executor=dg.in_process_executor),
    )


settings = load_settings()
apply_local_credentials(settings)
defs = build_definitions(settings)
