"""Refreshing ONE aggregate partition as orders_current's history grows: cost must stay flat.

Starts the embedded emulator in-process, provisions a deployment, lands N days of CDC events
(--orders-per-day orders a day, each INSERTed and most moved on by a MODIFY), crawls them with the
embedded crawler and writes orders_current as its full rebuild does (an Iceberg table;
sales_cdc/sql/orders_current.sql), then times refreshing one order day of each aggregate table exactly as the
asset does (`refresh_days`: the write plus its totals query). History grows 1 -> 7 -> 30 days
(by default) in the same deployment; the refreshed day is always the first one.

    .venv/bin/python benchmarks/aggregate_refresh.py
    .venv/bin/python benchmarks/aggregate_refresh.py --days 1 7 30 90 --orders-per-day 2000
"""

import argparse
import datetime as dt
import gzip
import json
import os
import random
import statistics
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

START = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
PRODUCTS = [
    (f"p-{i}", f"Product {i}", f"Category {i % 6}", Decimal(f"{5 + i}.99")) for i in range(40)
]
CURRENCIES = ["USD", "USD", "USD", "GBP", "EUR", "JPY"]
NEXT = {"PLACED": "PAID", "PAID": "SHIPPED", "SHIPPED": "DELIVERED", "DELIVERED": "RETURNED"}


def day_events(day: int, orders: int, rng: random.Random, seq: list[int]) -> list[dict]:
    """Landing rows (ARCHITECTURE §3.4) of `orders` orders created on START + day."""
    rows = []
    base = START + dt.timedelta(days=day)
    for _ in range(orders):
        product_id, name, category, price = rng.choice(PRODUCTS)
        quantity = rng.randint(1, 5)
        discount = (price * quantity * Decimal("0.1")).quantize(Decimal("0.01"))
        has_discount = rng.random() < 0.3
        created = base + dt.timedelta(seconds=rng.randint(0, 86_399))
        created_at = created.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        item = {
            "order_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "customer_id": f"C-{rng.randint(10000, 99999)}",
            "customer_name": "Customer",
            "customer_city": "City",
            "customer_country": "US",
            "product_id": product_id,
            "product_name": name,
            "category": category,
            "quantity": quantity,
            "unit_price": float(price),
            "total_amount": float(price * quantity - (discount if has_discount else 0)),
            "currency": rng.choice(CURRENCIES),
            "payment_method": "CARD",
            "channel": "WEB",
            "status": "PLACED",
            "created_at": created_at,
            "updated_at": created_at,
            "version": 1,
        }
        if has_discount:
            item["discount"] = float(discount)
        statuses = ["PLACED"]
        while statuses[-1] in NEXT and rng.random() < 0.6:
            statuses.append(NEXT[statuses[-1]] if rng.random() < 0.9 else "CANCELLED")
            if statuses[-1] == "CANCELLED":
                break
        for version, status in enumerate(statuses, start=1):
            seq[0] += 1
            when = created + dt.timedelta(minutes=version - 1)
            rows.append(
                {
                    "event_id": uuid.uuid4().hex,
                    "event_name": "INSERT" if version == 1 else "MODIFY",
                    "sequence_number": str(seq[0]),
                    "event_time": when.strftime("%Y-%m-%d %H:%M:%S.%f"),
                    "is_deleted": False,
                    **item,
                    "status": status,
                    "version": version,
                }
            )
    return rows


def land_day(aws, day: int, rows: list[dict]) -> None:
    stack = aws.stack()
    when = START + dt.timedelta(days=day)
    key = (
        f"{stack.raw_prefix}year={when:%Y}/month={when:%m}/day={when:%d}/hour=12/bench-{day:04d}.gz"
    )
    body = gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode(), compresslevel=1)
    aws.client("s3").put_object(Bucket=stack.bucket, Key=key, Body=body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, nargs="+", default=[1, 7, 30])
    parser.add_argument("--orders-per-day", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3, help="Refreshes per table; median shown.")
    args = parser.parse_args()

    import warnings

    warnings.filterwarnings("ignore")
    from sales_cdc.defs.analytics.assets import AGGREGATES, refresh_days
    from sales_cdc.defs.infrastructure.provision import provision_all
    from sales_cdc.defs.lake.merge import object_uri, rebuild_tables
    from sales_cdc.emulator.crawler import EmbeddedCrawler
    from sales_cdc.emulator.server import Emulator, free_port
    from sales_cdc.resources.aws import AwsResource
    from sales_cdc.resources.query import DuckDBQueryEngine, read_sql
    from sales_cdc.settings import load_settings

    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "SALES_CDC_ENV": "local",
            "SALES_CDC_PREFIX": f"bench{uuid.uuid4().hex[:6]}",
        }
    )
    target = START.strftime("%Y-%m-%d")
    rng = random.Random(11)
    seq = [49_000_000_000_000_000_000]
    results = []
    with Emulator(free_port()) as emulator:
        os.environ["AWS_ENDPOINT_URL"] = emulator.endpoint
        aws = AwsResource.from_settings(load_settings())
        started = time.perf_counter()
        provision_all(aws)
        print(f"provisioned in {time.perf_counter() - started:.1f}s", flush=True)
        engine = DuckDBQueryEngine(aws=aws)
        stack = aws.stack()
        landed = 0
        for history in sorted(args.days):
            for day in range(landed, history):
                land_day(aws, day, day_events(day, args.orders_per_day, rng, seq))
            landed = history
            EmbeddedCrawler(aws.client("glue"), aws.client("s3"), stack.crawler_name).crawl()
            started = time.perf_counter()
            # orders_current as its full rebuild writes it (an Iceberg table, as in the lake)
            for name in ("orders_current", "order_tombstones"):
                engine.ensure_table(name)
            pages = aws.client("s3").get_paginator("list_objects_v2")
            keys = [
                o["Key"]
                for page in pages.paginate(Bucket=stack.bucket, Prefix=stack.raw_prefix)
                for o in page.get("Contents", [])
            ]
            rebuild_tables(engine, [object_uri(stack.bucket, k) for k in keys], read_sql)
            location = engine.table_location("orders_current")
            total = sum(o["Size"] for o in engine.catalog().list_objects(location))
            print(
                f"history {history:>3} day(s): orders_current ({total:,} bytes) written in "
                f"{time.perf_counter() - started:.1f}s ({len(keys)} landing objects)",
                flush=True,
            )
            for table in AGGREGATES:
                timings, refresh = [], None
                for _ in range(args.repeats):
                    started = time.perf_counter()
                    refresh = refresh_days(engine, table, [target])
                    timings.append(time.perf_counter() - started)
                results.append(
                    (
                        history,
                        total,
                        table,
                        statistics.median(timings),
                        refresh.source_bytes_read,
                        refresh.bytes_read,
                        refresh.rows,
                    )
                )

    print()
    print(
        f"Refreshing ONE order day ({target}) of each aggregate, {args.orders_per_day} "
        f"orders/day, median of {args.repeats}"
    )
    header = (
        "history days",
        "orders_current bytes (all days)",
        "table",
        "wall s",
        "orders_current bytes read",
        "bytes read",
        "rows",
    )
    print(f"| {' | '.join(header)} |")
    print("|" + "---|" * len(header))
    for history, size, table, seconds, source, total, rows in results:
        print(
            f"| {history} | {size:,} | {table} | {seconds:.3f} | {source:,} | {total:,} | {rows} |"
        )


if __name__ == "__main__":
    main()
