"""`sales-cdc query`: Athena SQL against the running stack, through the configured QueryEngine."""

from __future__ import annotations

import csv
import json
import sys
from typing import Any

from sales_cdc.resources import build_resources
from sales_cdc.resources.query import QueryFailedError
from sales_cdc.settings import apply_local_credentials, load_settings


def _text(value: Any) -> str:
    return "NULL" if value is None else str(value)


def format_table(columns: list[str], rows: list[tuple], max_rows: int) -> str:
    """A plain aligned text table, as a terminal user expects it."""
    shown = [[_text(v) for v in row] for row in rows[:max_rows]]
    widths = [max([len(c)] + [len(r[i]) for r in shown]) for i, c in enumerate(columns)]
    line = "+".join("-" * (w + 2) for w in widths)
    out = [
        " | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)),
        line,
        *(" | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in shown),
    ]
    more = f" (showing {max_rows})" if len(rows) > max_rows else ""
    out.append(f"({len(rows)} rows{more})")
    return "\n".join(out)


def run_query(sql: str, output: str = "table", max_rows: int = 50) -> int:
    """Run one SELECT and print its rows; non-zero exit with the engine's reason on failure."""
    settings = load_settings()
    apply_local_credentials(settings)
    engine = build_resources(settings)["query_engine"]
    try:
        result = engine.query(sql)
    except QueryFailedError as exc:
        query_id = f" (query id {exc.query_id})" if exc.query_id else ""
        print(f"sales-cdc query: {exc}{query_id}", file=sys.stderr)
        return 1
    if output == "json":
        for row in result.dicts():
            print(json.dumps(row, default=str))
    elif output == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(result.columns)
        writer.writerows(result.rows)
    else:
        print(format_table(result.columns, result.rows, max_rows))
    print(f"-- {result.bytes_scanned} bytes scanned", file=sys.stderr)
    return 0
