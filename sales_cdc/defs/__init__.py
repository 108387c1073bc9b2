"""Dagster definitions grouped by pipeline stage."""

import dagster as dg


def schedule_status(running: bool) -> dg.DefaultScheduleStatus:
    """A schedule's status on a fresh instance, from its `*_running` flag in infra/stack.yaml."""
    return dg.DefaultScheduleStatus.RUNNING if running else dg.DefaultScheduleStatus.STOPPED
