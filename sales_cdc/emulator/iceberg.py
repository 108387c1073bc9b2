"""Apache Iceberg tables of the Glue catalog, written and read through pyiceberg (the embedded lake).

The embedded engine computes rows with DuckDB and commits them here: every write is one Iceberg
commit (one snapshot), so a reader sees a table before or after a write, never half of it.
Athena-dialect pieces are translated with sqlglot: a table's DDL (sql/<table>.ddl.sql) becomes
an Iceberg schema with an identity partition spec, and SQL predicates become pyiceberg row
filters (so a scan reads only the data files whose partition or column statistics can match).
"""

from __future__ import annotations

import datetime as dt
import decimal
import itertools
import random
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import pyarrow as pa
import sqlglot
from pyiceberg import expressions as ice
from pyiceberg.exceptions import CommitFailedException, NoSuchTableError
from pyiceberg.manifest import ManifestContent, ManifestFile
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Table, TableProperties
from pyiceberg.table.snapshots import Operation
from pyiceberg.table.update.snapshot import (
    UpdateSnapshot,
    _FastAppendFiles,
    _ManifestMergeManager,
    _OverwriteFiles,
)
from pyiceberg.transforms import IdentityTransform, Transform, TruncateTransform
from pyiceberg.types import (
    BinaryType,
    BooleanType,
    DateType,
    DecimalType,
    DoubleType,
    FloatType,
    IcebergType,
    IntegerType,
    LongType,
    NestedField,
    StringType,
    TimestampType,
)
from sqlglot import exp

COMMIT_ATTEMPTS = 8
# A commit merges the table's data manifests into one once there are this many (Iceberg's
# commit.manifest.min-count-to-merge, whose default is 100).
MANIFEST_MERGE_COUNT = 8
PARTITION_FIELD_ID_START = 1000

_TYPES: dict[exp.DataType.Type, IcebergType] = {
    exp.DataType.Type.TEXT: StringType(),
    exp.DataType.Type.VARCHAR: StringType(),
    exp.DataType.Type.CHAR: StringType(),
    exp.DataType.Type.BIGINT: LongType(),
    exp.DataType.Type.INT: IntegerType(),
    exp.DataType.Type.SMALLINT: IntegerType(),
    exp.DataType.Type.TINYINT: IntegerType(),
    exp.DataType.Type.DOUBLE: DoubleType(),
    exp.DataType.Type.FLOAT: FloatType(),
    exp.DataType.Type.BOOLEAN: BooleanType(),
    exp.DataType.Type.DATE: DateType(),
    exp.DataType.Type.TIMESTAMP: TimestampType(),
    exp.DataType.Type.BINARY: BinaryType(),
    exp.DataType.Type.VARBINARY: BinaryType(),
}


class ObjectStore(Protocol):
    """Listing and deleting the objects under a table's location (orphan-file removal)."""

    def list(self, uri: str) -> list[tuple[str, int, int]]:
        """(uri, size, last modified as epoch milliseconds) of every object under `uri`."""
        ...

    def delete(self, uri: str) -> None: ...


class IcebergError(RuntimeError):
    """An Iceberg table cannot be created, read or written; the message says which and why."""


@dataclass
class TableDefinition:
    """What a CREATE TABLE statement of sql/<table>.ddl.sql declares."""

    name: str
    schema: Schema
    partition_spec: PartitionSpec
    location: str | None
    properties: dict[str, str]


@dataclass
class Committed:
    """What one commit wrote."""

    rows: int
    files_written: int
    bytes_written: int
    files_removed: int = 0
    snapshot_id: int | None = None


# What a write commits: one Arrow table, or a stream of them (written one chunk at a time).
Rows = pa.Table | Iterable[pa.Table]


@dataclass
class Written:
    """Data files written for a commit, and their rows."""

    rows: int = 0
    files: list[Any] = field(default_factory=list)


@dataclass
class Maintained:
    """Data files and snapshots of a table before and after maintenance."""

    data_files_before: int
    data_files_after: int
    snapshots_before: int
    snapshots_after: int
    files_deleted: int
    bytes_deleted: int


def _iceberg_type(data_type: exp.DataType, column: str) -> IcebergType:
    if data_type.this == exp.DataType.Type.DECIMAL:
        params = [int(p.this.this) for p in data_type.expressions]
        precision, scale = (params + [10, 0])[:2] if params else (10, 0)
        return DecimalType(precision, scale)
    found = _TYPES.get(data_type.this)
    if found is None:
        raise IcebergError(
            f"Column {column} has type {data_type.sql('athena')}, which the embedded Iceberg "
            f"tables do not support; use one of string, bigint, int, double, boolean, date, "
            "timestamp, decimal(p,s)."
        )
    return found


def _partition_field(partition: exp.Expression, table: str) -> tuple[str, Transform, str]:
    """The source column, transform and field name of one PARTITIONED BY entry: a column
    (identity) or `truncate(L, column)` (Athena's Iceberg partition transforms, "Creating Iceberg
    tables" in the Athena User Guide; a string column is cut to its first L characters)."""
    if isinstance(partition, exp.PartitionByTruncate):
        column = partition.this.name.lower()
        return column, TruncateTransform(int(partition.expression.name)), f"{column}_trunc"
    if isinstance(partition, (exp.Column, exp.Identifier)):
        return partition.name.lower(), IdentityTransform(), partition.name.lower()
    raise IcebergError(
        f"{table}: the embedded engine partitions by a column or truncate(L, column), not by "
        f"{partition.sql(dialect='athena')}."
    )


def parse_ddl(ddl: str) -> TableDefinition:
    """The table an Athena `CREATE TABLE ... PARTITIONED BY (...) ... TBLPROPERTIES` declares."""
    try:
        tree = sqlglot.parse_one(ddl, read="athena")
    except sqlglot.errors.ParseError as exc:
        raise IcebergError(f"The table DDL is not valid Athena SQL: {exc}") from exc
    if not isinstance(tree, exp.Create) or not isinstance(tree.this, exp.Schema):
        raise IcebergError("The table DDL must be one CREATE TABLE <name> (<columns>) statement.")
    name = tree.this.this.name.lower()
    fields = []
    for i, column in enumerate(tree.this.expressions, start=1):
        if not isinstance(column, exp.ColumnDef):
            continue
        column_name = column.name.lower()
        fields.append(
            NestedField(
                i, column_name, _iceberg_type(column.args["kind"], column_name), required=False
            )
        )
    schema = Schema(*fields)
    location = None
    properties: dict[str, str] = {}
    partition_fields = []
    for prop in (tree.args.get("properties") or exp.Properties()).expressions:
        if isinstance(prop, exp.PartitionedByProperty):
            for j, partition in enumerate(prop.this.expressions):
                column_name, transform, field_name = _partition_field(partition, name)
                source = schema.find_field(column_name)
                partition_fields.append(
                    PartitionField(
                        source_id=source.field_id,
                        field_id=PARTITION_FIELD_ID_START + j,
                        transform=transform,
                        name=field_name,
                    )
                )
        elif isinstance(prop, exp.LocationProperty):
            location = prop.this.this
        elif isinstance(prop, exp.Property):
            properties[prop.name.lower()] = prop.args["value"].name
    if properties.get("table_type", "").upper() != "ICEBERG":
        raise IcebergError(f"The DDL of {name} lacks TBLPROPERTIES ('table_type' = 'ICEBERG').")
    return TableDefinition(
        name=name,
        schema=schema,
        partition_spec=PartitionSpec(*partition_fields),
        location=location,
        properties=properties,
    )


# -- SQL predicates -> row filters --------------------------------------------------------------
def _literal(node: exp.Expression) -> Any:
    if isinstance(node, exp.Paren):
        return _literal(node.this)
    if isinstance(node, exp.Cast):
        return _literal(node.this)
    if isinstance(node, exp.Neg):
        value = _literal(node.this)
        return -value if value is not None and not isinstance(value, str) else None
    if isinstance(node, exp.Literal):
        if node.is_string:
            return node.this
        text = node.this
        return int(text) if text.lstrip("-").isdigit() else decimal.Decimal(text)
    if isinstance(node, exp.Boolean):
        return bool(node.this)
    return None


def to_row_filter(node: exp.Expression, columns: Iterable[str]) -> ice.BooleanExpression | None:
    """The pyiceberg filter equal to an Athena predicate, or None when it has none.

    Translated: `col = lit`, `col IN (lits)`, `col IS [NOT] NULL`, NOT, AND, OR and parentheses
    over the table's columns. Anything else (functions, joins' columns, subqueries) is None.
    """
    known = {c.lower() for c in columns}

    def column_of(expression: exp.Expression) -> str | None:
        if isinstance(expression, exp.Column) and expression.name.lower() in known:
            return expression.name.lower()
        return None

    def convert(n: exp.Expression) -> ice.BooleanExpression | None:
        if isinstance(n, exp.Paren):
            return convert(n.this)
        if isinstance(n, exp.And | exp.Or):
            left, right = convert(n.this), convert(n.expression)
            if left is None or right is None:
                return None
            return ice.And(left, right) if isinstance(n, exp.And) else ice.Or(left, right)
        if isinstance(n, exp.Not):
            inner = convert(n.this)
            return None if inner is None else ice.Not(inner)
        if isinstance(n, exp.EQ):
            left, right = n.this, n.expression
            if column_of(right) and not column_of(left):
                left, right = right, left
            column, value = column_of(left), _literal(right)
            if column is None or value is None:
                return None
            return ice.EqualTo(column, value)
        if isinstance(n, exp.In) and not n.args.get("query"):
            column = column_of(n.this)
            values = [_literal(e) for e in n.expressions]
            if column is None or not values or any(v is None for v in values):
                return None
            return ice.In(column, values)
        if isinstance(n, exp.Is) and isinstance(n.expression, exp.Null):
            column = column_of(n.this)
            return None if column is None else ice.IsNull(column)
        if isinstance(n, exp.Boolean):
            return ice.AlwaysTrue() if n.this else ice.AlwaysFalse()
        return None

    return convert(node)


def parse_predicate(sql: str) -> exp.Expression:
    """An Athena boolean expression (`order_date = '2026-01-01' OR order_date IS NULL`)."""
    try:
        return sqlglot.parse_one(sql, read="athena")
    except sqlglot.errors.ParseError as exc:
        raise IcebergError(f"{sql!r} is not a valid Athena predicate: {exc}") from exc


class IcebergTables:
    """The Iceberg tables of one Glue database, through a pyiceberg GlueCatalog.

    A table's metadata file is read once and kept: loading a table again asks Glue for its
    metadata location only (one GetTable) and reads the file again only when another writer
    committed since; a commit made here keeps the table it produced. So a run that reads and
    writes a table several times reads its metadata once, and every read still sees the table's
    current state.
    """

    def __init__(self, catalog: Any, database: str) -> None:
        self.catalog = catalog
        self.database = database
        self._known: dict[str, Any] = {}  # name -> the table as last loaded or committed here
        self._lock = threading.Lock()

    def _identifier(self, name: str) -> str:
        return f"{self.database}.{name}"

    def _missing(self, name: str) -> IcebergError:
        return IcebergError(
            f"Iceberg table {self.database}.{name} does not exist: materialize the asset "
            "that writes it (its DDL is sql/<table>.ddl.sql)."
        )

    def load(self, name: str) -> Any:
        """`name` as the catalog holds it now (one Glue GetTable; its metadata file is read only
        when it changed since this object last loaded or committed the table)."""
        glue = self.catalog.glue
        try:
            found = glue.get_table(DatabaseName=self.database, Name=name)["Table"]
        except glue.exceptions.EntityNotFoundException:
            raise self._missing(name) from None
        location = (found.get("Parameters") or {}).get("metadata_location")
        with self._lock:
            known = self._known.get(name)
        if known is not None and location is not None and known.metadata_location == location:
            return known
        try:
            table = self.catalog.load_table(self._identifier(name))
        except NoSuchTableError as exc:
            raise self._missing(name) from exc
        self._remember(name, table)
        return table

    def _remember(self, name: str, table: Any) -> None:
        with self._lock:
            self._known[name] = table

    def exists(self, name: str) -> bool:
        with self._lock:
            if name in self._known:  # loaded or created here: dropping it is teardown's business
                return True
        try:
            self.load(name)
        except IcebergError:
            return False
        return True

    def create(self, definition: TableDefinition, location: str) -> bool:
        """Create the table unless it exists; True when created."""
        if self.exists(definition.name):
            return False
        properties = {
            k: v for k, v in definition.properties.items() if k not in ("table_type", "format")
        }
        properties.setdefault("write.parquet.compression-codec", "snappy")
        # pyiceberg's own retry re-applies a commit's file list to the newer table state: an
        # overwrite would then miss files a concurrent writer added. Retries here start over.
        properties["commit.retry.num-retries"] = "0"
        try:
            table = self.catalog.create_table(
                self._identifier(definition.name),
                schema=definition.schema,
                location=location.rstrip("/"),
                partition_spec=definition.partition_spec,
                properties=properties,
            )
        except Exception as exc:  # a concurrent creator won the race
            if self.exists(definition.name):
                return False
            raise IcebergError(f"Cannot create Iceberg table {definition.name}: {exc}") from exc
        self._remember(definition.name, table)
        return True

    # -- reading ---------------------------------------------------------------------------------
    def _table(self, table: str | Any) -> Any:
        """A table named, loaded now; or the loaded table given (what a caller already holds)."""
        return self.load(table) if isinstance(table, str) else table

    def scan(
        self,
        table: str | Any,
        row_filter: ice.BooleanExpression | None = None,
        snapshot_id: int | None = None,
    ) -> tuple[pa.Table, int, int]:
        """Rows of a table (its current snapshot, or `snapshot_id`) matching `row_filter`; also
        the data files and bytes the scan planned."""
        from pyiceberg.io.pyarrow import ArrowScan

        table = self._table(table)
        if snapshot_id is not None and table.snapshot_by_id(snapshot_id) is None:
            raise IcebergError(
                f"Iceberg table {table.name()[-1]} has no snapshot {snapshot_id} "
                "(expired by maintenance?)"
            )
        row_filter = row_filter if row_filter is not None else ice.AlwaysTrue()
        scan = table.scan(row_filter=row_filter, snapshot_id=snapshot_id)
        tasks = list(scan.plan_files())
        data = ArrowScan(table.metadata, table.io, scan.projection(), row_filter).to_table(tasks)
        data = _plain_types(data)
        return data, len(tasks), sum(t.file.file_size_in_bytes for t in tasks)

    def current_snapshot_id(self, name: str) -> int | None:
        """The id of `name`'s current snapshot (None before its first commit)."""
        snapshot = self.load(name).current_snapshot()
        return snapshot.snapshot_id if snapshot is not None else None

    def row_count(self, name: str) -> int:
        """Rows of `name`'s current snapshot, from its summary (no data read)."""
        snapshot = self.load(name).current_snapshot()
        if snapshot is None or snapshot.summary is None:
            return 0
        # The writes here replace data files (copy on write): no delete files to subtract.
        return int(snapshot.summary["total-records"] or 0)

    def snapshot_ids(self, name: str) -> set[int]:
        """The ids of every snapshot `name` still keeps."""
        return {snapshot.snapshot_id for snapshot in self.load(name).snapshots()}

    def partition_columns(self, table: str | Any) -> list[str]:
        """The columns a table's partitions are computed from, in spec order."""
        table = self._table(table)
        schema = table.schema()
        return [schema.find_column_name(f.source_id) for f in table.spec().fields]

    def arrow_schema(self, table: str | Any) -> pa.Schema:
        from pyiceberg.io.pyarrow import schema_to_pyarrow

        return schema_to_pyarrow(self._table(table).schema(), include_field_ids=False)

    # -- writing ---------------------------------------------------------------------------------
    def conform(self, table: str | Any, data: pa.Table) -> pa.Table:
        """`data` with exactly the table's columns (by name, in order, of its types)."""
        table = self._table(table)
        name = table.name()[-1]
        schema = self.arrow_schema(table)
        present = {c.lower(): c for c in data.column_names}
        missing = [f.name for f in schema if f.name not in present]
        if missing:
            raise IcebergError(
                f"The rows written to {name} lack column(s) {missing}; the SELECT must return "
                f"every column of sql/{name}.ddl.sql ({', '.join(schema.names)})."
            )
        columns = []
        for fld in schema:
            column = data[present[fld.name]]
            try:
                columns.append(column.cast(fld.type))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise IcebergError(
                    f"Column {fld.name} of the rows written to {name} is {column.type}, "
                    f"which does not fit the table's {fld.type}: {exc}"
                ) from exc
        return pa.Table.from_arrays(columns, schema=schema)

    def overwrite(
        self,
        table: str | Any,
        data: Rows,
        where: ice.BooleanExpression,
        properties: dict[str, str] | None = None,
    ) -> Committed:
        """Replace the rows matching `where` by `data` in one commit (one OVERWRITE snapshot).

        Data files whose rows all match are dropped; a file with some matching rows (a filter
        that is not on partition columns) is rewritten without them in the same commit. `data`
        may be a stream of Arrow tables: each is written as it comes, so a write of any size
        holds one chunk in memory.
        """
        return self._commit(table, data, where, properties)

    def append(
        self, table: str | Any, data: Rows, properties: dict[str, str] | None = None
    ) -> Committed:
        """Add `data` in one commit (one APPEND snapshot)."""
        return self._commit(table, data, None, properties)

    def _commit(
        self,
        table: str | Any,
        data: Rows,
        where: ice.BooleanExpression | None,
        properties: dict[str, str] | None,
    ) -> Committed:
        """Write the new data files once, then commit them; a commit that loses the race with a
        concurrent writer is planned again on the newer table state (the files it wrote stay).

        The first attempt commits on the table as given or loaded; the commit itself checks that
        no other writer came in between (Glue's VersionId), and a retry loads the table again.
        """
        commit_uuid = uuid.uuid4()
        counter = itertools.count(0)
        table = self._table(table)
        name = table.name()[-1]
        new = self._write_files(table, data, commit_uuid, counter)
        last: Exception | None = None
        for attempt in range(COMMIT_ATTEMPTS):
            if attempt:
                table = self.load(name)
            # A table of its own: a commit updates the table object it runs on.
            mine = Table(
                table.name(), table.metadata, table.metadata_location, table.io, table.catalog
            )
            try:
                committed = self._commit_once(mine, new, where, properties, commit_uuid, counter)
            except CommitFailedException as exc:  # a concurrent writer committed first
                last = exc
                time.sleep(random.uniform(0.05, 0.2) * (2**attempt))
                continue
            self._remember(name, mine)
            return committed
        raise IcebergError(
            f"Could not commit to {name} after {COMMIT_ATTEMPTS} attempts (concurrent writers): "
            f"{last}"
        )

    def _write_files(
        self, table: Any, data: Rows, commit_uuid: uuid.UUID, counter: itertools.count[int]
    ) -> Written:
        """Write `data` (conformed to the table's columns) as data files of `table`."""
        from pyiceberg.io.pyarrow import _dataframe_to_data_files

        chunks = [data] if isinstance(data, pa.Table) else data
        written = Written()
        for chunk in chunks:
            chunk = self.conform(table, chunk)
            if not chunk.num_rows:
                continue
            written.rows += chunk.num_rows
            written.files.extend(
                _dataframe_to_data_files(
                    table_metadata=table.metadata,
                    df=chunk,
                    io=table.io,
                    write_uuid=commit_uuid,
                    counter=counter,
                )
            )
        return written

    def _commit_once(
        self,
        table: Any,
        new: Written,
        where: ice.BooleanExpression | None,
        properties: dict[str, str] | None,
        commit_uuid: uuid.UUID,
        counter: itertools.count[int],
    ) -> Committed:
        from pyiceberg.expressions.visitors import _StrictMetricsEvaluator
        from pyiceberg.io.pyarrow import ArrowScan

        removed: list[Any] = []
        kept: list[pa.Table] = []
        if where is not None and table.current_snapshot() is not None:
            strict = _StrictMetricsEvaluator(table.schema(), where)
            for task in table.scan(row_filter=where).plan_files():
                removed.append(task.file)
                if not strict.eval(task.file):
                    # Some rows of this file do not match: keep them (rewritten below).
                    rest = ArrowScan(
                        table.metadata, table.io, table.schema(), ice.Not(where)
                    ).to_table([task])
                    if rest.num_rows:
                        kept.append(rest)
        rewritten = self._write_files(table, kept, commit_uuid, counter)
        if not removed and not new.rows:
            return Committed(rows=0, files_written=0, bytes_written=0)
        written = [*new.files, *rewritten.files]
        with table.transaction() as transaction:
            producer = _ManifestMergingUpdate(
                transaction, io=table.io, snapshot_properties=properties or {}
            )
            # A replace is an OVERWRITE snapshot even when the range held no files yet.
            replace = where is not None
            with producer.overwrite(commit_uuid) if replace else producer.fast_append() as snapshot:
                if not replace:
                    snapshot.commit_uuid = commit_uuid
                for data_file in removed:
                    snapshot.delete_data_file(data_file)
                for data_file in written:
                    snapshot.append_data_file(data_file)
        current = table.current_snapshot()
        return Committed(
            rows=new.rows + rewritten.rows,
            files_written=len(written),
            bytes_written=sum(f.file_size_in_bytes for f in written),
            files_removed=len(removed),
            snapshot_id=current.snapshot_id if current else None,
        )

    # -- maintenance -----------------------------------------------------------------------------
    def maintain(
        self, name: str, *, older_than: dt.datetime, retain_last: int, store: ObjectStore
    ) -> Maintained:
        """Compact small files, expire snapshots older than `older_than` beyond the newest
        `retain_last`, then delete the files under the table that no snapshot references."""
        table = self.load(name)
        files_before = len(list(table.scan().plan_files()))
        snapshots_before = len(table.snapshots())
        self._retrying(name, lambda: self._compact(name))
        self._retrying(name, lambda: self._expire(name, older_than, retain_last))
        table = self.load(name)
        cutoff = int(older_than.timestamp() * 1000)
        deleted, size = self._remove_orphans(table, cutoff, store)
        return Maintained(
            data_files_before=files_before,
            data_files_after=len(list(table.scan().plan_files())),
            snapshots_before=snapshots_before,
            snapshots_after=len(table.snapshots()),
            files_deleted=deleted,
            bytes_deleted=size,
        )

    @staticmethod
    def _retrying(name: str, action: Any) -> None:
        """Run a maintenance commit again (on the new table state) when a writer got first."""
        for attempt in range(COMMIT_ATTEMPTS):
            try:
                action()
                return
            except CommitFailedException:
                time.sleep(random.uniform(0.05, 0.2) * (2**attempt))
        raise IcebergError(f"Maintenance of {name} lost {COMMIT_ATTEMPTS} commit races in a row.")

    def _expire(self, name: str, older_than: dt.datetime, retain_last: int) -> None:
        """Expire the snapshots older than `older_than` except the newest `retain_last`."""
        table = self.load(name)
        newest = sorted(table.snapshots(), key=lambda s: -s.timestamp_ms)[: max(retain_last, 1)]
        keep = {s.snapshot_id for s in newest}
        cutoff = int(older_than.timestamp() * 1000)
        expire = [
            s.snapshot_id
            for s in table.snapshots()
            if s.snapshot_id not in keep and s.timestamp_ms < cutoff
        ]
        if expire:
            table.maintenance.expire_snapshots().by_ids(expire).commit()

    def _compact(self, name: str) -> None:
        """Rewrite every partition held in more than one data file as one file (one commit)."""
        table = self.load(name)
        by_partition: dict[Any, list[Any]] = {}
        for task in table.scan().plan_files():
            by_partition.setdefault(task.file.partition, []).append(task)
        small = [tasks for tasks in by_partition.values() if len(tasks) > 1]
        if not small:
            return
        from pyiceberg.io.pyarrow import ArrowScan, _dataframe_to_data_files

        with table.transaction() as transaction:
            snapshot_update = transaction.update_snapshot(
                snapshot_properties={"sales_cdc.operation": "compaction"}
            )
            with snapshot_update.overwrite() as snapshot:
                for tasks in small:
                    rows = ArrowScan(
                        table.metadata, table.io, table.schema(), ice.AlwaysTrue()
                    ).to_table(tasks)
                    for task in tasks:
                        snapshot.delete_data_file(task.file)
                    for data_file in _dataframe_to_data_files(
                        table_metadata=transaction.table_metadata,
                        df=rows,
                        io=table.io,
                        write_uuid=snapshot.commit_uuid,
                    ):
                        snapshot.append_data_file(data_file)

    @staticmethod
    def _referenced(table: Any) -> set[str]:
        """Every file a snapshot or the metadata of `table` references."""
        metadata = table.metadata
        referenced = {table.metadata_location}
        referenced |= {entry.metadata_file for entry in metadata.metadata_log}
        for snapshot in metadata.snapshots:
            referenced.add(snapshot.manifest_list)
            for manifest in snapshot.manifests(table.io):
                referenced.add(manifest.manifest_path)
                for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=False):
                    referenced.add(entry.data_file.file_path)
        for statistics in metadata.statistics:
            referenced.add(statistics.statistics_path)
        return referenced

    def _remove_orphans(self, table: Any, cutoff_ms: int, store: ObjectStore) -> tuple[int, int]:
        """Delete files under the table's location that nothing references, older than cutoff."""
        referenced = self._referenced(table)
        deleted, size = 0, 0
        for uri, object_size, modified_ms in store.list(table.metadata.location):
            if uri in referenced or modified_ms >= cutoff_ms:
                continue
            store.delete(uri)
            deleted += 1
            size += object_size
        return deleted, size


class _MergesManifests:
    """A snapshot producer that merges the data manifests once there are MANIFEST_MERGE_COUNT.

    pyiceberg's fast append and overwrite add one manifest per commit and keep every older one,
    and planning a scan reads them all: a table the demo merges into a few times a minute was
    planned from over a hundred manifests by its next hourly maintenance, each run slower than
    the last.
    Iceberg's Java writers merge manifests on append and overwrite alike (MergingSnapshotProducer);
    this is pyiceberg's own merge (the one its merge_append uses), on both.
    """

    def _process_manifests(self, manifests: list[ManifestFile]) -> list[ManifestFile]:
        data = [m for m in manifests if m.content == ManifestContent.DATA]
        deletes = [m for m in manifests if m.content != ManifestContent.DATA]
        merger = _ManifestMergeManager(
            target_size_bytes=TableProperties.MANIFEST_TARGET_SIZE_BYTES_DEFAULT,
            min_count_to_merge=MANIFEST_MERGE_COUNT,
            merge_enabled=True,
            snapshot_producer=self,  # type: ignore[arg-type]
        )
        return merger.merge_manifests(data) + deletes


class _MergingAppend(_MergesManifests, _FastAppendFiles):
    pass


class _MergingOverwrite(_MergesManifests, _OverwriteFiles):
    pass


class _ManifestMergingUpdate(UpdateSnapshot):
    """pyiceberg's UpdateSnapshot whose appends and overwrites merge manifests."""

    def fast_append(self) -> _MergingAppend:
        return _MergingAppend(
            operation=Operation.APPEND,
            transaction=self._transaction,
            io=self._io,
            branch=self._branch,
            snapshot_properties=self._snapshot_properties,
        )

    def overwrite(self, commit_uuid: uuid.UUID | None = None) -> _MergingOverwrite:
        first = self._transaction.table_metadata.snapshot_by_name(name=self._branch) is None
        return _MergingOverwrite(
            commit_uuid=commit_uuid,
            operation=Operation.APPEND if first else Operation.OVERWRITE,
            transaction=self._transaction,
            io=self._io,
            branch=self._branch,
            snapshot_properties=self._snapshot_properties,
        )


def _plain_types(data: pa.Table) -> pa.Table:
    """Large Arrow string/binary types as their plain kind (what the Parquet tables read as)."""
    fields = []
    for fld in data.schema:
        if pa.types.is_large_string(fld.type):
            fields.append(pa.field(fld.name, pa.string()))
        elif pa.types.is_large_binary(fld.type):
            fields.append(pa.field(fld.name, pa.binary()))
        else:
            fields.append(pa.field(fld.name, fld.type))
    schema = pa.schema(fields)
    return data if schema == data.schema else data.cast(schema)
