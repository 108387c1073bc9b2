"""The crawler resource: one interface, the AWS Glue crawler or the embedded one behind it."""

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
from botocore.exceptions import ClientError
from pydantic import Field

from sales_cdc.emulator.crawler import CrawlerError as EmbeddedCrawlerError
from sales_cdc.emulator.crawler import EmbeddedCrawler
from sales_cdc.resources.aws import AwsResource

UNREADABLE_SHOWN = 20  # keys of skipped objects named in the metadata


class CrawlerError(RuntimeError):
    """The crawl failed or could not run; the message says why and what to do."""


@dataclass(frozen=True)
class CrawlResult:
    """What one crawl of the raw CDC table changed in the Glue Data Catalog."""

    crawler_name: str
    database: str
    table: str
    status: str
    tables_created: int
    tables_updated: int
    columns: list[tuple[str, str]]
    partition_keys: list[str]
    partitions: int
    partitions_added: int
    columns_added: list[str] = field(default_factory=list)
    columns_widened: list[str] = field(default_factory=list)  # "name: before -> after"
    objects_read: int | None = None  # known to the embedded crawler only
    bytes_read: int | None = None
    malformed_lines: int | None = None
    unreadable_objects: list[str] | None = None  # keys skipped as not GZIP / JSON lines
    duration_seconds: float = 0.0

    def metadata(self) -> dict[str, Any]:
        """Materialization metadata: figures to plot, and the schema as a table."""
        rows = "\n".join(f"| {name} | {typ} |" for name, typ in self.columns)
        meta: dict[str, Any] = {
            "crawler": self.crawler_name,
            "table": f"{self.database}.{self.table}",
            "crawl_status": self.status,
            "tables_created": self.tables_created,
            "tables_updated": self.tables_updated,
            "columns": dg.MetadataValue.int(len(self.columns)),
            "schema": dg.MetadataValue.md(f"| column | type |\n|---|---|\n{rows}"),
            "partition_keys": ", ".join(self.partition_keys),
            "partitions": dg.MetadataValue.int(self.partitions),
            "partitions_added": dg.MetadataValue.int(self.partitions_added),
            "columns_added": ", ".join(self.columns_added) or "none",
            "columns_widened": ", ".join(self.columns_widened) or "none",
            "crawl_seconds": dg.MetadataValue.float(round(self.duration_seconds, 3)),
        }
        if self.objects_read is not None:
            meta["objects_read"] = dg.MetadataValue.int(self.objects_read)
        if self.bytes_read is not None:
            meta["bytes_read"] = dg.MetadataValue.int(self.bytes_read)
        if self.malformed_lines is not None:
            meta["malformed_lines"] = dg.MetadataValue.int(self.malformed_lines)
        if self.unreadable_objects is not None:
            meta["objects_unreadable"] = dg.MetadataValue.int(len(self.unreadable_objects))
            shown = self.unreadable_objects[:UNREADABLE_SHOWN]
            more = len(self.unreadable_objects) - len(shown)
            meta["unreadable_objects"] = (
                ", ".join(shown) + (f" (+{more} more)" if more else "") or "none"
            )
        return meta


class CrawlerResource(dg.ConfigurableResource, ABC):
    """Runs the deployment's crawler over raw/orders_cdc/ and reports the catalog changes."""

    aws: AwsResource

    @abstractmethod
    def run(self, context: dg.OpExecutionContext) -> CrawlResult:
        """Crawl now (waiting for a crawl already running) and return what changed."""


def _columns(table: dict[str, Any] | None) -> list[tuple[str, str]]:
    columns = ((table or {}).get("StorageDescriptor") or {}).get("Columns") or []
    return [(col["Name"], col["Type"]) for col in columns]


def _schema_diff(
    before: list[tuple[str, str]], after: list[tuple[str, str]]
) -> tuple[list[str], list[str]]:
    old = dict(before)
    added = [name for name, _ in after if name not in old]
    changed = [f"{name}: {old[name]} -> {typ}" for name, typ in after if old.get(name, typ) != typ]
    return added, changed


class GlueCrawlerResource(CrawlerResource):
    """The AWS Glue crawler: start_crawler, wait until READY, read the outcome from the catalog."""

    poll_seconds: float = Field(default=15.0, description="Seconds between get_crawler polls.")
    timeout_seconds: float = Field(
        default=3600.0, description="Give up waiting for the crawler after this many seconds."
    )
    start_attempts: int = Field(
        default=5, description="How often to retry start_crawler while another crawl runs."
    )

    def run(self, context: dg.OpExecutionContext) -> CrawlResult:
        glue = self.aws.client("glue")
        stack = self.aws.stack()
        name, database, table = stack.crawler_name, stack.database, stack.raw_table
        started = time.monotonic()
        before = self._table(glue, database, table)
        partitions_before = self._partition_count(glue, database, table) if before else 0

        previous = self._start(glue, name, context)
        crawler = self._wait_ready(glue, name, previous)
        last = crawler.get("LastCrawl") or {}
        status = last.get("Status", "UNKNOWN")
        if status == "FAILED":
            raise CrawlerError(
                f"Glue crawler {name} failed: {last.get('ErrorMessage') or 'no error message'} "
                f"(CloudWatch Logs {last.get('LogGroup', '/aws-glue/crawlers')}, stream "
                f"{last.get('LogStream', name)}, messages prefixed {last.get('MessagePrefix')})."
            )
        if status == "CANCELLED":
            raise CrawlerError(
                f"Glue crawler {name} was stopped before it finished; run the crawl again."
            )

        after = self._table(glue, database, table)
        if after is None:
            raise CrawlerError(
                f"Glue crawler {name} finished but {database}.{table} does not exist: has "
                f"anything landed under s3://{stack.bucket}/{stack.raw_prefix} yet?"
            )
        partitions = self._partition_count(glue, database, table)
        added, widened = _schema_diff(_columns(before), _columns(after))
        metrics = self._metrics(glue, name, context)
        return CrawlResult(
            crawler_name=name,
            database=database,
            table=table,
            status=status,
            tables_created=metrics.get("TablesCreated", int(before is None)),
            tables_updated=metrics.get(
                "TablesUpdated", int(before is not None and (bool(added or widened)))
            ),
            columns=_columns(after),
            partition_keys=[key["Name"] for key in after.get("PartitionKeys") or []],
            partitions=partitions,
            partitions_added=max(partitions - partitions_before, 0),
            columns_added=added if before else [],
            columns_widened=widened,
            duration_seconds=time.monotonic() - started,
        )

    @staticmethod
    def _marker(crawler: dict[str, Any]) -> tuple[Any, Any] | None:
        last = crawler.get("LastCrawl")
        return (last.get("MessagePrefix"), last.get("StartTime")) if last else None

    def _start(self, glue: Any, name: str, context: dg.OpExecutionContext) -> Any:
        """start_crawler; a crawl already running is waited for, then a fresh one is started."""
        for _ in range(self.start_attempts):
            previous = self._marker(self._get_crawler(glue, name))
            try:
                glue.start_crawler(Name=name)
                return previous
            except glue.exceptions.CrawlerRunningException:
                context.log.info(
                    f"Glue crawler {name} is already running: waiting for it to finish, then "
                    "starting a fresh crawl so that the newest objects are cataloged."
                )
                self._wait_ready(glue, name, None)
        raise CrawlerError(
            f"Glue crawler {name} was busy {self.start_attempts} times in a row; something else "
            "keeps starting it (a crawler schedule?). Remove the other trigger or retry later."
        )

    def _get_crawler(self, glue: Any, name: str) -> dict[str, Any]:
        try:
            return glue.get_crawler(Name=name)["Crawler"]
        except glue.exceptions.EntityNotFoundException:
            raise CrawlerError(
                f"Glue crawler {name} does not exist. Provision the stack first "
                "(Dagster job provision_infrastructure)."
            ) from None

    def _wait_ready(self, glue: Any, name: str, previous: Any) -> dict[str, Any]:
        """Poll until the crawler is READY (and, after our start, has a newer LastCrawl)."""
        deadline = time.monotonic() + self.timeout_seconds
        while True:
            crawler = self._get_crawler(glue, name)
            if crawler.get("State") == "READY" and (
                previous is None or self._marker(crawler) != previous
            ):
                return crawler
            if time.monotonic() > deadline:
                raise CrawlerError(
                    f"Glue crawler {name} is still {crawler.get('State')} after "
                    f"{self.timeout_seconds:.0f}s (GlueCrawlerResource.timeout_seconds). Check it "
                    "in the Glue console, or raise the timeout for large crawls."
                )
            time.sleep(self.poll_seconds)

    @staticmethod
    def _table(glue: Any, database: str, table: str) -> dict[str, Any] | None:
        try:
            return glue.get_table(DatabaseName=database, Name=table)["Table"]
        except glue.exceptions.EntityNotFoundException:
            return None

    @staticmethod
    def _partition_count(glue: Any, database: str, table: str) -> int:
        paginator = glue.get_paginator("get_partitions")
        pages = paginator.paginate(DatabaseName=database, TableName=table, ExcludeColumnSchema=True)
        return sum(len(page["Partitions"]) for page in pages)

    @staticmethod
    def _metrics(glue: Any, name: str, context: dg.OpExecutionContext) -> dict[str, Any]:
        try:
            found = glue.get_crawler_metrics(CrawlerNameList=[name])["CrawlerMetricsList"]
        except ClientError as exc:
            context.log.warning(f"get_crawler_metrics failed ({exc}); counts come from the catalog")
            return {}
        return found[0] if found else {}


class EmbeddedCrawlerResource(CrawlerResource):
    """The embedded crawler (local): infers the schema from the landed objects itself."""

    wait_timeout_seconds: float = Field(
        default=600.0, description="Give up waiting for a crawl already running after this."
    )

    def run(self, context: dg.OpExecutionContext) -> CrawlResult:
        stack = self.aws.stack()
        crawler = EmbeddedCrawler(
            self.aws.client("glue"),
            self.aws.client("s3"),
            stack.crawler_name,
            wait_timeout_seconds=self.wait_timeout_seconds,
            logger=context.log,
        )
        try:
            report = crawler.crawl()
        except EmbeddedCrawlerError as exc:
            raise CrawlerError(str(exc)) from exc
        found = [t for t in report.tables if t.table == stack.raw_table]
        if not found:
            raise CrawlerError(
                f"Crawler {stack.crawler_name} cataloged {[t.table for t in report.tables]} but "
                f"not {stack.raw_table}: its S3 target should be "
                f"s3://{stack.bucket}/{stack.raw_prefix} (re-run provision_infrastructure)."
            )
        crawl = found[0]
        if not crawl.columns:
            raise CrawlerError(
                f"Crawler {stack.crawler_name} found nothing to catalog under {crawl.location} "
                "yet, so there is no table: land some orders first (generator + runtime)."
            )
        return CrawlResult(
            crawler_name=stack.crawler_name,
            database=crawl.database,
            table=crawl.table,
            status="COMPLETED",
            tables_created=sum(t.created for t in report.tables),
            tables_updated=sum(t.updated for t in report.tables),
            columns=crawl.columns,
            partition_keys=crawl.partition_keys,
            partitions=crawl.partitions,
            partitions_added=crawl.partitions_added,
            columns_added=crawl.columns_added,
            columns_widened=[
                f"{n}: {before} -> {after}" for n, before, after in crawl.columns_widened
            ],
            objects_read=crawl.objects_read,
            bytes_read=crawl.bytes_read,
            malformed_lines=crawl.malformed_lines,
            unreadable_objects=[key for table in report.tables for key in table.unreadable_objects],
            duration_seconds=report.seconds,
        )
