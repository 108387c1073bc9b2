"""End-to-end freshness of the running demo: DynamoDB write -> orders_current -> aggregate.

Starts `sales-cdc demo` on free ports (its own state directory), lets the pipeline warm up, then
writes probe orders straight into OrderTable at a steady pace while the demo's own generator keeps
running. Each probe has a category of its own, so the moment it becomes visible is observable both
in athena/orders_current (its order_id) and in athena/daily_sales_by_category (its category).
Probes are `--every` seconds plus a random 0-5 s apart: a fixed spacing that is a multiple of
Dagster's 5 s sensor loop would land every probe at the same point of the loop, and every probe
would wait the same part of it. A probe counts as visible from the start of the first query that
returned it (that query read a snapshot committed before it started).
Prints p50 / p95 / max of both latencies, and where the seconds go (medians over the probes):
Firehose buffer (write -> object in S3), landing sensor (-> run requested), queue (-> run
dequeued), process + code-location load (-> run started), the wait for the orders_current pool
inside the run (-> merge step started: the previous merge, or the crawl), the merge (-> its
materialization), then the same for the aggregates (aggregates_sensor, queue, load, run).
Before the probes it prints the first minute: seconds from `sales-cdc demo` to the UI answering
and to each asset's first materialization.

    .venv/bin/python benchmarks/demo_freshness.py --probes 12 --every 20
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from dagster._daemon.sensor import MIN_INTERVAL_LOOP_TIME  # the sensor daemon's pass (5 s)
from faker import Faker

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sales_cdc.defs.orders.generator import new_order  # noqa: E402
from sales_cdc.defs.orders.writer import to_item  # noqa: E402
from sales_cdc.emulator.server import free_port  # noqa: E402
from sales_cdc.resources import build_resources  # noqa: E402
from sales_cdc.resources.query import QueryFailedError  # noqa: E402
from sales_cdc.settings import apply_local_credentials, load_settings  # noqa: E402


def _wait(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(1)
    raise SystemExit(f"{url} did not answer within {timeout:.0f}s")


def _query(engine, sql: str) -> list[dict]:
    try:
        return engine.query(sql).dicts()
    except QueryFailedError:
        return []  # table not there yet


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


# DagsterEventType values (their historical names)
RUN_EVENTS = {"PIPELINE_ENQUEUED": "RUN_ENQUEUED", "PIPELINE_STARTING": "RUN_STARTING",
              "PIPELINE_START": "RUN_START"}  # fmt: skip


def _run_times(instance, run_id: str) -> dict[str, float]:
    """Timestamps of a run's life: created, enqueued, starting (dequeued), started."""
    record = instance.get_run_records(filters=_runs_filter(run_id))[0]
    times = {"created": record.create_timestamp.timestamp()}
    for entry in instance.all_logs(run_id):
        kind = entry.dagster_event.event_type_value if entry.dagster_event else None
        if kind in RUN_EVENTS and RUN_EVENTS[kind] not in times:
            times[RUN_EVENTS[kind]] = entry.timestamp
    return times


def _runs_filter(run_id: str):
    import dagster as dg

    return dg.RunsFilter(run_ids=[run_id])


def _landed_at(aws, order_ids: set[str]) -> dict[str, float]:
    """When the object holding each probe's INSERT appeared in raw/ (its LastModified)."""
    import gzip

    s3, stack = aws.client("s3"), aws.stack()
    found: dict[str, float] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=stack.bucket, Prefix=stack.raw_prefix
    ):
        for item in page.get("Contents", []):
            body = gzip.decompress(
                s3.get_object(Bucket=stack.bucket, Key=item["Key"])["Body"].read()
            )
            for order_id in order_ids - set(found):
                if order_id.encode() in body:
                    found[order_id] = item["LastModified"].timestamp()
    return found


def _step_started(instance, run_id: str, step_key: str) -> float | None:
    stats = instance.get_run_step_stats(run_id, step_keys=[step_key])
    return stats[0].start_time if stats and stats[0].start_time else None


# Materialized only when something fails (error records, dead-lettered batches).
ONLY_ON_ERRORS = {"s3/errors/orders_cdc", "sqs/orders_cdc_dead_letters"}


def first_materializations(instance, started: float) -> dict[str, float | None]:
    """Seconds from the demo's start to each asset's first materialization (None: none yet)."""
    import dagster as dg

    firsts: dict[str, float | None] = {}
    for key in instance.get_asset_keys():
        name = key.to_user_string()
        if name in ONLY_ON_ERRORS:
            continue
        records = instance.fetch_materializations(dg.AssetKey(key.path), limit=1, ascending=True)
        firsts[name] = records.records[0].timestamp - started if records.records else None
    return firsts


def _first_materialization_after(instance, key: list[str], after: float):
    import dagster as dg

    for record in instance.fetch_materializations(
        dg.AssetKey(key), limit=1000, ascending=True
    ).records:
        if record.timestamp >= after:
            return record
    return None


def breakdown(instance, aws, written: dict[str, float]) -> None:
    """Median seconds of each stage between a probe's write and its aggregate."""
    landed = _landed_at(aws, set(written))
    stages: dict[str, list[float]] = {}

    def add(name: str, value: float) -> None:
        stages.setdefault(name, []).append(max(0.0, value))

    for order_id, wrote in written.items():
        if order_id not in landed:
            continue
        add("1 Firehose buffer (write -> S3 object)", landed[order_id] - wrote)
        current = _first_materialization_after(
            instance, ["athena", "orders_current"], landed[order_id]
        )
        if current is None:
            continue
        run = _run_times(instance, current.run_id)
        add("2 landing sensor (-> run requested)", run["created"] - landed[order_id])
        add("3 queue (-> run dequeued)", run.get("RUN_STARTING", run["created"]) - run["created"])
        add(
            "4 process + code-location load",
            run.get("RUN_START", run["created"]) - run.get("RUN_STARTING", run["created"]),
        )
        merge_started = _step_started(instance, current.run_id, "athena__orders_current")
        merge_started = merge_started or run.get("RUN_START", run["created"])
        add(
            "5 wait for the pool / crawl in the run",
            merge_started - run.get("RUN_START", run["created"]),
        )
        add("6 orders_current merge", current.timestamp - merge_started)
        aggregate = _first_materialization_after(
            instance, ["athena", "daily_sales_by_category"], current.timestamp
        )
        if aggregate is None:
            continue
        run = _run_times(instance, aggregate.run_id)
        add("7 aggregates_sensor (-> run requested)", run["created"] - current.timestamp)
        add("8 queue (-> run dequeued)", run.get("RUN_STARTING", run["created"]) - run["created"])
        add(
            "9 process + code-location load",
            run.get("RUN_START", run["created"]) - run.get("RUN_STARTING", run["created"]),
        )
        add("a aggregate run", aggregate.timestamp - run.get("RUN_START", run["created"]))
    print("where the seconds go (median over probes, seconds):")
    for name in sorted(stages):
        values = stages[name]
        print(
            f"  {name[2:]:<42} {statistics.median(values):6.1f}  (max {max(values):.1f}, n={len(values)})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--probes", type=int, default=12)
    parser.add_argument("--every", type=float, default=20.0, help="seconds between probes")
    parser.add_argument("--drain", type=float, default=240.0, help="max wait after the last probe")
    args = parser.parse_args()

    emulator_port, ui_port = free_port(), free_port()
    state = Path(tempfile.mkdtemp(prefix="sales-cdc-freshness-"))
    endpoint = f"http://127.0.0.1:{emulator_port}"
    env = {**os.environ, "SALES_CDC_ENV": "local", "AWS_ENDPOINT_URL": endpoint}
    env.pop("SALES_CDC_PREFIX", None)
    log = (state / "demo.out").open("wb")
    started = time.time()
    demo = subprocess.Popen(
        [sys.executable, "-m", "sales_cdc.cli", "demo", "--emulator-port", str(emulator_port),
         "--ui-port", str(ui_port), "--state-dir", str(state)],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        _wait(f"http://127.0.0.1:{ui_port}/server_info", 300)
        ui_up = time.time()
        os.environ.update({"SALES_CDC_ENV": "local", "AWS_ENDPOINT_URL": endpoint})
        os.environ.pop("SALES_CDC_PREFIX", None)
        settings = load_settings()
        apply_local_credentials(settings)
        resources = build_resources(settings)
        aws, engine = resources["aws"], resources["query_engine"]
        ddb, table = aws.client("dynamodb"), aws.stack().table_name

        print("warming up: waiting for the first orders_current and aggregates...", flush=True)
        deadline = time.monotonic() + 600
        while not _query(engine, "SELECT order_date FROM daily_sales_by_category LIMIT 1"):
            if time.monotonic() > deadline:
                raise SystemExit("the demo produced no aggregate within 10 minutes")
            time.sleep(3)
        import dagster as dg

        deadline = time.monotonic() + 300
        with dg.DagsterInstance.from_config(str(state / "dagster_home")) as instance:
            firsts = first_materializations(instance, started)
            while None in firsts.values() and time.monotonic() < deadline:
                time.sleep(2)
                firsts = first_materializations(instance, started)
        print(f"first minute (seconds after `sales-cdc demo` started): UI {ui_up - started:.1f}")
        for name, seconds in sorted(firsts.items(), key=lambda item: item[1] or 1e9):
            print(f"  {name:<36} {'-' if seconds is None else f'{seconds:6.1f}'}")

        rng, jitter, fake = random.Random(7), random.Random(11), Faker()
        fake.seed_instance(7)
        written: dict[str, tuple[float, str]] = {}  # order_id -> (write time, category)
        wall: dict[str, float] = {}  # order_id -> epoch seconds of the write
        seen_current: dict[str, float] = {}
        seen_aggregate: dict[str, float] = {}
        next_probe = time.monotonic()
        last_write = None
        while True:
            now = time.monotonic()
            if len(written) < args.probes and now >= next_probe:
                order = new_order(fake, rng, datetime.now(UTC))
                order["category"] = f"Probe {len(written):03d}"
                ddb.put_item(TableName=table, Item=to_item(order))
                written[order["orderId"]] = (time.monotonic(), order["category"])
                wall[order["orderId"]] = time.time()
                last_write = time.monotonic()
                next_probe = now + args.every + jitter.uniform(0, MIN_INTERVAL_LOOP_TIME)
            pending_current = [o for o in written if o not in seen_current]
            if pending_current:
                ids = ", ".join(f"'{o}'" for o in pending_current)
                asked = time.monotonic()
                for row in _query(
                    engine, f"SELECT order_id FROM orders_current WHERE order_id IN ({ids})"
                ):
                    seen_current[row["order_id"]] = asked
            pending_aggregate = {c: o for o, (_, c) in written.items() if o not in seen_aggregate}
            if pending_aggregate:
                names = ", ".join(f"'{c}'" for c in pending_aggregate)
                sql = f"SELECT DISTINCT category FROM daily_sales_by_category WHERE category IN ({names})"
                asked = time.monotonic()
                for row in _query(engine, sql):
                    seen_aggregate[pending_aggregate[row["category"]]] = asked
            done = len(written) == args.probes and len(seen_aggregate) == args.probes
            if done or (
                last_write
                and len(written) == args.probes
                and time.monotonic() - last_write > args.drain
            ):
                break
            time.sleep(1.0)

        for name, seen in (
            ("orders_current", seen_current),
            ("daily_sales_by_category", seen_aggregate),
        ):
            latencies = [seen[o] - written[o][0] for o in seen]
            if not latencies:
                print(f"{name}: no probe became visible")
                continue
            print(
                f"{name}: {len(latencies)}/{len(written)} probes visible; "
                f"p50 {statistics.median(latencies):.1f} s, p95 {_percentile(latencies, 0.95):.1f} s, "
                f"max {max(latencies):.1f} s"
            )
        with dg.DagsterInstance.from_config(str(state / "dagster_home")) as instance:
            breakdown(instance, aws, wall)
    finally:
        os.killpg(demo.pid, signal.SIGTERM)
        try:
            demo.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
        log.close()


if __name__ == "__main__":
    main()
