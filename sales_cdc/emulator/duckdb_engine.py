"""Athena's stand-in: Athena SQL run by an in-process DuckDB over the tables of the Glue catalog.

A query is parsed in Athena's dialect (sqlglot), every table it names is resolved through the Glue
catalog (location, columns, partition keys, SerDe) and read from S3 with pyarrow: JSON (GZIP or
plain, told apart by content) with an explicit schema built from the cataloged Hive types (a column a
file lacks is NULL, types are the cataloged ones; an object with a malformed line or a value of
another type is read line by line as the JSON SerDe reads it), Parquet as Parquet. Partitions are pruned by the query's equality / IN filters on
partition columns, so a per-day query reads only that day's objects. The data is registered into
DuckDB under the table's name and the query, transpiled to DuckDB's dialect, runs there.

Writes are Parquet under `<curated>/<table>/<run id>/<key>=<value>/`, a fresh folder per run; the
Glue table (or the replaced partitions) is switched to it only once every file is written, and the
previous files are deleted after the switch. A failure while writing leaves the table as it was.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import datetime as dt
import decimal
import functools
import json
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import duckdb
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.json as pajson
import pyarrow.parquet as pq
import sqlglot
from pyiceberg import expressions as ice
from sqlglot import exp

from sales_cdc import hive_types
from sales_cdc.emulator.iceberg import (
    Committed,
    IcebergError,
    IcebergTables,
    Maintained,
    ObjectStore,
    parse_ddl,
    parse_predicate,
    to_row_filter,
)
from sales_cdc.landing_format import (
    GZIP_MAGIC,
    UnreadableObject,
    partition_values,
    read_json_lines,
)

JSON_SERDES = ("org.openx.data.jsonserde.JsonSerDe", "org.apache.hive.hcatalog.data.JsonSerDe")
READ_THREADS = 4
# DuckDB's memory for one query; beyond it, it spills to disk (a full rebuild of any size fits).
MEMORY_LIMIT = "1GB"
WRITE_CHUNK_ROWS = 250_000  # rows per chunk written to an Iceberg table
HIVE_DEFAULT_PARTITION = "__HIVE_DEFAULT_PARTITION__"
# Athena's pseudo-column: the s3:// URI of the object a row was read from.
PATH_COLUMN = "$path"


class EngineError(RuntimeError):
    """A query cannot run on the embedded engine; the message says which table or file and why."""


class Catalog(Protocol):
    """What the engine needs of the Glue catalog (sales_cdc.resources.lake_catalog.LakeCatalog)."""

    def get_table(self, name: str) -> dict[str, Any] | None: ...

    def get_partitions(self, name: str) -> list[dict[str, Any]]: ...

    def get_partitions_of(
        self, name: str, values: Iterable[Sequence[str]]
    ) -> list[dict[str, Any]]: ...


# -- Hive <-> Arrow types -------------------------------------------------------------------
def hive_to_arrow(hive_type: str) -> pa.DataType:
    """The Arrow type of a Glue/Hive column type (string, bigint, decimal(38,6), struct<...>…)."""
    try:
        return hive_types.hive_to_arrow(hive_type)
    except hive_types.HiveTypeError as exc:
        raise EngineError(f"The embedded engine cannot read column type: {exc}") from None


def _json_text(value: Any) -> str:
    """A JSON value as the text a string column shows (the JSON SerDe keeps the literal)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | decimal.Decimal):
        return str(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


_WIDE = decimal.Context(prec=80)  # room for 38 digits and any scale while rounding


def _coerce(value: Any, data_type: pa.DataType) -> Any:
    """A parsed JSON value as a Python value of `data_type`; ValueError when it has none."""
    if value is None:
        return None
    if pa.types.is_string(data_type):
        return _json_text(value)
    if pa.types.is_list(data_type) or pa.types.is_large_list(data_type):
        if not isinstance(value, list):
            raise ValueError("not a JSON array")
        return [_value(item, data_type.value_type) for item in value]  # element by element
    if pa.types.is_struct(data_type):
        if not isinstance(value, dict):
            raise ValueError("not a JSON object")
        members = {str(k).lower(): v for k, v in value.items()}
        return {f.name: _value(members.get(f.name.lower()), f.type) for f in data_type}
    if pa.types.is_map(data_type):
        if not isinstance(value, dict):
            raise ValueError("not a JSON object")
        return [
            (_value(k, data_type.key_type), _value(v, data_type.item_type))
            for k, v in value.items()
        ]
    if isinstance(value, dict | list):
        raise ValueError("a nested value in a primitive column")
    if pa.types.is_boolean(data_type):
        text = _json_text(value).lower()
        if text not in ("true", "false"):
            raise ValueError(f"{text!r} is not a boolean")
        return text == "true"
    if isinstance(value, bool):
        raise ValueError("a boolean in a numeric column")
    if pa.types.is_integer(data_type):
        number = decimal.Decimal(_json_text(value).strip())
        if number != number.to_integral_value():
            raise ValueError(f"{value!r} is not an integer")
        return int(number)
    if pa.types.is_floating(data_type):
        return float(_json_text(value))
    if pa.types.is_decimal(data_type):
        # Hive's decimal: rounded half up to the column's scale; out of precision -> NULL.
        number = decimal.Decimal(_json_text(value).strip())
        exponent = decimal.Decimal(1).scaleb(-data_type.scale)
        return number.quantize(exponent, rounding=decimal.ROUND_HALF_UP, context=_WIDE)
    return pa.array([value]).cast(data_type)[0].as_py()


def _value(value: Any, data_type: pa.DataType) -> Any:
    """`value` as a Python value `data_type` can hold, or None when it has none."""
    try:
        converted = _coerce(value, data_type)
        pa.array([converted], data_type)  # in range: integer width, decimal precision
    except (ValueError, TypeError, ArithmeticError, pa.ArrowException):
        return None
    return converted


def json_lines_as_table(data: bytes, schema: pa.Schema) -> pa.Table:
    """JSON lines (GZIP or plain) read the way the OpenX JSON SerDe reads them.

    Field names match columns case-insensitively, a value of another type than its column's is
    converted when it can be (a number in a string column keeps its literal, "12.5" in a double
    column is 12.5) and is NULL otherwise, and a line that is not a JSON object is a row of NULLs
    (`ignore.malformed.json`), which the SQL of every table skips (no event_id, no order_id).
    Raises landing_format.UnreadableObject for a broken GZIP stream.
    """
    lines = read_json_lines(data)
    rows = [{str(k).lower(): v for k, v in row.items()} for row in lines.rows]
    rows += [{}] * lines.malformed_lines
    columns = [pa.array([_value(row.get(f.name), f.type) for row in rows], f.type) for f in schema]
    return pa.Table.from_arrays(columns, schema=schema)


def arrow_to_hive(data_type: pa.DataType) -> str:
    """The Glue/Hive column type Athena shows for an Arrow type written to Parquet."""
    if pa.types.is_string(data_type) or pa.types.is_large_string(data_type):
        return "string"
    if pa.types.is_decimal(data_type):
        return f"decimal({data_type.precision},{data_type.scale})"
    if pa.types.is_timestamp(data_type):
        return "timestamp"
    if pa.types.is_list(data_type) or pa.types.is_large_list(data_type):
        return f"array<{arrow_to_hive(data_type.value_type)}>"
    if pa.types.is_struct(data_type):
        inner = ",".join(f"{f.name}:{arrow_to_hive(f.type)}" for f in data_type)
        return f"struct<{inner}>"
    names = {
        pa.int64(): "bigint",
        pa.int32(): "int",
        pa.int16(): "smallint",
        pa.int8(): "tinyint",
        pa.float64(): "double",
        pa.float32(): "float",
        pa.bool_(): "boolean",
        pa.date32(): "date",
        pa.binary(): "binary",
    }
    if data_type in names:
        return names[data_type]
    if pa.types.is_null(data_type):
        return "string"
    raise EngineError(f"Arrow type {data_type} has no Hive type the catalog could hold.")


def fs_path(uri: str) -> str:
    """The pyarrow filesystem path of a catalog location (s3://b/k -> b/k, file:///p -> /p)."""
    if uri.startswith("s3://") or uri.startswith("s3a://"):
        return uri.split("://", 1)[1].rstrip("/")
    if uri.startswith("file://"):
        return uri[len("file://") :].rstrip("/") or "/"
    raise EngineError(f"Location {uri!r} is neither s3:// nor file://.")


def _uri(path: str, scheme: str) -> str:
    """The "$path" value of a filesystem path (b/k -> s3://b/k)."""
    return f"file://{path}" if scheme == "file" else f"{scheme}://{path}"


@dataclass
class ReadStats:
    """What one query read: objects and their sizes (the figure Athena bills: DataScannedInBytes)."""

    bytes_scanned: int = 0
    files: int = 0


@dataclass
class IcebergWrite:
    """What one Iceberg write committed and what computing it read."""

    committed: Committed
    bytes_scanned: int
    inserted: int = 0
    updated: int = 0
    deleted: int = 0


# -- partition pruning ------------------------------------------------------------------------
def _literal_values(node: exp.Expression) -> list[str] | None:
    if isinstance(node, exp.Literal):
        return [node.this]
    if isinstance(node, exp.Cast) and isinstance(node.this, exp.Literal):
        return [node.this.this]
    return None


def partition_filters_of(select: exp.Select) -> dict[str, set[str]]:
    """{column: allowed values} from the AND-ed `col = 'v'` / `col IN (...)` of a WHERE."""
    where = select.args.get("where")
    if where is None:
        return {}
    filters: dict[str, set[str]] = {}
    for conjunct in where.this.flatten() if isinstance(where.this, exp.And) else [where.this]:
        column, values = None, None
        if isinstance(conjunct, exp.EQ):
            left, right = conjunct.this, conjunct.expression
            if isinstance(right, exp.Column):
                left, right = right, left
            if isinstance(left, exp.Column):
                column, values = left.name.lower(), _literal_values(right)
        elif isinstance(conjunct, exp.In) and isinstance(conjunct.this, exp.Column):
            found = [_literal_values(e) for e in conjunct.expressions]
            if found and all(found) and not conjunct.args.get("query"):
                column = conjunct.this.name.lower()
                values = [v for vs in found if vs for v in vs]
        if column and values is not None:
            allowed = set(values)
            filters[column] = filters[column] & allowed if column in filters else allowed
    return filters


def _pruning_for(table: exp.Table) -> dict[str, set[str]]:
    """Filters that may prune `table`: those of the SELECT it is the only source of."""
    select = table.find_ancestor(exp.Select)
    if select is None:
        return {}
    sources = [t for t in select.find_all(exp.Table) if t.find_ancestor(exp.Select) is select]
    if len(sources) != 1 or select.args.get("joins"):
        return {}
    return partition_filters_of(select)


def _predicates_for(table: exp.Table) -> list[exp.Expression]:
    """The AND-ed conjuncts of the WHERE of the SELECT `table` is the only source of (copies)."""
    select = table.find_ancestor(exp.Select)
    if select is None:
        return []
    sources = [t for t in select.find_all(exp.Table) if t.find_ancestor(exp.Select) is select]
    where = select.args.get("where")
    if len(sources) != 1 or select.args.get("joins") or where is None:
        return []
    conjuncts = where.this.flatten() if isinstance(where.this, exp.And) else [where.this]
    return [c.copy() for c in conjuncts]


def _version_of(table: exp.Table) -> int | None:
    """The snapshot id of `FOR VERSION AS OF <id>` on a table reference (None without one)."""
    version = table.args.get("version")
    if version is None:
        return None
    value = version.expression
    if str(version.this).upper() != "VERSION" or not isinstance(value, exp.Literal):
        raise EngineError(f"Only FOR VERSION AS OF <snapshot id> is supported: {version.sql()}")
    try:
        return int(value.this)
    except ValueError:
        raise EngineError(
            f"FOR VERSION AS OF needs a snapshot id (a number): {value.sql()}"
        ) from None


def is_iceberg(table: Mapping[str, Any]) -> bool:
    """Whether a Glue table is an Apache Iceberg table (Parameters table_type=ICEBERG)."""
    return str((table.get("Parameters") or {}).get("table_type", "")).upper() == "ICEBERG"


@dataclass
class Read:
    """One table a query reads: its catalog name, the name DuckDB sees, what may prune it."""

    name: str
    registered: str
    partition_filter: dict[str, set[str]]
    predicates: list[exp.Expression]
    snapshot_id: int | None = None  # `FOR VERSION AS OF` (Iceberg tables)


class DuckDBEngine:
    """Athena SQL over Glue-cataloged S3 data, executed by an in-process DuckDB."""

    def __init__(
        self,
        catalog: Catalog,
        filesystem: pafs.FileSystem,
        read_threads: int = READ_THREADS,
        memory_limit: str = MEMORY_LIMIT,
        iceberg: IcebergTables | None = None,
    ) -> None:
        self.catalog = catalog
        self.filesystem = filesystem
        self.read_threads = read_threads
        self.memory_limit = memory_limit
        # Iceberg tables are read (with row filters pushed down) and written through pyiceberg.
        self.iceberg = iceberg

    # -- reading -------------------------------------------------------------------------------
    def _objects(self, location: str) -> list[pafs.FileInfo]:
        selector = pafs.FileSelector(fs_path(location), allow_not_found=True, recursive=True)
        files = [
            info
            for info in self.filesystem.get_file_info(selector)
            if info.type == pafs.FileType.File
            and info.size
            and not info.base_name.startswith(("_", "."))
        ]
        return sorted(files, key=lambda info: info.path)

    def _objects_at(
        self, uris: Sequence[str], sources: Sequence[tuple[tuple[str, ...], str]]
    ) -> list[tuple[tuple[str, ...], pafs.FileInfo]]:
        """The objects named by "$path" URIs that lie in one of `sources` (partition, location).

        Like Athena, an object outside every listed location (an unregistered partition) is not
        read, and a URI naming no object reads nothing.
        """
        folders = sorted(
            ((fs_path(loc) + "/", values) for values, loc in sources),
            key=lambda item: -len(item[0]),
        )
        wanted: list[tuple[tuple[str, ...], str]] = []
        for uri in uris:
            try:
                path = fs_path(uri)
            except EngineError:
                continue
            for folder, values in folders:
                if path.startswith(folder):
                    wanted.append((values, path))
                    break
        if not wanted:
            return []
        infos = self.filesystem.get_file_info([path for _, path in wanted])
        return [
            (values, info)
            for (values, _), info in zip(wanted, infos, strict=True)
            if info.type == pafs.FileType.File and info.size
        ]

    def _read_json(self, info: pafs.FileInfo, schema: pa.Schema) -> pa.Table:
        """One JSON-lines object as rows of the cataloged schema, GZIP or plain (as Athena reads)."""
        try:
            # compression=None: told apart by content, not by the ".gz" in the name.
            with self.filesystem.open_input_stream(info.path, compression=None) as stream:
                raw = stream.read()
        except OSError as exc:
            raise EngineError(f"Cannot read JSON object {info.path}: {exc}") from exc
        buffer = pa.BufferReader(raw)
        lines = pa.CompressedInputStream(buffer, "gzip") if raw[:2] == GZIP_MAGIC else buffer
        options = pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
        try:
            table = pajson.read_json(lines, parse_options=options).select(schema.names)
            for column in schema.names:  # Arrow does not check decimal precision while reading
                if pa.types.is_decimal(table.schema.field(column).type):
                    table[column].validate(full=True)
            return table
        except (pa.ArrowInvalid, OSError):
            pass
        # A malformed line, a value of another type than the catalog's (a schema change), a
        # number beyond its decimal: read line by line the way the JSON SerDe does.
        try:
            return json_lines_as_table(raw, schema)
        except UnreadableObject as exc:  # truncated or corrupt GZIP: Athena fails such a query
            raise EngineError(f"Cannot read JSON object {info.path}: {exc}") from exc

    def _read_parquet(self, info: pafs.FileInfo, schema: pa.Schema) -> pa.Table:
        table = pq.read_table(info.path, filesystem=self.filesystem)
        columns = []
        for fld in schema:
            if fld.name in table.column_names:
                columns.append(table[fld.name].cast(fld.type))
            else:
                columns.append(pa.nulls(table.num_rows, fld.type))
        return pa.Table.from_arrays(columns, schema=schema)

    def read_parts(
        self,
        name: str,
        partition_filter: Mapping[str, str | Iterable[str]] | None = None,
        optional_columns: Mapping[str, str] | None = None,
        stats: ReadStats | None = None,
        predicates: Sequence[exp.Expression] = (),
        with_path: bool = False,
        snapshot_id: int | None = None,
    ) -> Iterator[pa.Table]:
        """A cataloged table as Arrow tables of one schema (at least one), reading only the
        partitions `partition_filter` allows (Iceberg tables: only the data files the query's
        `predicates` can match).

        Raw tables come one object at a time, a few read ahead, so a reader of any size holds a
        few objects in memory. A filter on the pseudo-column "$path" (s3://bucket/key) reads only
        those objects, without listing the partitions' folders; `with_path` adds "$path".
        """
        table = self.catalog.get_table(name)
        if table is None:
            raise EngineError(
                f"Table {name!r} is not in the Glue catalog. Run the crawler (raw tables) or "
                "materialize the asset that writes it."
            )
        if is_iceberg(table):
            yield self._read_iceberg(name, predicates, optional_columns, stats, snapshot_id)
            return
        if snapshot_id is not None:
            raise EngineError(
                f"FOR VERSION AS OF reads an Iceberg table's snapshot; {name!r} is not Iceberg."
            )
        descriptor = table["StorageDescriptor"]
        columns = [(c["Name"].lower(), c["Type"]) for c in descriptor.get("Columns", [])]
        keys = [k["Name"].lower() for k in table.get("PartitionKeys", [])]
        known = {c for c, _ in columns} | set(keys)
        for column, hive_type in (optional_columns or {}).items():
            if column.lower() not in known:
                columns.append((column.lower(), hive_type))
        schema = pa.schema([pa.field(c, hive_to_arrow(t)) for c, t in columns])

        allowed = {
            k.lower(): {v} if isinstance(v, str) else set(v)
            for k, v in (partition_filter or {}).items()
        }
        paths = allowed.pop(PATH_COLUMN, None)
        if keys:
            # Reading named objects asks the catalog for their partitions only.
            partitions = (
                self.catalog.get_partitions(name)
                if paths is None
                else self.catalog.get_partitions_of(
                    name,
                    {
                        v
                        for v in (partition_values(p, descriptor["Location"], keys) for p in paths)
                        if v is not None
                    },
                )
            )
            sources = [(tuple(p["Values"]), p["StorageDescriptor"]["Location"]) for p in partitions]
            sources = [
                (values, loc)
                for values, loc in sources
                if all(values[i] in allowed[k] for i, k in enumerate(keys) if k in allowed)
            ]
        else:
            sources = [((), descriptor["Location"])]

        serde = (descriptor.get("SerdeInfo") or {}).get("SerializationLibrary", "")
        parameters = table.get("Parameters") or {}
        is_json = serde in JSON_SERDES or parameters.get("classification") == "json"
        if not is_json and "parquet" not in serde.lower() + parameters.get("classification", ""):
            raise EngineError(
                f"Table {name!r} has SerDe {serde!r}: only JSON and Parquet are read."
            )

        if paths is None:
            work = [(values, info) for values, loc in sources for info in self._objects(loc)]
        else:
            work = self._objects_at(sorted(paths), sources)

        def read(item: tuple[tuple[str, ...], pafs.FileInfo]) -> pa.Table:
            values, info = item
            data = self._read_json(info, schema) if is_json else self._read_parquet(info, schema)
            for key, value in zip(keys, values, strict=True):
                value = None if value == HIVE_DEFAULT_PARTITION else value
                data = data.append_column(key, pa.array([value] * data.num_rows, pa.string()))
            if with_path:
                uri = _uri(info.path, location_scheme)
                data = data.append_column(PATH_COLUMN, pa.array([uri] * data.num_rows, pa.string()))
            return data

        location_scheme = descriptor["Location"].split("://", 1)[0]

        if stats is not None:
            stats.bytes_scanned += sum(info.size for _, info in work)
            stats.files += len(work)
        if not work:
            full_schema = schema
            for key in keys:
                full_schema = full_schema.append(pa.field(key, pa.string()))
            if with_path:
                full_schema = full_schema.append(pa.field(PATH_COLUMN, pa.string()))
            yield full_schema.empty_table()
            return
        with concurrent.futures.ThreadPoolExecutor(self.read_threads) as pool:
            ahead: collections.deque[concurrent.futures.Future[pa.Table]] = collections.deque()
            for item in work:
                ahead.append(pool.submit(read, item))
                if len(ahead) > 2 * self.read_threads:
                    yield ahead.popleft().result()
            while ahead:
                yield ahead.popleft().result()

    def _tables(self) -> IcebergTables:
        if self.iceberg is None:
            raise EngineError("This engine has no Iceberg catalog to read or write Iceberg tables.")
        return self.iceberg

    def _load(self, name: str) -> Any:
        """Iceberg table `name` as the catalog holds it now."""
        try:
            return self._tables().load(name)
        except IcebergError as exc:
            raise EngineError(str(exc)) from exc

    def _read_iceberg(
        self,
        name: str,
        predicates: Sequence[exp.Expression],
        optional_columns: Mapping[str, str] | None,
        stats: ReadStats | None,
        snapshot_id: int | None = None,
    ) -> pa.Table:
        """An Iceberg table's rows (its current snapshot, or `snapshot_id`), scanning only what
        the AND-ed `predicates` can match."""
        tables = self._tables()
        try:
            table = tables.load(name)
            columns = tables.arrow_schema(table).names
            filters = [f for f in (to_row_filter(p, columns) for p in predicates) if f is not None]
            row_filter = functools.reduce(ice.And, filters) if filters else ice.AlwaysTrue()
            data, files, size = tables.scan(table, row_filter, snapshot_id)
        except IcebergError as exc:
            raise EngineError(str(exc)) from exc
        for column, hive_type in (optional_columns or {}).items():
            if column.lower() not in data.column_names:
                data = data.append_column(
                    column.lower(), pa.nulls(data.num_rows, hive_to_arrow(hive_type))
                )
        if stats is not None:
            stats.bytes_scanned += size
            stats.files += files
        return data

    # -- querying ------------------------------------------------------------------------------
    def transpile(self, sql: str) -> tuple[str, list[Read]]:
        """DuckDB SQL for Athena SQL, and the tables it reads (with what may prune them).

        A read's partition filter may hold "$path" (an equality / IN on the pseudo-column prunes
        the objects read).
        """
        try:
            tree = sqlglot.parse_one(sql, read="athena")
        except sqlglot.errors.ParseError as exc:
            raise EngineError(f"The query is not valid Athena SQL: {exc}") from exc
        ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
        reads: list[Read] = []
        for i, table in enumerate(list(tree.find_all(exp.Table))):
            name = table.name.lower()
            if not name or (name in ctes and not table.db):
                continue
            registered = f"__t{i}_{name}"
            pruning, predicates = _pruning_for(table), _predicates_for(table)
            reads.append(Read(name, registered, pruning, predicates, _version_of(table)))
            alias = table.alias or name
            table.replace(exp.to_table(registered).as_(alias))
        return tree.sql(dialect="duckdb"), reads

    @contextlib.contextmanager
    def _relation(
        self,
        sql: str,
        optional_columns: Mapping[str, Mapping[str, str]] | None = None,
        partition_filters: Mapping[str, Mapping[str, str | Iterable[str]]] | None = None,
    ) -> Iterator[tuple[duckdb.DuckDBPyRelation, ReadStats]]:
        """One Athena SQL statement as a DuckDB relation (fetch it inside the block), and what it
        read. The tables it reads are copied into DuckDB as they are read; beyond
        `memory_limit` DuckDB spills to a private temporary directory, so a query over any
        number of landing objects runs in bounded memory."""
        duck_sql, reads = self.transpile(sql)
        with_path = f'"{PATH_COLUMN}"' in duck_sql  # the query names the pseudo-column
        stats = ReadStats()
        spill = tempfile.mkdtemp(prefix="sales-cdc-duckdb-")
        # Athena cannot touch the machine it runs on: no local files (COPY, read_*, ATTACH),
        # no extensions to install or load, and the query cannot change that back.
        connection = duckdb.connect(
            config={
                "enable_external_access": False,
                "autoinstall_known_extensions": False,
                "autoload_known_extensions": False,
                "memory_limit": self.memory_limit,
                "temp_directory": spill,
            }
        )
        try:
            connection.execute("SET TimeZone = 'UTC'")
            connection.execute("SET lock_configuration = true")
            for read in reads:
                wanted = {k: set(v) for k, v in read.partition_filter.items()}
                for key, values in ((partition_filters or {}).get(read.name) or {}).items():
                    extra = {values} if isinstance(values, str) else set(values)
                    wanted[key] = wanted[key] & extra if key in wanted else extra
                parts = self.read_parts(
                    read.name,
                    wanted,
                    (optional_columns or {}).get(read.name),
                    stats=stats,
                    predicates=read.predicates,
                    with_path=with_path,
                    snapshot_id=read.snapshot_id,
                )
                for i, part in enumerate(parts):
                    connection.register("__part", part)
                    verb = "CREATE TABLE {} AS" if i == 0 else "INSERT INTO {}"
                    connection.execute(f"{verb.format(read.registered)} SELECT * FROM __part")
                    connection.unregister("__part")
            try:
                yield connection.sql(duck_sql), stats
            except duckdb.Error as exc:
                raise EngineError(f"DuckDB could not run the query: {exc}\n{duck_sql}") from exc
        finally:
            connection.close()
            shutil.rmtree(spill, ignore_errors=True)

    def query_arrow(
        self,
        sql: str,
        optional_columns: Mapping[str, Mapping[str, str]] | None = None,
        partition_filters: Mapping[str, Mapping[str, str | Iterable[str]]] | None = None,
    ) -> tuple[pa.Table, ReadStats]:
        """Run one Athena SQL statement; its result as Arrow and what it read."""
        with self._relation(sql, optional_columns, partition_filters) as (relation, stats):
            return relation.to_arrow_table(), stats

    def _chunks(self, relation: duckdb.DuckDBPyRelation, table: Any) -> Iterator[pa.Table]:
        """The relation's rows for the loaded Iceberg table `table`, in chunks, ordered by its
        partition columns (so each chunk writes few partitions and a partition few files)."""
        columns = self._tables().partition_columns(table)
        if columns:
            relation = relation.order(", ".join(f'"{c}"' for c in columns))
        for batch in relation.to_arrow_reader(WRITE_CHUNK_ROWS):
            yield pa.Table.from_batches([batch])

    # -- Iceberg tables ------------------------------------------------------------------------
    def ensure_table(self, ddl: str, location: str) -> bool:
        """Create the Iceberg table an Athena CREATE TABLE declares unless it exists."""
        try:
            return self._tables().create(parse_ddl(ddl), location)
        except IcebergError as exc:
            raise EngineError(str(exc)) from exc

    def _row_filter(self, table: Any, predicate: str | None) -> ice.BooleanExpression:
        """The exact pyiceberg filter of an Athena predicate on the loaded table's columns."""
        if predicate is None:
            return ice.AlwaysTrue()
        name = table.name()[-1]
        columns = self._tables().arrow_schema(table).names
        found = to_row_filter(parse_predicate(predicate), columns)
        if found is None:
            raise EngineError(
                f"{predicate!r} is not a predicate the embedded engine can apply to {name}: use "
                "=, IN, IS NULL, NOT, AND, OR over its columns and literals."
            )
        return found

    def replace_rows(
        self,
        name: str,
        select_sql: str,
        where: str | None,
        optional_columns: Mapping[str, Mapping[str, str]] | None = None,
    ) -> IcebergWrite:
        """Replace the rows of `name` matching `where` (None: all) by the SELECT's, one commit."""
        tables = self._tables()
        table = self._load(name)
        row_filter = self._row_filter(table, where)
        with self._relation(select_sql, optional_columns) as (relation, stats):
            try:
                committed = tables.overwrite(table, self._chunks(relation, table), row_filter)
            except IcebergError as exc:
                raise EngineError(str(exc)) from exc
        return IcebergWrite(committed, stats.bytes_scanned)

    def append_rows(
        self,
        name: str,
        select_sql: str,
        optional_columns: Mapping[str, Mapping[str, str]] | None = None,
    ) -> IcebergWrite:
        """Add the SELECT's rows to `name` in one commit."""
        tables = self._tables()
        table = self._load(name)
        with self._relation(select_sql, optional_columns) as (relation, stats):
            try:
                committed = tables.append(table, self._chunks(relation, table))
            except IcebergError as exc:
                raise EngineError(str(exc)) from exc
        return IcebergWrite(committed, stats.bytes_scanned)

    def merge_rows(
        self,
        name: str,
        source_sql: str,
        key: Sequence[str],
        delete_column: str | None,
        scope: str | None,
        optional_columns: Mapping[str, Mapping[str, str]] | None = None,
    ) -> IcebergWrite:
        """Upsert the source rows into `name` by `key`; a source row whose `delete_column` (if
        any) is true deletes the target row instead. Like Athena's MERGE INTO: only target rows in
        `scope` can match, a target row matched by two source rows is an error; locally the
        scope is read, merged in DuckDB and overwritten in one commit."""
        tables = self._tables()
        source, stats = self.query_arrow(source_sql, optional_columns)
        table = self._load(name)
        scope_filter = self._row_filter(table, scope)
        keys = [k.lower() for k in key]
        flag = delete_column.lower() if delete_column else None
        missing = [c for c in [*keys, flag] if c and c not in source.column_names]
        if missing:
            raise EngineError(f"The merge source for {name} lacks column(s) {missing}.")
        try:
            target, _, size = tables.scan(table, scope_filter)
            columns = tables.arrow_schema(table).names
        except IcebergError as exc:
            raise EngineError(str(exc)) from exc
        stats.bytes_scanned += size
        on = " AND ".join(f't."{k}" = s."{k}"' for k in keys)
        listed = ", ".join(f's."{c}"' for c in columns)
        connection = duckdb.connect()
        try:
            connection.execute("SET TimeZone = 'UTC'")
            connection.register("merge_source", source)
            connection.register("merge_target", target)
            twice = connection.sql(
                f"SELECT {', '.join(keys)}, COUNT(*) AS n FROM merge_source "
                f"GROUP BY ALL HAVING COUNT(*) > 1 LIMIT 1"
            ).fetchall()
            if twice:
                raise EngineError(
                    f"MERGE into {name}: the source has key {list(twice[0][:-1])} "
                    f"{twice[0][-1]} times; one source row per {keys} is allowed."
                )
            deleting = f"COALESCE(s.{flag}, FALSE)" if flag else "FALSE"
            counts = connection.sql(
                f"SELECT "
                f"COUNT(*) FILTER (WHERE t.matched AND {deleting}) AS deleted, "
                f"COUNT(*) FILTER (WHERE t.matched AND NOT {deleting}) AS updated,"
                f" COUNT(*) FILTER (WHERE t.matched IS NULL AND NOT {deleting})"
                f" AS inserted "
                f"FROM merge_source AS s LEFT JOIN "
                f"(SELECT DISTINCT {', '.join(keys)}, TRUE AS matched FROM merge_target) AS t "
                f"ON {on}"
            ).fetchall()[0]
            merged = connection.sql(
                f"SELECT t.* FROM merge_target AS t WHERE NOT EXISTS "
                f"(SELECT 1 FROM merge_source AS s WHERE {on}) "
                f"UNION ALL BY NAME "
                f"SELECT {listed} FROM merge_source AS s WHERE NOT {deleting}"
            ).to_arrow_table()
        except duckdb.Error as exc:
            raise EngineError(f"DuckDB could not merge into {name}: {exc}") from exc
        finally:
            connection.close()
        deleted, updated, inserted = (int(v or 0) for v in counts or (0, 0, 0))
        if not (deleted or updated or inserted):
            # No source row matches a stored one or adds one: the table stays as it is.
            return IcebergWrite(
                Committed(rows=0, files_written=0, bytes_written=0), stats.bytes_scanned
            )
        try:
            committed = tables.overwrite(table, merged, scope_filter)
        except IcebergError as exc:
            raise EngineError(str(exc)) from exc
        return IcebergWrite(
            committed, stats.bytes_scanned, inserted=inserted, updated=updated, deleted=deleted
        )

    def maintain(
        self, name: str, older_than: dt.datetime, retain_last: int, store: ObjectStore
    ) -> Maintained:
        """Compact, expire snapshots and remove orphan files of Iceberg table `name`."""
        try:
            return self._tables().maintain(
                name, older_than=older_than, retain_last=retain_last, store=store
            )
        except IcebergError as exc:
            raise EngineError(str(exc)) from exc
