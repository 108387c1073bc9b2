"""One incremental orders_current run with its checks on a small lake, as the demo runs it.

The emulator runs in a process of its own (`sales-cdc emulator`), as in the demo. Lands a week of history (a few hundred orders, as the demo's first generator run writes) into the
embedded emulator's S3, puts each order's latest state in OrderTable, builds orders_current, then
times `--runs` incremental runs, each after one generator tick landed (20 new orders, 12 status
changes, 1 delete, in one object). A run is orders_current and the checks the demo's lake_refresh
job runs with it (all but matches_dynamodb, which has its own schedule) in one Dagster run
(in-process executor); prints each run's seconds and the median, split into the asset step and the
check steps.

    python benchmarks/orders_current_run.py
    python benchmarks/orders_current_run.py --orders 300 --runs 7
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NEXT = {"PLACED": "PAID", "PAID": "SHIPPED", "SHIPPED": "DELIVERED"}
TICK_NEW, TICK_CHANGED, TICK_DELETED = 20, 12, 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=170, help="orders of history (7 days)")
    parser.add_argument("--runs", type=int, default=5, help="incremental runs timed")
    args = parser.parse_args()

    from sales_cdc.emulator.server import free_port, wait_until_ready

    port = free_port()
    emulator = subprocess.Popen(
        [sys.executable, "-m", "sales_cdc.cli", "emulator", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        endpoint = f"http://127.0.0.1:{port}"
        wait_until_ready(endpoint)
        measure(args, endpoint)
    finally:
        emulator.send_signal(signal.SIGTERM)
        try:
            emulator.wait(timeout=30)
        except subprocess.TimeoutExpired:
            emulator.kill()


def measure(args: argparse.Namespace, endpoint: str) -> None:
    with _dagster_home():
        os.environ.update(
            SALES_CDC_ENV="local",
            SALES_CDC_PREFIX=f"bench{uuid.uuid4().hex[:6]}",
            AWS_ENDPOINT_URL=endpoint,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_DEFAULT_REGION="us-east-1",
        )
        import dagster as dg

        from sales_cdc.defs.lake.projection import (
            ASSET_CHECKS,
            orders_current,
            orders_current_matches_dynamodb,
        )
        from sales_cdc.resources.aws import AwsResource
        from sales_cdc.resources.query import DuckDBQueryEngine
        from sales_cdc.settings import load_settings
        from sales_cdc_tests.lake_data import catalog_raw_table, event, land, setup_lake

        aws = AwsResource.from_settings(load_settings())
        setup_lake(aws)
        stack = aws.stack()
        ddb = aws.client("dynamodb")
        ddb.create_table(
            TableName=stack.table_name,
            KeySchema=[{"AttributeName": "orderId", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "orderId", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        rng = random.Random(1)
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        live: dict[str, dict] = {}  # order id -> its latest landing row
        sequence = 0

        def write(order_id: str, name: str, status: str, created: dt.datetime) -> dict:
            nonlocal sequence
            sequence += 1
            version = live[order_id]["version"] + 1 if order_id in live else 1
            row = event(
                order_id,
                sequence,
                name,
                status=status,
                version=version,
                created_at=created.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                event_time=now.strftime("%Y-%m-%d %H:%M:%S.%f"),
            )
            if name == "REMOVE":
                live.pop(order_id, None)
                ddb.delete_item(TableName=stack.table_name, Key={"orderId": {"S": order_id}})
            else:
                live[order_id] = row
                ddb.put_item(
                    TableName=stack.table_name,
                    Item={
                        "orderId": {"S": order_id},
                        "status": {"S": status},
                        "version": {"N": str(version)},
                        "totalAmount": {"N": str(row["total_amount"])},
                        "updatedAt": {"S": row["created_at"]},
                    },
                )
            return row

        history = []
        for i in range(args.orders):
            order_id = str(uuid.uuid4())
            created = (
                now - dt.timedelta(days=7) + dt.timedelta(seconds=i * 7 * 86_400 // args.orders)
            )
            status = "PLACED"
            history.append(write(order_id, "INSERT", status, created))
            while status in NEXT and rng.random() < 0.6:
                status = NEXT[status]
                history.append(write(order_id, "MODIFY", status, created))
        hour = now.strftime("%Y/%m/%d/%H")
        for start in range(0, len(history), 200):
            land(aws, history[start : start + 200], hour=hour)
        catalog_raw_table(aws)

        def tick() -> None:
            rows = [write(str(uuid.uuid4()), "INSERT", "PLACED", now) for _ in range(TICK_NEW)]
            movable = [o for o, r in live.items() if r["status"] in NEXT]
            for order_id in rng.sample(movable, min(TICK_CHANGED, len(movable))):
                created = dt.datetime.fromisoformat(live[order_id]["created_at"])
                rows.append(write(order_id, "MODIFY", NEXT[live[order_id]["status"]], created))
            for order_id in rng.sample(sorted(live), TICK_DELETED):
                created = dt.datetime.fromisoformat(live[order_id]["created_at"])
                rows.append(write(order_id, "REMOVE", live[order_id]["status"], created))
            land(aws, rows, hour=hour)

        instance = dg.DagsterInstance.get()
        reconciliation = (
            orders_current_matches_dynamodb  # reconcile_orders' check, not lake_refresh's
        )

        def run() -> tuple[float, dict[str, float]]:
            started = time.perf_counter()
            result = dg.materialize(
                [orders_current, *(c for c in ASSET_CHECKS if c is not reconciliation)],
                resources={"aws": aws, "query_engine": DuckDBQueryEngine(aws=aws)},
                instance=instance,
                run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
            )
            seconds = time.perf_counter() - started
            assert result.success
            failed = [e.check_name for e in result.get_asset_check_evaluations() if not e.passed]
            assert not failed, failed
            return seconds, _step_seconds(instance, result.run_id)

        first, _ = run()
        print(
            f"history: {len(history)} events, {args.orders} orders; first run {first:.1f}s",
            flush=True,
        )
        totals, steps = [], []
        for i in range(args.runs):
            tick()
            seconds, split = run()
            totals.append(seconds)
            steps.append(split)
            print(
                f"run {i + 1}: {seconds:.2f}s  "
                + "  ".join(f"{k} {v:.2f}s" for k, v in split.items())
            )
        print(
            f"incremental orders_current run with checks: median {statistics.median(totals):.2f}s "
            f"(min {min(totals):.2f}s, max {max(totals):.2f}s) over {args.runs} runs; steps (median): "
            + ", ".join(f"{k} {statistics.median(s[k] for s in steps):.2f}s" for k in steps[0])
        )


def _step_seconds(instance, run_id: str) -> dict[str, float]:
    """Seconds from each step's start to its end, from the run's event log."""
    started: dict[str, float] = {}
    ended: dict[str, float] = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type_value == "STEP_START":
            started[event.step_key] = entry.timestamp
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
            ended[event.step_key] = entry.timestamp
    return {k: ended[k] - started[k] for k in started if k in ended}


class _dagster_home:
    """A temporary DAGSTER_HOME (a persistent instance for the run's event log)."""

    def __enter__(self) -> str:
        import tempfile

        self.directory = tempfile.TemporaryDirectory(prefix="sales-cdc-bench-")
        os.environ["DAGSTER_HOME"] = self.directory.name
        Path(self.directory.name, "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        return self.directory.name

    def __exit__(self, *exc: object) -> None:
        self.directory.cleanup()


if __name__ == "__main__":
    main()
