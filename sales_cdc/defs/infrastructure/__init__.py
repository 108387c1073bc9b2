"""Provisioning and teardown of the whole AWS stack."""

from typing import Any

import dagster as dg

from sales_cdc.defs.infrastructure.jobs import provision_infrastructure, teardown_infrastructure


def build_defs(declaration: dict[str, Any]) -> dg.Definitions:
    """The provisioning and teardown jobs (they read the stack when they run, not here)."""
    return dg.Definitions(jobs=[provision_infrastructure, teardown_infrastructure])
