"""The query engine: one interface for Athena SQL over the lake, Athena in aws and DuckDB locally."""

from __future__ import annotations

import datetime as dt
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import sqlglot
from pydantic import Field, PrivateAttr
from sqlglot import exp

from sales_cdc.resources.aws import AwsResource
from sales_cdc.resources.lake_catalog import LakeCatalog, S3Objects, iceberg_catalog
from sales_cdc.resources.sql import bind, literal, optional_columns, read_sql

__all__ = [
    "AthenaQueryEngine",
    "DuckDBQueryEngine",
    "MaintenanceResult",
    "QueryEngine",
    "QueryFailedError",
    "QueryResult",
    "WriteResult",
    "read_sql",
]


# Athena "Service Quotas": the query string is at most 262,144 bytes.
MAX_QUERY_BYTES = 262_144


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
    """What a table write produced and what computing it scanned.

    rows_written: rows the write added or changed (a merge: inserted + updated + deleted);
    rows_inserted / rows_updated / rows_deleted: a merge's split where the engine reports it
    (the embedded engine does; Athena reports only the total, these are then None).
    """

    table: str
    rows_written: int = 0
    files_written: int = 0
    bytes_written: int = 0
    bytes_scanned: int = 0
    query_ids: list[str] = field(default_factory=list)
    rows_inserted: int | None = None
    rows_updated: int | None = None
    rows_deleted: int | None = None


@dataclass
class MaintenanceResult:
    """An Iceberg table's data files and snapshots before and after maintenance."""

    table: str
    data_files_before: int | None
    data_files_after: int | None
    snapshots_before: int | None
    snapshots_after: int | None
    files_deleted: int | None = None
    bytes_deleted: int | None = None
    query_ids: list[str] = field(default_factory=list)


class QueryEngine(dg.ConfigurableResource, ABC):
    """Athena-dialect SQL over the Glue-cataloged lake; curated tables written as Parquet."""

    aws: AwsResource = Field(description="AWS clients and the stack (database, bucket, workgroup).")
    _catalog: LakeCatalog | None = PrivateAttr(default=None)

    def catalog(self) -> LakeCatalog:
        """The deployment's Glue catalog (its clients made once per engine)."""
        if self._catalog is None:
            self._catalog = LakeCatalog(
                self.aws.client("glue"), self.aws.client("s3"), self.aws.stack().database
            )
        return self._catalog

    def curated_location(self) -> str:
        stack = self.aws.stack()
        return f"s3://{stack.bucket}/{stack.curated_prefix}"

    def table_location(self, name: str) -> str:
        """Where the curated table `name` keeps its files: <curated>/<name>/."""
        return f"{self.curated_location().rstrip('/')}/{name}/"

    def table_ddl(self, name: str) -> str:
        """sql/<name>.ddl.sql with the table's location bound."""
        return bind(read_sql(f"{name}.ddl"), {"location": self.table_location(name)})

    @abstractmethod
    def ensure_table(self, name: str) -> bool:
        """Create Iceberg table `name` from sql/<name>.ddl.sql unless it exists; True if created."""

    @abstractmethod
    def replace_rows(
        self,
        name: str,
        select_sql: str,
        *,
        where: str | None,
        params: Mapping[str, Any] | None = None,
    ) -> WriteResult:
        """Replace the rows of `name` matching `where` (an Athena predicate over partition
        columns; None = the whole table) by the SELECT's rows (the table's columns, by name).
        Embedded: one Iceberg commit. Athena: DELETE then INSERT INTO (two commits)."""

    @abstractmethod
    def merge_rows(
        self,
        name: str,
        source_sql: str,
        *,
        key: Sequence[str],
        delete_column: str | None = None,
        scope: str | None,
        params: Mapping[str, Any] | None = None,
    ) -> WriteResult:
        """Upsert the source rows into `name` by `key`; a source row whose `delete_column` (if
        any) is true deletes the target row with that key (and is not inserted). Only target rows in
        `scope` (a predicate on partition columns covering every stored row of the source's
        keys and every partition the source writes) can match. Athena: one MERGE INTO."""

    @abstractmethod
    def append_rows(
        self, name: str, select_sql: str, params: Mapping[str, Any] | None = None
    ) -> WriteResult:
        """Add the SELECT's rows to `name` (one commit)."""

    @abstractmethod
    def maintain(
        self, name: str, *, older_than: dt.datetime, retain_last: int
    ) -> MaintenanceResult:
        """Compact small files, expire snapshots older than `older_than` (keeping at least the
        newest `retain_last`), delete files no snapshot references; files before and after."""

    @abstractmethod
    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> QueryResult:
        """Run one SELECT (Athena dialect, `%(name)s` parameters); equality / IN filters on
        partition columns prune what is read on both engines."""

    @abstractmethod
    def snapshot_id(self, name: str) -> int | None:
        """The current snapshot of Iceberg table `name` (None before its first commit): pinned in
        a query with `FOR VERSION AS OF` (resources.sql.as_of), both engines read that state."""

    @abstractmethod
    def snapshot_ids(self, name: str) -> set[int]:
        """Every snapshot of Iceberg table `name` still kept (maintenance expires old ones)."""

    @abstractmethod
    def row_count(self, name: str) -> int:
        """Rows of Iceberg table `name` now, from its current snapshot's summary (total-records
        less total-position-deletes, the Iceberg spec's figures): no data read, whatever its size.
        """

    def sync_partitions(
        self, table: str, object_keys: Iterable[str] | None = None
    ) -> list[list[str]]:
        """Register hive folders of `table` that the catalog does not list yet: those of
        `object_keys` (the objects a run is about to read), or of every object under it."""
        return self.catalog().add_missing_partitions(table, object_keys)

    def table_parameters(self, table: str) -> dict[str, str]:
        found = self.catalog().get_table(table)
        return dict((found or {}).get("Parameters") or {})


class DuckDBQueryEngine(QueryEngine):
    """The embedded engine: DuckDB over the emulator's Glue catalog and S3 (Athena's stand-in)."""

    _embedded: Any = PrivateAttr(default=None)

    def _engine(self) -> Any:
        """The DuckDB engine, made once per resource: its clients, S3 filesystem and the Iceberg
        table metadata it has read serve every statement (each statement still reads the tables'
        current state, see IcebergTables)."""
        if self._embedded is None:
            self._embedded = self._new_engine()
        return self._embedded

    def _new_engine(self) -> Any:
        from pyarrow import fs as pafs

        from sales_cdc.emulator.duckdb_engine import DuckDBEngine
        from sales_cdc.emulator.iceberg import IcebergTables

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
            catalog,
            filesystem,
            iceberg=IcebergTables(iceberg_catalog(self.aws), catalog.database),
        )

    def snapshot_id(self, name: str) -> int | None:
        return self._run(lambda engine: engine.iceberg.current_snapshot_id(name))

    def snapshot_ids(self, name: str) -> set[int]:
        return self._run(lambda engine: engine.iceberg.snapshot_ids(name))

    def row_count(self, name: str) -> int:
        return self._run(lambda engine: engine.iceberg.row_count(name))

    def _run(self, action: Any) -> Any:
        from sales_cdc.emulator.duckdb_engine import EngineError

        try:
            return action(self._engine())
        except EngineError as exc:
            raise QueryFailedError(str(exc), reason=str(exc)) from exc

    @staticmethod
    def _written(name: str, outcome: Any) -> WriteResult:
        committed = outcome.committed
        merged = outcome.inserted + outcome.updated + outcome.deleted
        return WriteResult(
            table=name,
            rows_written=merged or committed.rows,
            files_written=committed.files_written,
            bytes_written=committed.bytes_written,
            bytes_scanned=outcome.bytes_scanned,
            rows_inserted=outcome.inserted,
            rows_updated=outcome.updated,
            rows_deleted=outcome.deleted,
        )

    def ensure_table(self, name: str) -> bool:
        ddl = self.table_ddl(name)
        return self._run(lambda engine: engine.ensure_table(ddl, self.table_location(name)))

    def replace_rows(
        self,
        name: str,
        select_sql: str,
        *,
        where: str | None,
        params: Mapping[str, Any] | None = None,
    ) -> WriteResult:
        self.ensure_table(name)
        bound, optional = bind(select_sql, params), optional_columns(select_sql)
        outcome = self._run(lambda engine: engine.replace_rows(name, bound, where, optional))
        written = self._written(name, outcome)
        written.rows_inserted = written.rows_updated = written.rows_deleted = None
        return written

    def merge_rows(
        self,
        name: str,
        source_sql: str,
        *,
        key: Sequence[str],
        delete_column: str | None = None,
        scope: str | None,
        params: Mapping[str, Any] | None = None,
    ) -> WriteResult:
        self.ensure_table(name)
        bound, optional = bind(source_sql, params), optional_columns(source_sql)
        outcome = self._run(
            lambda engine: engine.merge_rows(name, bound, key, delete_column, scope, optional)
        )
        return self._written(name, outcome)

    def append_rows(
        self, name: str, select_sql: str, params: Mapping[str, Any] | None = None
    ) -> WriteResult:
        self.ensure_table(name)
        bound, optional = bind(select_sql, params), optional_columns(select_sql)
        outcome = self._run(lambda engine: engine.append_rows(name, bound, optional))
        written = self._written(name, outcome)
        written.rows_inserted = written.rows_updated = written.rows_deleted = None
        return written

    def maintain(
        self, name: str, *, older_than: dt.datetime, retain_last: int
    ) -> MaintenanceResult:
        store = S3Objects(self.aws.client("s3"))
        done = self._run(lambda engine: engine.maintain(name, older_than, retain_last, store))
        return MaintenanceResult(
            table=name,
            data_files_before=done.data_files_before,
            data_files_after=done.data_files_after,
            snapshots_before=done.snapshots_before,
            snapshots_after=done.snapshots_after,
            files_deleted=done.files_deleted,
            bytes_deleted=done.bytes_deleted,
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


_ATHENA_TYPES = {"string": "VARCHAR", "int": "INTEGER", "float": "REAL"}


def live_rows(total_records: Any, position_deletes: Any) -> int:
    """Rows of an Iceberg snapshot from its summary's total-records and total-position-deletes
    (strings, absent before the first commit)."""
    return int(total_records or 0) - int(position_deletes or 0)


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


_clock = time.monotonic  # the query timeout's clock (a test sets it)


class _QueryTimedOut(Exception):
    """Raised from pyathena's poll callback when a statement outlives the timeout."""

    def __init__(self, query_id: str) -> None:
        super().__init__(query_id)
        self.query_id = query_id


PARTITION_LIMIT = 100  # Athena: one INSERT INTO adds at most 100 partitions.


def _pins_one_value(where: str, column: str | None) -> bool:
    """Whether `where` is `column = <literal>` (a write to one partition)."""
    tree = sqlglot.parse_one(where, read="athena")
    while isinstance(tree, exp.Paren):
        tree = tree.this
    if not isinstance(tree, exp.EQ) or column is None:
        return False
    sides = [tree.this, tree.expression]
    return any(isinstance(e, exp.Column) and e.name.lower() == column for e in sides) and any(
        isinstance(e, exp.Literal) for e in sides
    )


def ddl_columns(ddl: str) -> list[str]:
    """The column names a CREATE TABLE statement declares, in order."""
    tree = sqlglot.parse_one(ddl, read="athena")
    schema = tree.this if isinstance(tree, exp.Create) else None
    if not isinstance(schema, exp.Schema):
        raise QueryFailedError("A table DDL must be one CREATE TABLE <name> (<columns>).")
    return [c.name.lower() for c in schema.expressions if isinstance(c, exp.ColumnDef)]


def qualify(predicate: str, alias: str) -> str:
    """An Athena predicate with its unqualified columns qualified by `alias`."""
    tree = sqlglot.parse_one(predicate, read="athena")
    for column in tree.find_all(exp.Column):
        if not column.table:
            column.set("table", exp.to_identifier(alias))
    return tree.sql(dialect="athena")


class AthenaQueryEngine(QueryEngine):
    """Amazon Athena through pyathena, in the stack's workgroup and result location."""

    poll_interval_seconds: float = Field(
        default=1.0, description="Seconds between two GetQueryExecution polls."
    )

    query_timeout_seconds: float = Field(
        default=1800.0,
        description=(
            "Longest time one Athena statement may run (queued + running). On expiry the "
            "engine stops it (StopQueryExecution) and fails naming the query id and this setting."
        ),
    )
    _connection: Any = PrivateAttr(default=None)

    def _connect(self) -> Any:
        """The engine's one pyathena connection, opened on first use and reused."""
        if self._connection is not None:
            return self._connection
        from pyathena import connect

        stack = self.aws.stack()
        settings = self.aws.settings
        kwargs: dict[str, Any] = {}
        if settings.endpoint_url:
            kwargs["endpoint_url"] = settings.endpoint_url
        self._connection = connect(
            work_group=stack.workgroup,
            s3_staging_dir=stack.athena_results_location,
            schema_name=stack.database,
            region_name=settings.region,
            poll_interval=self.poll_interval_seconds,
            config=self.aws.boto_config(),
            **kwargs,
        )
        return self._connection

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
        """Run one statement; the finished cursor, or QueryFailedError with reason and id.

        A statement still queued or running after query_timeout_seconds is stopped
        (StopQueryExecution) and reported as failed.
        """
        from pyathena.error import Error as AthenaError

        size = len(sql.encode())
        if size > MAX_QUERY_BYTES:
            raise QueryFailedError(
                f"The statement is {size:,} bytes; Athena accepts at most {MAX_QUERY_BYTES:,} "
                f"(its query string quota, not adjustable). Split it: {sql[:200]}...",
                reason="query string too long",
            )
        connection = self._connect()
        deadline = _clock() + self.query_timeout_seconds
        timed_out: list[str] = []

        def on_poll(execution: Any) -> None:
            if execution.state in ("QUEUED", "RUNNING") and _clock() > deadline:
                timed_out.append(execution.query_id)
                raise _QueryTimedOut(execution.query_id)

        cursor = connection.cursor(on_poll=on_poll)
        workgroup = self.aws.stack().workgroup
        try:
            cursor.execute(sql)
        except (_QueryTimedOut, AthenaError) as exc:
            if timed_out:  # pyathena may wrap the callback's exception
                query_id = timed_out[0]
                connection.client.stop_query_execution(QueryExecutionId=query_id)
                raise QueryFailedError(
                    f"Athena query {query_id} in workgroup {workgroup} ran longer than "
                    f"query_timeout_seconds={self.query_timeout_seconds:g} and was stopped; "
                    "raise the setting if the query needs longer.",
                    query_id=query_id,
                    reason="timeout",
                ) from None
            query_id = getattr(cursor, "query_id", None)
            reason = str(exc)
            raise QueryFailedError(
                f"Athena query {query_id} failed in workgroup {workgroup}: {reason}",
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

    # -- Iceberg tables: statements an enforced workgroup accepts (no CTAS external_location) --
    def _statements(self, name: str, statements: Sequence[str]) -> WriteResult:
        """Run `statements` in order; what they wrote and scanned, with their query ids."""
        result = WriteResult(table=name)
        for statement in statements:
            cursor = self._execute(statement)
            result.bytes_scanned += int(cursor.data_scanned_in_bytes or 0)
            result.query_ids.append(cursor.query_id)
            if statement.lstrip().upper().startswith(("INSERT", "MERGE")):
                result.rows_written += max(int(cursor.rowcount or 0), 0)
        return result

    def ensure_table(self, name: str) -> bool:
        # CREATE TABLE ... TBLPROPERTIES ('table_type'='ICEBERG') with LOCATION: Athena's
        # "Create Iceberg tables" page.
        if self.catalog().get_table(name) is not None:
            return False
        self._execute(self.table_ddl(name))
        return True

    def _columns(self, name: str) -> list[str]:
        return ddl_columns(self.table_ddl(name))

    def insert_statement(self, name: str, select_sql: str) -> str:
        """INSERT INTO `name` (its columns) the SELECT's columns of the same names."""
        columns = ", ".join(self._columns(name))
        select = select_sql.strip().rstrip(";")
        return f"INSERT INTO {name} ({columns}) SELECT {columns} FROM ({select}) AS src"

    def _partition_column(self, name: str) -> str | None:
        """The column the table's first partition is computed from (identity or truncate)."""
        tree = sqlglot.parse_one(self.table_ddl(name), read="athena")
        for prop in tree.find_all(exp.PartitionedByProperty):
            first = prop.this.expressions[0]
            column = first.this if isinstance(first, exp.PartitionByTruncate) else first
            return column.name.lower()
        return None

    def insert_statements(self, name: str, select_sql: str, where: str | None) -> list[str]:
        """INSERT INTO statements writing at most PARTITION_LIMIT partitions each.

        Athena adds at most 100 partitions per INSERT INTO (Athena "Use CTAS and INSERT INTO to
        work around the 100 partition limit"): unless `where` pins one partition, the SELECT's
        partition values are listed first and inserted in batches.
        """
        column = self._partition_column(name)
        single = where is not None and _pins_one_value(where, column)
        if column is None or single:
            return [self.insert_statement(name, select_sql)]
        select = select_sql.strip().rstrip(";")
        found = self._execute(f"SELECT DISTINCT {column} FROM ({select}) AS src")
        rows = found.fetchall()
        values = sorted(str(row[0]) for row in rows if row[0] is not None)
        has_null = any(row[0] is None for row in rows)
        batches = [values[i : i + PARTITION_LIMIT] for i in range(0, len(values), PARTITION_LIMIT)]
        if len(batches) <= 1:
            return [self.insert_statement(name, select_sql)]
        statements = []
        for i, batch in enumerate(batches):
            predicate = f"{column} IN ({literal(batch)})"
            if i == 0 and has_null:
                predicate += f" OR {column} IS NULL"
            statements.append(
                self.insert_statement(name, f"SELECT * FROM ({select}) AS b WHERE {predicate}")
            )
        return statements

    def replace_statements(self, name: str, select_sql: str, where: str | None) -> list[str]:
        """DELETE the rows in `where`, then INSERT the SELECT's (two Iceberg commits or more).

        Athena runs one statement per query: no transaction spans them, so in between a reader
        sees the range empty (the embedded engine commits both in one snapshot); a SELECT that
        reads the table it replaces sees it after the DELETE.
        """
        # DELETE on Iceberg tables: Athena's "Update Iceberg table data" page.
        inserts = self.insert_statements(name, select_sql, where)
        delete = f"DELETE FROM {name}" + (f" WHERE {where}" if where else "")
        return [delete, *inserts]

    def merge_statement(
        self,
        name: str,
        source_sql: str,
        key: Sequence[str],
        delete_column: str | None,
        scope: str | None,
    ) -> str:
        """One MERGE INTO: delete / update / insert by key, target rows limited to `scope`."""
        # Athena "MERGE INTO" page: WHEN MATCHED [AND cond] THEN DELETE | UPDATE SET,
        # WHEN NOT MATCHED [AND cond] THEN INSERT (cols) VALUES (s.cols); a target row
        # matching two source rows is a user error.
        columns = self._columns(name)
        on = " AND ".join(f"t.{k} = s.{k}" for k in key)
        if scope:
            on = f"({qualify(scope, 't')}) AND {on}"
        updates = ", ".join(f"{c} = s.{c}" for c in columns if c not in key)
        source = source_sql.strip().rstrip(";")
        insert = f"INSERT ({', '.join(columns)}) VALUES ({', '.join(f's.{c}' for c in columns)})"
        if delete_column is None:
            return (
                f"MERGE INTO {name} AS t USING ({source}) AS s ON {on} "
                f"WHEN MATCHED THEN UPDATE SET {updates} WHEN NOT MATCHED THEN {insert}"
            )
        flag = f"COALESCE(s.{delete_column}, FALSE)"
        return (
            f"MERGE INTO {name} AS t USING ({source}) AS s ON {on} "
            f"WHEN MATCHED AND {flag} THEN DELETE "
            f"WHEN MATCHED THEN UPDATE SET {updates} "
            f"WHEN NOT MATCHED AND NOT {flag} THEN {insert}"
        )

    def replace_rows(
        self,
        name: str,
        select_sql: str,
        *,
        where: str | None,
        params: Mapping[str, Any] | None = None,
    ) -> WriteResult:
        self.ensure_table(name)
        select = self._prepare(select_sql, params)
        return self._statements(name, self.replace_statements(name, select, where))

    def merge_rows(
        self,
        name: str,
        source_sql: str,
        *,
        key: Sequence[str],
        delete_column: str | None = None,
        scope: str | None,
        params: Mapping[str, Any] | None = None,
    ) -> WriteResult:
        self.ensure_table(name)
        source = self._prepare(source_sql, params)
        statement = self.merge_statement(name, source, key, delete_column, scope)
        return self._statements(name, [statement])

    def append_rows(
        self, name: str, select_sql: str, params: Mapping[str, Any] | None = None
    ) -> WriteResult:
        self.ensure_table(name)
        select = self._prepare(select_sql, params)
        return self._statements(name, self.insert_statements(name, select, None))

    def maintenance_statements(
        self, name: str, *, older_than: dt.datetime, retain_last: int
    ) -> list[str]:
        """Snapshot retention as VACUUM's table properties, OPTIMIZE BIN_PACK, then VACUUM."""
        age = max(int((dt.datetime.now(dt.UTC) - older_than).total_seconds()), 0)
        return [
            # VACUUM expires snapshots older than vacuum_max_snapshot_age_seconds beyond
            # vacuum_min_snapshots_to_keep, then removes orphan files: Athena "VACUUM" page.
            f"ALTER TABLE {name} SET TBLPROPERTIES ("
            f"'vacuum_max_snapshot_age_seconds'='{age}', "
            f"'vacuum_min_snapshots_to_keep'='{max(retain_last, 1)}')",
            # Athena "OPTIMIZE" page: OPTIMIZE table REWRITE DATA USING BIN_PACK.
            f"OPTIMIZE {name} REWRITE DATA USING BIN_PACK",
            f"VACUUM {name}",
        ]

    def snapshot_id(self, name: str) -> int | None:
        # Athena "Query Iceberg table metadata": "table$snapshots" lists committed_at, snapshot_id.
        row = self._execute(
            f'SELECT snapshot_id FROM "{name}$snapshots" ORDER BY committed_at DESC LIMIT 1'
        ).fetchone()
        return int(row[0]) if row else None

    def snapshot_ids(self, name: str) -> set[int]:
        rows = self._execute(f'SELECT snapshot_id FROM "{name}$snapshots"').fetchall()
        return {int(row[0]) for row in rows}

    def row_count(self, name: str) -> int:
        # Athena "Query Iceberg table metadata": "table$snapshots" has summary, a map of the
        # snapshot's figures; Athena's MERGE and DELETE write position deletes, counted there.
        row = self._execute(
            "SELECT element_at(summary, 'total-records'), "
            "element_at(summary, 'total-position-deletes') "
            f'FROM "{name}$snapshots" ORDER BY committed_at DESC LIMIT 1'
        ).fetchone()
        return live_rows(*(row or (None, None)))

    def _counts(self, name: str) -> tuple[int, int]:
        """(data files, snapshots) of an Iceberg table, from its $files / $snapshots tables."""
        # Athena "Query Iceberg table metadata": "table$files", "table$snapshots".
        files = self._execute(f'SELECT COUNT(*) FROM "{name}$files"').fetchone()[0]
        snapshots = self._execute(f'SELECT COUNT(*) FROM "{name}$snapshots"').fetchone()[0]
        return int(files), int(snapshots)

    def maintain(
        self, name: str, *, older_than: dt.datetime, retain_last: int
    ) -> MaintenanceResult:
        files_before, snapshots_before = self._counts(name)
        done = self._statements(
            name,
            self.maintenance_statements(name, older_than=older_than, retain_last=retain_last),
        )
        files_after, snapshots_after = self._counts(name)
        return MaintenanceResult(
            table=name,
            data_files_before=files_before,
            data_files_after=files_after,
            snapshots_before=snapshots_before,
            snapshots_after=snapshots_after,
            query_ids=done.query_ids,
        )
