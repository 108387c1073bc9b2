"""Dagster definitions grouped by pipeline stage."""
