"""Table maintenance of the curated Iceberg tables: compaction, snapshot expiry, orphan files."""

import datetime as dt

import dagster as dg
from pydantic import Field

from sales_cdc.defs import schedule_status
from sales_cdc.resources.query import MaintenanceResult, QueryEngine
from sales_cdc.resources.sql import table_ddl_names


def curated_tables() -> list[str]:
    """Every curated table: the ones declared by a sales_cdc/sql/<table>.ddl.sql file."""
    return table_ddl_names()


class MaintenanceConfig(dg.Config):
    """How much history the maintenance run keeps (defaults from infra/stack.yaml)."""

    snapshot_retention_hours: float = Field(
        description="Expire snapshots older than this many hours (time travel ends there)."
    )
    retain_last_snapshots: int = Field(
        description="Always keep at least this many of the newest snapshots of each table."
    )


def _metadata(result: MaintenanceResult) -> dict[str, dg.MetadataValue]:
    figures = {
        "data_files_before": result.data_files_before,
        "data_files_after": result.data_files_after,
        "snapshots_before": result.snapshots_before,
        "snapshots_after": result.snapshots_after,
        "files_deleted": result.files_deleted,
        "bytes_deleted": result.bytes_deleted,
    }
    metadata = {k: dg.MetadataValue.int(v) for k, v in figures.items() if v is not None}
    if result.query_ids:
        metadata["query_ids"] = dg.MetadataValue.json(result.query_ids)
    return metadata


def build_maintenance(declared: dict) -> tuple[dg.JobDefinition, dg.ScheduleDefinition]:
    """The maintain_lake_tables job and its schedule, as the `maintenance` section declares."""

    @dg.op(name="maintain_curated_tables", tags={"kind": "iceberg"})
    def maintain_op(
        context: dg.OpExecutionContext, config: MaintenanceConfig, query_engine: QueryEngine
    ) -> dg.Output:
        """Compact, expire snapshots and remove orphan files of every curated Iceberg table."""
        older_than = dt.datetime.now(dt.UTC) - dt.timedelta(hours=config.snapshot_retention_hours)
        catalog = query_engine.catalog()
        maintained: dict[str, dict[str, int | None]] = {}
        for table in curated_tables():
            found = catalog.get_table(table)
            parameters = (found or {}).get("Parameters") or {}
            if str(parameters.get("table_type", "")).upper() != "ICEBERG":
                context.log.info(f"{table}: no Iceberg table yet, nothing to maintain.")
                continue
            result = query_engine.maintain(
                table, older_than=older_than, retain_last=config.retain_last_snapshots
            )
            context.log_event(
                dg.AssetObservation(asset_key=["athena", table], metadata=_metadata(result))
            )
            maintained[table] = {
                "data_files_before": result.data_files_before,
                "data_files_after": result.data_files_after,
                "snapshots_before": result.snapshots_before,
                "snapshots_after": result.snapshots_after,
            }
            context.log.info(
                f"{table}: data files {result.data_files_before} -> {result.data_files_after}, "
                f"snapshots {result.snapshots_before} -> {result.snapshots_after}."
            )
        return dg.Output(
            sorted(maintained),
            metadata={
                "tables": dg.MetadataValue.int(len(maintained)),
                "per_table": dg.MetadataValue.json(maintained),
            },
        )

    defaults = {
        "snapshot_retention_hours": float(declared["snapshot_retention_hours"]),
        "retain_last_snapshots": int(declared["retain_last_snapshots"]),
    }

    @dg.job(
        name="maintain_lake_tables",
        description="Compaction, snapshot expiry and orphan-file removal of the curated tables.",
        config={"ops": {"maintain_curated_tables": {"config": defaults}}},
    )
    def maintain_lake_tables() -> None:
        maintain_op()

    schedule = dg.ScheduleDefinition(
        name="maintain_lake_tables_schedule",
        job=maintain_lake_tables,
        cron_schedule=declared["cron"],
        execution_timezone="UTC",
        default_status=schedule_status(declared["running"]),
    )
    return maintain_lake_tables, schedule
