"""Provisioning and teardown of the whole AWS stack."""

import dagster as dg

from sales_cdc.defs.infrastructure.jobs import provision_infrastructure, teardown_infrastructure

defs = dg.Definitions(jobs=[provision_infrastructure, teardown_infrastructure])
