"""`sales-cdc query`: read-only Athena SQL against the running stack, bounded by --max-rows.

A statement is parsed (sqlglot, Athena dialect) before it goes anywhere: exactly one SELECT /
WITH / VALUES / SHOW / DESCRIBE statement passes, anything else is refused with the reason. A query
gets a LIMIT of max-rows + 1 on its outermost level, so neither engine produces (nor this command
fetches) more rows than it prints; the extra row only tells that there were more.
"""

from __future__ import annotations

import csv
import json
import logging
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import sqlglot
from sqlglot import exp

from sales_cdc.resources import build_resources
from sales_cdc.resources.query import QueryFailedError
from sales_cdc.settings import apply_local_credentials, load_settings

ALLOWED = "SELECT, WITH ... SELECT, VALUES, SHOW or DESCRIBE"
# Nodes that change or create something, wherever they hide in a statement.
_WRITES: tuple[type[exp.Expression], ...] = (
    exp.Insert,
    exp.Update,
    exp.Delete,
    exp.Merge,
    exp.Create,
    exp.Drop,
    exp.Alter,
    exp.Copy,
    exp.Into,
    exp.Command,
    exp.Set,
    exp.Pragma,
    exp.Use,
)


class RefusedStatement(ValueError):
    """The statement is not one read-only query; the message says why and what is accepted."""


def _parse(sql: str) -> list[exp.Expression]:
    # sqlglot warns on statements it keeps as an opaque Command (SHOW ...): the check below decides.
    parser_log = logging.getLogger("sqlglot")
    level = parser_log.level
    parser_log.setLevel(logging.ERROR)
    try:
        return [s for s in sqlglot.parse(sql, read="athena") if s is not None]
    except sqlglot.errors.SqlglotError as exc:
        first = str(exc).splitlines()[0]
        raise RefusedStatement(f"not valid Athena SQL ({first}); only {ALLOWED} runs") from exc
    finally:
        parser_log.setLevel(level)


def read_only_statement(sql: str) -> exp.Expression:
    """The one read-only statement of `sql`, or RefusedStatement naming what was found."""
    statements = _parse(sql)
    if len(statements) != 1:
        raise RefusedStatement(
            f"{len(statements)} statements given: exactly one {ALLOWED} statement runs"
        )
    statement = statements[0]
    if isinstance(statement, exp.Command) and statement.name.upper() == "SHOW":
        return statement
    if isinstance(statement, exp.Describe):
        if statement.find(*_WRITES):
            raise RefusedStatement(f"DESCRIBE of a statement that writes; only {ALLOWED} runs")
        return statement
    if not isinstance(statement, exp.Query | exp.Values):
        kind = (
            statement.name.upper() if isinstance(statement, exp.Command) else statement.key.upper()
        )
        raise RefusedStatement(f"{kind} is not a query: only {ALLOWED} runs (read-only)")
    found = statement.find(*_WRITES)
    if found is not None:
        raise RefusedStatement(
            f"the query contains {found.key.upper()}: only {ALLOWED} runs (read-only)"
        )
    return statement


def limited_sql(statement: exp.Expression, limit: int) -> str:
    """Athena SQL of `statement` returning at most `limit` rows (SHOW / DESCRIBE as they are)."""
    if isinstance(statement, exp.Values):
        return f"SELECT * FROM ({statement.sql(dialect='athena')}) AS q LIMIT {limit}"
    if not isinstance(statement, exp.Query):
        return statement.sql(dialect="athena")
    current = statement.args.get("limit")
    expression = current.expression if isinstance(current, exp.Limit) else None
    if isinstance(expression, exp.Literal) and expression.is_int and int(expression.this) <= limit:
        return statement.sql(dialect="athena")
    return statement.limit(limit).sql(dialect="athena")


def _text(value: Any) -> str:
    return "NULL" if value is None else str(value)


def format_table(columns: list[str], rows: list[tuple], max_rows: int) -> str:
    """A plain aligned text table; a row beyond `max_rows` only says that more were left out."""
    shown = [[_text(v) for v in row] for row in rows[:max_rows]]
    widths = [max([len(c)] + [len(r[i]) for r in shown]) for i, c in enumerate(columns)]
    line = "+".join("-" * (w + 2) for w in widths)
    out = [
        " | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)),
        line,
        *(" | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in shown),
    ]
    out.append(
        f"(first {max_rows} rows; more not fetched: raise --max-rows)"
        if len(rows) > max_rows
        else f"({len(rows)} rows)"
    )
    return "\n".join(out)


def _printed(rows: Iterable[tuple], max_rows: int) -> Iterator[tuple]:
    for i, row in enumerate(rows):
        if i >= max_rows:
            return
        yield row


def run_query(
    sql: str,
    output: str = "table",
    max_rows: int = 50,
    before_engine: Callable[[], None] | None = None,
) -> int:
    """Run one read-only query and print at most `max_rows` rows; non-zero exit on refusal/failure."""
    if max_rows < 1:
        print(f"sales-cdc query: --max-rows must be at least 1, not {max_rows}", file=sys.stderr)
        return 2
    try:
        statement = read_only_statement(sql)
    except RefusedStatement as exc:
        print(f"sales-cdc query: refused: {exc}", file=sys.stderr)
        return 2
    if before_engine is not None:
        before_engine()  # e.g. one line when the emulator does not answer
    settings = load_settings()
    apply_local_credentials(settings)
    engine = build_resources(settings)["query_engine"]
    try:
        result = engine.query(limited_sql(statement, max_rows + 1))
    except QueryFailedError as exc:
        query_id = f" (query id {exc.query_id})" if exc.query_id else ""
        print(f"sales-cdc query: {exc}{query_id}", file=sys.stderr)
        return 1
    more = len(result.rows) > max_rows
    if output == "json":
        for row in _printed(result.rows, max_rows):
            print(json.dumps(dict(zip(result.columns, row, strict=True)), default=str))
    elif output == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(result.columns)
        writer.writerows(_printed(result.rows, max_rows))
    else:
        print(format_table(result.columns, result.rows, max_rows))
    if more and output != "table":
        print(f"-- first {max_rows} rows; more not fetched: raise --max-rows", file=sys.stderr)
    print(f"-- {result.bytes_scanned} bytes scanned", file=sys.stderr)
    return 0
