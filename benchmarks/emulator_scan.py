"""The emulator's cost of the reconciliation's Scan, and of the generator's writes, as OrderTable grows.

    .venv/bin/python benchmarks/emulator_scan.py [--orders 20000] [--step 2000]

Starts the emulator (`sales-cdc emulator`, its own process) and a stream-enabled OrderTable, then
puts generator orders (the orders asset's `new_order`, conditional PutItem as the writer does)
`--step` at a time. After each step it prints the put rate, and the wall seconds and emulator CPU
seconds of one parallel Scan of the whole table as `reconcile_orders` runs it (SCAN_SEGMENTS
segments, paginated, projecting the reconciled attributes), and the emulator's RSS.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import boto3  # noqa: E402
from faker import Faker  # noqa: E402

from sales_cdc.defs.lake.projection import SCAN_SEGMENTS  # noqa: E402
from sales_cdc.defs.orders.generator import new_order  # noqa: E402
from sales_cdc.defs.orders.writer import to_item  # noqa: E402
from sales_cdc.emulator.server import free_port, wait_until_ready  # noqa: E402


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    return (
        int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--step", type=int, default=2_000)
    args = parser.parse_args()

    port = free_port()
    emulator = subprocess.Popen(
        [sys.executable, "-m", "sales_cdc.cli", "emulator", "--port", str(port)],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        endpoint = f"http://127.0.0.1:{port}"
        wait_until_ready(endpoint)
        ddb = boto3.client(
            "dynamodb", endpoint_url=endpoint, region_name="us-east-1",
            aws_access_key_id="testing", aws_secret_access_key="testing",
        )  # fmt: skip
        ddb.create_table(
            TableName="OrderTable",
            KeySchema=[{"AttributeName": "orderId", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "orderId", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        fake, rng = Faker(), random.Random(1)
        fake.seed_instance(1)

        def scan(segment: int) -> int:
            kwargs = {
                "TableName": "OrderTable",
                "Segment": segment,
                "TotalSegments": SCAN_SEGMENTS,
                "ProjectionExpression": "orderId, #s, version, totalAmount, updatedAt",
                "ExpressionAttributeNames": {"#s": "status"},
            }
            count = 0
            while True:
                page = ddb.scan(**kwargs)
                count += len(page["Items"])
                if "LastEvaluatedKey" not in page:
                    return count
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

        print(f"{'orders':>7} {'puts/s':>7} {'scan s':>7} {'emulator CPU s':>15} {'RSS MB':>7}")
        for done in range(args.step, args.orders + 1, args.step):
            started = time.perf_counter()
            for _ in range(args.step):
                ddb.put_item(
                    TableName="OrderTable",
                    Item=to_item(new_order(fake, rng, datetime.now(UTC))),
                    ConditionExpression="attribute_not_exists(orderId)",
                )
            rate = args.step / (time.perf_counter() - started)
            cpu, started = _cpu_seconds(emulator.pid), time.perf_counter()
            with ThreadPoolExecutor(SCAN_SEGMENTS) as pool:
                found = sum(pool.map(scan, range(SCAN_SEGMENTS)))
            assert found == done, (found, done)
            print(
                f"{done:7d} {rate:7.1f} {time.perf_counter() - started:7.2f} "
                f"{_cpu_seconds(emulator.pid) - cpu:15.2f} {_rss_mb(emulator.pid):7.0f}",
                flush=True,
            )
    finally:
        emulator.terminate()
        emulator.wait(timeout=30)


if __name__ == "__main__":
    main()
