"""Incremental orders_current: first build vs the refresh after 2,000 new events, at a history size.

History is modelled as a constant daily volume (20,000 events a day by default, four events per
order, one order in ten deleted), so more landed events means more order days, as in a real lake.
Landing objects hold 5,000 events each and go straight into the embedded emulator's S3. The first
build is a full rebuild (run config full_rebuild), the refresh an ordinary incremental run after
2,000 events of new orders landed on the next day. Prints both times, their ratio and the peak RSS
of this process (the embedded engine runs in it).

    python benchmarks/orders_current_refresh.py --events 1000000
"""

from __future__ import annotations

import argparse
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
        import dagster as dg

        from sales_cdc.defs.lake.projection import orders_current
        from sales_cdc.resources.aws import AwsResource
        from sales_cdc.resources.query import DuckDBQueryEngine
        from sales_cdc.settings import load_settings
        from sales_cdc_tests.lake_data import catalog_raw_table, event, land, setup_lake

        aws = AwsResource.from_settings(load_settings())
        setup_lake(aws)
        sequence = 0
        rng = random.Random(1)

        def land_events(count: int, first_day: int, tag: str) -> None:
            nonlocal sequence
            rows = []
            for i in range(count):
                sequence += 1
                day_number = first_day + i // args.per_day
                day = f"2026-{1 + day_number // 28:02d}-{1 + day_number % 28:02d}"
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
            for start in range(0, count, OBJECT_EVENTS):
                chunk = rows[start : start + OBJECT_EVENTS]
                year, month, day = chunk[0]["created_at"][:10].split("-")
                land(aws, chunk, hour=f"{year}/{month}/{day}/10")

        def run(full_rebuild: bool) -> float:
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
            return time.perf_counter() - started

        land_events(args.events, 0, "h")
        catalog_raw_table(aws)
        first = run(full_rebuild=True)
        land_events(NEW_EVENTS, args.events // args.per_day + 1, "n")
        catalog_raw_table(aws)
        refresh = run(full_rebuild=False)
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"events={args.events:,} first_build={first:.1f}s refresh_after_{NEW_EVENTS}="
            f"{refresh:.1f}s ratio={refresh / first:.3f} peak_rss={peak_mb:,.0f}MB"
        )


if __name__ == "__main__":
    main()
