"""Latency from a DynamoDB write to its landing row in S3, through the local runtime.

    python benchmarks/end_to_end_latency.py [--rate 10] [--seconds 30]

Starts an emulator and a runtime process, provisions a stack with the delivery buffering interval
at 1 second, writes orders at a steady rate (inserts, then updates of the same orders) and polls
S3 every 100 ms. Latency of a change = when its object was first listed - when its write returned
(so it includes up to ~0.1 s of polling). The pipe's batching window (1 s, infra/stack.yaml) and
Firehose's buffering interval (1 s) are the floor.
"""

import argparse
import threading
import time
import uuid

from local_stack import LocalStack, order_item, percentile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=10.0, help="changes per second")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long to write")
    args = parser.parse_args()

    with LocalStack(buffer_seconds=1) as stack:
        ddb = stack.aws.client("dynamodb")
        table = stack.aws.stack().table_name
        written: dict[tuple[str, int], float] = {}
        landed: dict[tuple[str, int], float] = {}
        seen: set[str] = set()
        done = threading.Event()

        def observe() -> None:
            while not done.is_set() or len(landed) < len(written):
                for seen_at, row in stack.new_rows(seen):
                    landed.setdefault((row["order_id"], int(row["version"])), seen_at)
                time.sleep(0.1)
                if done.is_set() and time.time() - last_write > 60:
                    break

        last_write = time.time()
        observer = threading.Thread(target=observe)
        observer.start()
        orders: list[str] = []
        interval = 1.0 / args.rate
        start = time.monotonic()
        n = 0
        while time.monotonic() - start < args.seconds:
            if orders and n % 2:
                order_id = orders.pop(0)
                version = 2
                ddb.put_item(TableName=table, Item=order_item(order_id, version, "PAID"))
            else:
                order_id = str(uuid.uuid4())
                version = 1
                ddb.put_item(TableName=table, Item=order_item(order_id, version))
                orders.append(order_id)
            written[(order_id, version)] = last_write = time.time()
            n += 1
            time.sleep(max(0.0, start + n * interval - time.monotonic()))
        done.set()
        observer.join()
        stats = stack.stop_runtime()

    latencies = [landed[key] - at for key, at in written.items() if key in landed]
    print(f"changes written: {len(written)} at {args.rate:g}/s; landed: {len(latencies)}")
    if latencies:
        print(
            f"end-to-end latency (write -> object in S3): p50 {percentile(latencies, 0.5):.2f} s, "
            f"p95 {percentile(latencies, 0.95):.2f} s, max {max(latencies):.2f} s"
        )
    print("settings: pipe MaximumBatchingWindowInSeconds 1, Firehose IntervalInSeconds 1")
    if stats:
        print(f"runtime: pipe batches {stats['pipe']['batches']:.0f}, "
              f"objects {stats['firehose']['objects']:.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
