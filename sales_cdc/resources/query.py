"""The query engine: one interface for Athena SQL over the lake, Athena in aws and DuckDB locally."""

from __future__ import annotations

import datetime as dt
import os
import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import dagster as dg
import sqlglot
from pydantic import Field
from sqlglot import exp

from sales_cdc.resources.aws import AwsResource
from sales_cdc.resources.lake_catalog import LakeCatalog
from sales_cdc.resources.sql import bind, literal, optional_columns, read_sql

__all__ = [
    "AthenaQueryEngine",
    "DuckDBQueryEngine",
    "QueryEngine",
    "QueryFailedError",
    "QueryResult",
    "WriteResult",
    "read_sql",
]

CTAS_PARTITION_LIMIT = 100  # Athena: a CTAS / INSERT INTO writes at most 100 partitions.


class QueryFailedError(RuntimeError):
    """A query failed; carries the engine's reason and (on Athena) the QueryExecutionId."""

    def __init__(self, message: str, query_id: str | None = None, reason: str | None = None):
        super().__init__(message)
        self.query_id = query_id
        self.reason = reason


@dataclass
class QueryResult:
    """Rows of a query and what it cost (bytes scanned, Athena's DataScannedInBytes)."""

    columns: list[str]
    rows: list[tuple[Any, ...]]
    bytes_scanned: int
    query_id: str | None = None

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    def one(self) -> dict[str, Any]:
        if len(self.rows) != 1:
            raise QueryFailedError(f"Expected one row, the query returned {len(self.rows)}.")
        return self.dicts()[0]


@dataclass
class WriteResult:
    """What a table write produced: where, which partitions, what it scanned."""

    table: str
    location: str
    partitions: list[tuple[str, ...]]
    bytes_scanned: int
    query_ids: list[str] = field(default_factory=list)


class QueryEngine(dg.ConfigurableResource, ABC):
    """Athena-dialect SQL over the Glue-cataloged lake; curated tables written as Parquet."""

    aws: AwsResource = Field(description="AWS clients and the stack (database, bucket, workgroup).")

    def catalog(self) -> LakeCatalog:
        return LakeCatalog(
            self.aws.client("glue"), self.aws.client("s3"), self.aws.stack().database
        )

    def curated_location(self) -> str:
        stack = self.aws.stack()
        return f"s3://{stack.bucket}/{stack.curated_prefix}"

    @abstractmethod
    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> QueryResult:
        """Run one SELECT (Athena dialect, `%(name)s` parameters); equality / IN filters on
        partition columns prune what is read on both engines."""

    @abstractmethod
    def write_table(
        self,
        name: str,
        select_sql: str,
        partitioned_by: Sequence[str] = (),
        replace_partitions: Iterable[Sequence[str]] | None = None,
        params: Mapping[str, Any] | None = None,
        parameters: Mapping[str, str] | None = None,
    ) -> WriteResult:
        """Write `select_sql` as Parquet table `name` under curated/<name>/ and catalog it.

        Partition columns come last in the SELECT, in `partitioned_by` order.
        `replace_partitions=None` replaces the whole table; a list of partition values
        replaces exactly those partitions (one with no rows left is dropped) and leaves the
        others untouched. New files go to a fresh run folder; the catalog switches to them only
        when all are written, then the previous files are deleted.
        """

    def sync_partitions(self, table: str) -> list[list[str]]:
        """Register hive folders of `table` that the catalog does not list yet."""
        return self.catalog().add_missing_partitions(table)

    def table_parameters(self, table: str) -> dict[str, str]:
        found = self.catalog().get_table(table)
        return dict((found or {}).get("Parameters") or {})

    def set_table_parameters(self, table: str, parameters: Mapping[str, str]) -> None:
        self.catalog().set_parameters(table, parameters)


def _run_id() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


class DuckDBQueryEngine(QueryEngine):
    """The embedded engine: DuckDB over the emulator's Glue catalog and S3 (Athena's stand-in)."""

    def _engine(self) -> Any:
        from pyarrow import fs as pafs

        from sales_cdc.emulator.duckdb_engine import DuckDBEngine

        settings = self.aws.settings
        endpoint = settings.endpoint_url or ""
        filesystem = pafs.S3FileSystem(
            endpoint_override=endpoint.split("://", 1)[-1] or None,
            scheme=endpoint.split("://", 1)[0] if endpoint else "https",
            region=settings.region,
            access_key=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
            secret_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
        )
        catalog = self.catalog()
        return DuckDBEngine(
            catalog, filesystem, self.curated_location(), delete_location=catalog.delete_location
        )

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> QueryResult:
        from sales_cdc.emulator.duckdb_engine import EngineError

        bound = bind(sql, params)
        try:
            table, stats = self._engine().query_arrow(bound, optional_columns(sql))
        except EngineError as exc:
            raise QueryFailedError(str(exc), reason=str(exc)) from exc
        columns = table.column_names
        rows = [tuple(row[c] for c in columns) for row in table.to_pylist()]
        return QueryResult(columns=columns, rows=rows, bytes_scanned=stats.bytes_scanned)

    def write_table(
        self,
        name: str,
        select_sql: str,
        partitioned_by: Sequence[str] = (),
        replace_partitions: Iterable[Sequence[str]] | None = None,
        params: Mapping[str, Any] | None = None,
        parameters: Mapping[str, str] | None = None,
    ) -> WriteResult:
        from sales_cdc.emulator.duckdb_engine import EngineError

        try:
            outcome = self._engine().write_table(
                name,
                bind(select_sql, params),
                partitioned_by,
                replace_partitions,
                optional_columns(select_sql),
                parameters,
            )
        except EngineError as exc:
            raise QueryFailedError(str(exc), reason=str(exc)) from exc
        return WriteResult(
            table=name,
            location=outcome.location,
            partitions=outcome.partitions,
            bytes_scanned=outcome.bytes_scanned,
        )


_ATHENA_TYPES = {"string": "VARCHAR", "int": "INTEGER", "float": "REAL"}


def with_optional_columns(
    sql: str, missing: Mapping[str, Mapping[str, str]], dialect: str = "athena"
) -> str:
    """`sql` with each table reference lacking declared columns wrapped to add them as NULL."""
    if not any(missing.values()):
        return sql
    tree = sqlglot.parse_one(sql, read=dialect)
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    for table in list(tree.find_all(exp.Table)):
        name = table.name.lower()
        columns = missing.get(name)
        if not columns or (name in ctes and not table.db):
            continue
        extra = ", ".join(
            f"CAST(NULL AS {_ATHENA_TYPES.get(t, t.upper())}) AS {c}" for c, t in columns.items()
        )
        source = exp.to_table(f"{table.db}.{name}" if table.db else name).sql(dialect=dialect)
        wrapped = sqlglot.parse_one(f"(SELECT *, {extra} FROM {source})", read=dialect)
        table.replace(
            exp.Subquery(
                this=wrapped.unnest(),
                alias=exp.TableAlias(this=exp.to_identifier(table.alias or name)),
            )
        )
    return tree.sql(dialect=dialect)


class AthenaQueryEngine(QueryEngine):
    """Amazon Athena through pyathena, in the stack's workgroup and result location."""

    poll_interval_seconds: float = Field(
        default=1.0, description="Seconds between two GetQueryExecution polls."
    )

    def _connect(self) -> Any:
        from pyathena import connect

        stack = self.aws.stack()
        settings = self.aws.settings
        kwargs: dict[str, Any] = {}
        if settings.endpoint_url:
            kwargs["endpoint_url"] = settings.endpoint_url
        return connect(
            work_group=stack.workgroup,
            s3_staging_dir=stack.athena_results_location,
            schema_name=stack.database,
            region_name=settings.region,
            poll_interval=self.poll_interval_seconds,
            config=self.aws.boto_config(),
            **kwargs,
        )

    def _prepare(self, sql: str, params: Mapping[str, Any] | None) -> str:
        """Bind parameters and add declared optional columns the catalog lacks as NULL."""
        bound = bind(sql, params)
        declared = optional_columns(sql)
        if not declared:
            return bound
        catalog = self.catalog()
        missing: dict[str, dict[str, str]] = {}
        for table, columns in declared.items():
            found = catalog.get_table(table)
            have = {
                c["Name"].lower()
                for c in ((found or {}).get("StorageDescriptor") or {}).get("Columns", [])
            } | {k["Name"].lower() for k in (found or {}).get("PartitionKeys", [])}
            missing[table] = {c: t for c, t in columns.items() if c not in have}
        return with_optional_columns(bound, missing)

    def _execute(self, sql: str) -> Any:
        """Run one statement; the finished cursor, or QueryFailedError with reason and id."""
        from pyathena.error import Error as AthenaError

        cursor = self._connect().cursor()
        try:
            cursor.execute(sql)
        except AthenaError as exc:
            query_id = getattr(cursor, "query_id", None)
            reason = str(exc)
            raise QueryFailedError(
                f"Athena query {query_id} failed in workgroup {self.aws.stack().workgroup}: "
                f"{reason}",
                query_id=query_id,
                reason=reason,
            ) from exc
        return cursor

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> QueryResult:
        cursor = self._execute(self._prepare(sql, params))
        columns = [d[0] for d in cursor.description or []]
        rows = [tuple(row) for row in cursor.fetchall()]
        return QueryResult(
            columns=columns,
            rows=rows,
            bytes_scanned=int(cursor.data_scanned_in_bytes or 0),
            query_id=cursor.query_id,
        )

    def write_table(
        self,
        name: str,
        select_sql: str,
        partitioned_by: Sequence[str] = (),
        replace_partitions: Iterable[Sequence[str]] | None = None,
        params: Mapping[str, Any] | None = None,
        parameters: Mapping[str, str] | None = None,
    ) -> WriteResult:
        stack = self.aws.stack()
        catalog = self.catalog()
        select = self._prepare(select_sql, params).strip().rstrip(";")
        keys = [k.lower() for k in partitioned_by]
        run = _run_id()
        temp = f"{name}__run_{re.sub(r'[^0-9a-z]', '_', run.lower())}"
        table_location = f"{self.curated_location()}{name}/"
        run_location = f"{table_location}run={run}/"
        replace = None if replace_partitions is None else [tuple(v) for v in replace_partitions]
        scanned = 0
        query_ids: list[str] = []

        def run_statement(statement: str) -> Any:
            nonlocal scanned
            cursor = self._execute(statement)
            scanned += int(cursor.data_scanned_in_bytes or 0)
            query_ids.append(cursor.query_id)
            return cursor

        qualified = f'"{stack.database}"."{temp}"'
        try:
            if keys:
                if replace is None:
                    distinct = run_statement(
                        f"SELECT DISTINCT {', '.join(keys)} FROM ({select}) AS src"
                    )
                    values = sorted(tuple(str(v) for v in row) for row in distinct.fetchall())
                else:
                    values = sorted(replace)
                with_clause = (
                    f"format = 'PARQUET', write_compression = 'SNAPPY', "
                    f"external_location = '{run_location}', "
                    f"partitioned_by = ARRAY[{', '.join(literal(k) for k in keys)}]"
                )
                batches = [
                    values[i : i + CTAS_PARTITION_LIMIT]
                    for i in range(0, len(values), CTAS_PARTITION_LIMIT)
                ]
                if not batches:
                    run_statement(
                        f"CREATE TABLE {qualified} WITH ({with_clause}) AS "
                        f"SELECT * FROM ({select}) AS src WITH NO DATA"
                    )
                for i, batch in enumerate(batches):
                    where = " OR ".join(
                        "("
                        + " AND ".join(f"{k} = {literal(v)}" for k, v in zip(keys, vs, strict=True))
                        + ")"
                        for vs in batch
                    )
                    body = f"SELECT * FROM ({select}) AS src WHERE {where}"
                    if i == 0:
                        run_statement(f"CREATE TABLE {qualified} WITH ({with_clause}) AS {body}")
                    else:
                        run_statement(f"INSERT INTO {qualified} {body}")
            else:
                run_statement(
                    f"CREATE TABLE {qualified} WITH (format = 'PARQUET', "
                    f"write_compression = 'SNAPPY', external_location = '{run_location}') "
                    f"AS {select}"
                )
            written = catalog.get_table(temp)
            if written is None:
                raise QueryFailedError(
                    f"Athena reported success but Glue has no table {stack.database}.{temp}."
                )
            partitions = {
                tuple(p["Values"]): p["StorageDescriptor"]["Location"]
                for p in catalog.get_partitions(temp)
            }
            catalog.publish(
                name,
                columns=written["StorageDescriptor"]["Columns"],
                partition_keys=keys,
                table_location=table_location,
                run_location=run_location,
                partitions=partitions,
                replace_partitions=replace,
                parameters=parameters,
            )
        except BaseException:
            self._drop_temp(catalog, temp)
            catalog.delete_location(run_location)
            raise
        self._drop_temp(catalog, temp)
        return WriteResult(
            table=name,
            location=run_location,
            partitions=sorted(partitions),
            bytes_scanned=scanned,
            query_ids=query_ids,
        )

    @staticmethod
    def _drop_temp(catalog: LakeCatalog, temp: str) -> None:
        """Drop the CTAS table from the catalog only (its files now belong to the real table)."""
        if catalog.get_table(temp) is not None:
            catalog.glue.delete_table(DatabaseName=catalog.database, Name=temp)


def decimal_or_none(value: Any) -> Decimal | None:
    """A money value from either engine (Decimal from DuckDB, str/Decimal from Athena)."""
    return None if value is None else Decimal(str(value))
