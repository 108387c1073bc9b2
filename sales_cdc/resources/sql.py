"""The Athena-dialect SQL files of sales_cdc/sql/: loading, parameter binding, declared columns."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

SQL_DIR = Path(__file__).resolve().parents[1] / "sql"

# A file declares the columns it reads that a table may not have cataloged yet, e.g.
#   -- optional: orders_cdc.discount double
# Both engines then see the column as NULL of that type while the catalog lacks it (the crawler
# only catalogs attributes it has seen, and `discount` appears with the first discounted order).
_OPTIONAL = re.compile(r"^\s*--\s*optional:\s*(\w+)\.(\w+)\s+(.+?)\s*$", re.MULTILINE)
_PARAM = re.compile(r"%\((\w+)\)s")
# A line `-- include: NAME` stands for sales_cdc/sql/include/NAME.sql (one fact in one place,
# e.g. the sales measures of three aggregate tables), indented like the directive.
_INCLUDE = re.compile(r"^([ \t]*)--\s*include:\s*(\w+)\s*$", re.MULTILINE)


class SqlError(ValueError):
    """A SQL file is missing or a query's parameters do not fit."""


def sql_names() -> list[str]:
    """The names of every query file in sales_cdc/sql/ (without the suffix); table definitions
    (<table>.ddl.sql) are not queries and are left out."""
    return sorted(path.stem for path in SQL_DIR.glob("*.sql") if not path.stem.endswith(".ddl"))


def table_ddl_names() -> list[str]:
    """The curated tables: the ones declared by a sales_cdc/sql/<table>.ddl.sql file."""
    return sorted(path.name.removesuffix(".ddl.sql") for path in SQL_DIR.glob("*.ddl.sql"))


def read_sql(name: str) -> str:
    """The text of sales_cdc/sql/<name>.sql."""
    path = SQL_DIR / f"{name}.sql"
    if not path.exists():
        raise SqlError(
            f"No SQL file {path}. Known files: {', '.join(sql_names()) or 'none'}; "
            "add the query as sales_cdc/sql/<name>.sql."
        )
    return _expand(path.read_text())


def _expand(text: str) -> str:
    """`text` with its `-- include: NAME` lines replaced by sql/include/NAME.sql."""

    def fragment(match: re.Match[str]) -> str:
        path = SQL_DIR / "include" / f"{match.group(2)}.sql"
        if not path.exists():
            raise SqlError(f"`-- include: {match.group(2)}` names no file {path}.")
        return "\n".join(
            match.group(1) + line if line else line
            for line in _expand(path.read_text()).rstrip("\n").splitlines()
        )

    return _INCLUDE.sub(fragment, text)


def optional_columns(sql: str) -> dict[str, dict[str, str]]:
    """{table: {column: hive type}} declared by `-- optional: table.column type` lines."""
    declared: dict[str, dict[str, str]] = {}
    for table, column, hive_type in _OPTIONAL.findall(sql):
        declared.setdefault(table.lower(), {})[column.lower()] = hive_type.lower()
    return declared


def literal(value: Any) -> str:
    """`value` as a SQL literal that Athena (Trino) and DuckDB read the same way."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float | Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        return f"TIMESTAMP '{value.strftime('%Y-%m-%d %H:%M:%S.%f')}'"
    if isinstance(value, dt.date):
        return f"DATE '{value.isoformat()}'"
    if isinstance(value, list | tuple):
        if not value:
            raise SqlError("An empty list cannot be bound as a SQL parameter (IN () is invalid).")
        return ", ".join(literal(item) for item in value)
    return "'" + str(value).replace("'", "''") + "'"


def bind(sql: str, params: Mapping[str, Any] | None = None) -> str:
    """Substitute `%(name)s` placeholders with literals (lists become `a, b, c` for IN (...))."""
    params = params or {}
    missing = sorted({name for name in _PARAM.findall(sql) if name not in params})
    if missing:
        raise SqlError(f"The query needs parameters {missing}; pass them in params={{...}}.")
    return _PARAM.sub(lambda match: literal(params[match.group(1)]), sql)


def as_of(sql: str, snapshots: Mapping[str, int | None]) -> str:
    """`sql` (Athena dialect, parameters bound) reading each table of `snapshots` as of that
    Iceberg snapshot (`FOR VERSION AS OF <id>`, Athena's version travel; the embedded engine
    reads the same snapshot). A table mapped to None is left as it is."""
    import sqlglot
    from sqlglot import exp

    tree = sqlglot.parse_one(sql, read="athena")
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    for table in tree.find_all(exp.Table):
        name = table.name.lower()
        snapshot = snapshots.get(name)
        if snapshot is None or (name in ctes and not table.db):
            continue
        table.set(
            "version",
            exp.Version(this="VERSION", kind="AS OF", expression=exp.Literal.number(snapshot)),
        )
    return tree.sql(dialect="athena")
