"""The sales-cdc Dagster code location: assembles assets, checks, jobs, schedules and sensors."""

from __future__ import annotations

import dagster as dg

from sales_cdc.defs.infrastructure.jobs import provision_infrastructure, teardown_infrastructure
from sales_cdc.resources import build_resources
from sales_cdc.settings import apply_local_credentials, load_settings

settings = load_settings()
apply_local_credentials(settings)

defs = dg.Definitions(
    jobs=[provision_infrastructure, teardown_infrastructure],
    resources=build_resources(settings),
)
