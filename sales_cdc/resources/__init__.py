"""Dagster resources: one interface per capability, the embedded or AWS implementation picked here."""

from __future__ import annotations

from typing import Any

from sales_cdc.resources.aws import AwsResource
from sales_cdc.resources.crawler import EmbeddedCrawlerResource, GlueCrawlerResource
from sales_cdc.resources.query import AthenaQueryEngine, DuckDBQueryEngine
from sales_cdc.resources.transform import EmbeddedTransformInvoker, LambdaTransformInvoker
from sales_cdc.settings import Settings


def build_resources(settings: Settings) -> dict[str, Any]:
    """The resources for `settings.env`: the one place that chooses embedded or AWS."""
    aws = AwsResource.from_settings(settings)
    resources: dict[str, Any] = {"aws": aws}
    resources["crawler"] = (
        EmbeddedCrawlerResource(aws=aws) if settings.is_local else GlueCrawlerResource(aws=aws)
    )
    resources["query_engine"] = (
        DuckDBQueryEngine(aws=aws) if settings.is_local else AthenaQueryEngine(aws=aws)
    )
    resources["transform"] = (
        EmbeddedTransformInvoker(aws=aws) if settings.is_local else LambdaTransformInvoker(aws=aws)
    )
    return resources
