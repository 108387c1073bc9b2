"""orders_current at scale: the embedded engine (DuckDB over pyarrow) vs the same projection in pandas.

Generates N landed CDC events as gzip JSON lines in hive folders (year=/month=/day=/hour=) in a
local directory, then runs each contender in a child process and reports wall time, peak memory
(the child's ru_maxrss) and bytes read. The engine runs exactly the production code path
(sales_cdc/sql/orders_current.sql through DuckDBEngine) over a pyarrow LocalFileSystem and a
catalog shaped like Glue's answers, instead of moto S3.

    .venv/bin/python benchmarks/orders_current_scale.py                 # 1M events
    .venv/bin/python benchmarks/orders_current_scale.py --events 10000000
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sales_cdc_tests.lake_data import RAW_COLUMNS  # noqa: E402

EVENTS_PER_FILE = 100_000
STATUSES = ["PLACED", "PAID", "SHIPPED", "DELIVERED"]
# The raw table as the crawler catalogs it: the same columns the tests use.
COLUMNS = RAW_COLUMNS


def generate(root: Path, events: int, seed: int = 7) -> None:
    """~4 events per order (INSERT, MODIFYs, 5% REMOVE), 2% duplicate deliveries, shuffled files."""
    rng = random.Random(seed)
    start = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    rows: list[str] = []
    seq = 49_000_000_000_000_000_000
    order = 0
    written = 0
    file_no = 0

    def flush() -> None:
        nonlocal rows, file_no
        rng.shuffle(rows)  # out of order within and across files
        when = start + dt.timedelta(hours=file_no % 240)
        folder = root / (f"year={when:%Y}/month={when:%m}/day={when:%d}/hour={when:%H}")
        folder.mkdir(parents=True, exist_ok=True)
        with gzip.open(folder / f"part-{file_no:05d}.gz", "wt", compresslevel=1) as out:
            out.write("".join(rows))
        rows = []
        file_no += 1

    while written < events:
        order += 1
        order_id = f"{order:032x}"
        created = start + dt.timedelta(seconds=rng.randrange(86400 * 10))
        n_events = rng.randint(2, 6)
        price = round(rng.uniform(1, 500), 2)
        quantity = rng.randint(1, 5)
        base: dict[str, Any] = {
            "order_id": order_id,
            "customer_id": f"c{rng.randrange(100000)}",
            "customer_name": "Customer",
            "customer_city": "City",
            "customer_country": "DE",
            "product_id": f"p{rng.randrange(1000)}",
            "product_name": "Product",
            "category": rng.choice(["Books", "Tools", "Toys"]),
            "quantity": quantity,
            "unit_price": price,
            "total_amount": round(price * quantity, 2),
            "currency": "EUR",
            "payment_method": "CARD",
            "channel": "WEB",
            "created_at": created.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
        if rng.random() < 0.3:
            base["discount"] = round(rng.uniform(0, 5), 2)
        for version in range(1, n_events + 1):
            seq += rng.randint(1, 1000)
            remove = version == n_events and rng.random() < 0.05
            when = created + dt.timedelta(minutes=version)
            row = {
                **base,
                "event_id": f"{order_id}-{version}",
                "event_name": "REMOVE" if remove else ("INSERT" if version == 1 else "MODIFY"),
                "sequence_number": str(seq),
                "event_time": when.strftime("%Y-%m-%d %H:%M:%S.%f"),
                "is_deleted": remove,
                "status": STATUSES[min(version - 1, 3)],
                "updated_at": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "version": version,
            }
            line = json.dumps(row) + "\n"
            rows.append(line)
            if rng.random() < 0.02:
                rows.append(line)
            written += 1
            if len(rows) >= EVENTS_PER_FILE:
                flush()
    if rows:
        flush()


class LocalCatalog:
    """Glue's answers for a raw table whose partitions are folders of a local directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def get_table(self, name: str) -> dict[str, Any]:
        return {
            "Name": name,
            "Parameters": {"classification": "json", "compressionType": "gzip"},
            "PartitionKeys": [
                {"Name": k, "Type": "string"} for k in ("year", "month", "day", "hour")
            ],
            "StorageDescriptor": {
                "Columns": [{"Name": n, "Type": t} for n, t in COLUMNS],
                "Location": f"file://{self.root}/",
                "SerdeInfo": {"SerializationLibrary": "org.openx.data.jsonserde.JsonSerDe"},
            },
        }

    def get_partitions(self, name: str) -> list[dict[str, Any]]:
        folders = sorted({p.parent for p in self.root.rglob("*.gz")})
        return [
            {
                "Values": [part.split("=", 1)[1] for part in f.relative_to(self.root).parts],
                "StorageDescriptor": {"Location": f"file://{f}/"},
            }
            for f in folders
        ]


def run_engine(root: Path) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.compute  # noqa: F401
    from pyarrow import fs as pafs

    from sales_cdc.emulator.duckdb_engine import DuckDBEngine
    from sales_cdc.resources.sql import bind, optional_columns, read_sql

    # The full rebuild over every landing object ("$path" names them; winners incl. REMOVEs).
    sql = read_sql("orders_current")
    paths = [f"file://{path}" for path in sorted(root.rglob("*.gz"))]
    engine = DuckDBEngine(LocalCatalog(root), pafs.LocalFileSystem())
    table, stats = engine.query_arrow(bind(sql, {"paths": paths}), optional_columns(sql))
    live = table.filter(pa.compute.invert(table["is_removed"])).num_rows
    return {"rows": live, "bytes_read": stats.bytes_scanned, "files": stats.files}


def run_pandas(root: Path) -> dict[str, Any]:
    import pandas as pd

    warnings.filterwarnings("ignore", message=".*convert_dates.*")
    files = sorted(root.rglob("*.gz"))
    frame = pd.concat(
        (
            pd.read_json(
                f,
                lines=True,
                compression="gzip",
                dtype={"sequence_number": str, "created_at": str},
                convert_dates=False,
            )
            for f in files
        ),
        ignore_index=True,
    )
    events = frame.drop_duplicates("event_id")
    events = events.assign(seq=events["sequence_number"].str.zfill(40))
    latest = events.sort_values(["order_id", "seq"]).groupby("order_id", sort=False).tail(1)
    live = latest[~latest["is_deleted"].astype(bool)].copy()
    for column in ("unit_price", "total_amount", "discount"):
        if column in live:
            live[column] = live[column].round(2)
    live["order_date"] = live["created_at"].str.slice(0, 10)
    return {
        "rows": len(live),
        "bytes_read": sum(f.stat().st_size for f in files),
        "files": len(files),
    }


def child(kind: str, root: Path) -> None:
    started = time.perf_counter()
    result = run_engine(root) if kind == "engine" else run_pandas(root)
    result["seconds"] = round(time.perf_counter() - started, 2)
    print(json.dumps(result))


def measure(kind: str, root: Path) -> dict[str, Any]:
    process = subprocess.Popen(
        [sys.executable, __file__, "--child", kind, "--dir", str(root)], stdout=subprocess.PIPE
    )
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        return {"error": f"exit {process.returncode}", "peak_mb": round(usage.ru_maxrss / 1024)}
    result = json.loads(output.decode().strip().splitlines()[-1])
    result["peak_mb"] = round(usage.ru_maxrss / 1024)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--child", choices=["engine", "pandas"], default=None)
    parser.add_argument("--skip-pandas", action="store_true")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.dir)
        return
    root = args.dir or Path(tempfile.mkdtemp(prefix="orders_cdc_bench_"))
    try:
        started = time.perf_counter()
        generate(root, args.events)
        size = sum(f.stat().st_size for f in root.rglob("*.gz"))
        print(
            f"generated {args.events:,} events, {size / 1e6:.1f} MB gzip "
            f"in {time.perf_counter() - started:.1f}s"
        )
        kinds = ["engine"] + ([] if args.skip_pandas else ["pandas"])
        print(f"{'contender':<10}{'seconds':>10}{'peak MB':>10}{'MB read':>10}{'rows':>12}")
        for kind in kinds:
            r = measure(kind, root)
            if "error" in r:
                print(f"{kind:<10}{r['error']:>10}{r['peak_mb']:>10}")
                continue
            print(
                f"{kind:<10}{r['seconds']:>10}{r['peak_mb']:>10}"
                f"{r['bytes_read'] / 1e6:>10.1f}{r['rows']:>12,}"
            )
    finally:
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
