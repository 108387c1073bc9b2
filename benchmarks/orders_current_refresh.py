"""Incremental orders_current: first build vs the refresh after 2,000 new events, at a history size.

History is modelled as a constant daily volume (20,000 events a day by default, four events per
order, one order in ten deleted), so more landed events means more order days, as in a real lake.
Landing objects hold 5,000 events each and go straight into the embedded emulator's S3. The first
build is a full rebuild (run config full_rebuild), the refresh an ordinary incremental run after
2,000 events of new orders landed on the next day. Each run is its own process, as a Dagster run
is; prints both times, their ratio and each run's peak RSS (the embedded engine runs in it; the
emulator holding the landed objects runs in this process, not the run's).

    python benchmarks/orders_current_refresh.py --events 1000000
    python benchmarks/orders_current_refresh.py --events 10000000
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import multiprocessing
import os
import random
import resource
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

OBJECT_EVENTS = 5_000
NEW_EVENTS = 2_000
FIRST_DAY = dt.date(2025, 1, 1)  # 10M events at 20,000 a day: 500 days


def run(full_rebuild: bool) -> tuple[float, float]:
    """One orders_current run (in a process of its own): seconds and peak RSS in MB."""
    import dagster as dg

    from sales_cdc.defs.lake.projection import orders_current
    from sales_cdc.resources.aws import AwsResource
    from sales_cdc.resources.query import DuckDBQueryEngine
    from sales_cdc.settings import load_settings

    aws = AwsResource.from_settings(load_settings())
    started = time.perf_counter()
    result = dg.materialize(
        [orders_current],
        resources={"aws": aws, "query_engine": DuckDBQueryEngine(aws=aws)},
        run_config={
            "ops": {
                "athena__orders_current": {
                    "config": {"full_rebuild": full_rebuild, "max_objects": 100_000}
                }
            }
        },
    )
    assert result.success
    seconds = time.perf_counter() - started
    return seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def in_child(full_rebuild: bool) -> tuple[float, float]:
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(run, full_rebuild).result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="landed events of history")
    parser.add_argument("--per-day", type=int, default=20_000, help="events per order day")
    args = parser.parse_args()

    from sales_cdc.emulator.server import Emulator, free_port

    with Emulator(free_port()) as emulator:
        os.environ.update(
            SALES_CDC_ENV="local",
            SALES_CDC_PREFIX=f"bench{uuid.uuid4().hex[:6]}",
            AWS_ENDPOINT_URL=emulator.endpoint,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_DEFAULT_REGION="us-east-1",
        )
        from sales_cdc.resources.aws import AwsResource
        from sales_cdc.settings import load_settings
        from sales_cdc_tests.lake_data import catalog_raw_table, event, land, setup_lake

        aws = AwsResource.from_settings(load_settings())
        setup_lake(aws)
        sequence = 0
        rng = random.Random(1)

        def land_events(count: int, first_day: int, tag: str) -> None:
            """`count` events, one object of OBJECT_EVENTS at a time (never all in memory)."""
            nonlocal sequence
            for start in range(0, count, OBJECT_EVENTS):
                rows = []
                for i in range(start, min(count, start + OBJECT_EVENTS)):
                    sequence += 1
                    day = FIRST_DAY + dt.timedelta(days=first_day + i // args.per_day)
                    name = "INSERT" if i % 4 == 0 else ("REMOVE" if i % 40 == 3 else "MODIFY")
                    rows.append(
                        event(
                            f"{tag}-{i // 4}",
                            sequence,
                            name,
                            status=rng.choice(("PLACED", "PAID", "SHIPPED")),
                            created_at=f"{day}T10:00:00.000000Z",
                            event_time=f"{day} 10:00:00.000000",
                        )
                    )
                year, month, day = rows[0]["created_at"][:10].split("-")
                land(aws, rows, hour=f"{year}/{month}/{day}/10")

        landing = time.perf_counter()
        land_events(args.events, 0, "h")
        catalog_raw_table(aws)
        print(f"landed {args.events:,} events in {time.perf_counter() - landing:.0f}s", flush=True)
        first, first_mb = in_child(full_rebuild=True)
        print(f"first build {first:.1f}s peak_rss={first_mb:,.0f}MB", flush=True)
        land_events(NEW_EVENTS, args.events // args.per_day + 1, "n")
        catalog_raw_table(aws)
        refresh, refresh_mb = in_child(full_rebuild=False)
        print(
            f"events={args.events:,} first_build={first:.1f}s (peak_rss={first_mb:,.0f}MB) "
            f"refresh_after_{NEW_EVENTS}={refresh:.1f}s (peak_rss={refresh_mb:,.0f}MB) "
            f"ratio={refresh / first:.3f}"
        )


if __name__ == "__main__":
    main()
