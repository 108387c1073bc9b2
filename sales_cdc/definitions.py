"""The sales-cdc Dagster code location: assembles each stage's definitions and the resources."""

import dagster as dg

from sales_cdc.defs import analytics, infrastructure, lake, landing, orders
from sales_cdc.resources import build_resources
from sales_cdc.settings import Settings, apply_local_credentials, load_settings
from sales_cdc.stack import load_declaration


def build_definitions(settings: Settings) -> dg.Definitions:
    """Every stage's definitions and the resources of `settings`, from its infra/stack.yaml.

    The declaration is loaded here, once, and handed to the stages: nothing in sales_cdc/defs
    reads the environment or the stack declaration when it is imported.
    """
    declaration = load_declaration(settings.env)
    return dg.Definitions.merge(
        infrastructure.defs,
        orders.build_defs(declaration),
        landing.build_defs(declaration),
        lake.build_defs(declaration),
        analytics.build_defs(declaration),
        # Steps here are I/O-bound AWS calls and queries: one process per run, not one per step,
        # keeps a run's start-up cost low (a 2-core laptop runs the whole demo).
        dg.Definitions(resources=build_resources(settings), executor=dg.in_process_executor),
    )


settings = load_settings()
apply_local_credentials(settings)
defs = build_definitions(settings)
