"""What the emulator holds per change, store by store.

    .venv/bin/python benchmarks/emulator_memory.py [--warmup 2000] [--changes 4000]

Starts the emulator in this process, provisions a stack, starts the runtime (`sales-cdc runtime`,
its own process) and drives generator runs (the orders asset's planner and writer) through
DynamoDB, Streams, the pipe, Kinesis, Firehose and S3. After a warm-up, and again after
`--changes` more once the runtime has delivered them, it measures each store (every object it
refers to, counted once): DynamoDB items, stream records, shard iterators, Kinesis records, S3
objects (bodies kept in memory included), multipart uploads, and the rest of each service's
state. It prints what each store holds, the bytes of one entry, and the bytes added per change.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import types
import uuid
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SKIPPED = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType)


def deep_size(root: object, seen: set[int]) -> int:
    """Bytes of `root` and of everything it refers to that no earlier call counted."""
    size, todo = 0, [root]
    while todo:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, SKIPPED):
            continue
        seen.add(id(obj))
        size += sys.getsizeof(obj)
        todo.extend(gc.get_referents(obj))
        if isinstance(obj, dict):  # the collector does not list the keys of a str-keyed dict
            todo.extend(obj)
    return size


def drive(aws, changes: int, batch: int, rng: random.Random) -> int:
    """Generator runs of `batch` changes (60% new orders, status updates, 5% deletes)."""
    from faker import Faker

    from sales_cdc.defs.orders.generator import Mix, plan_changes
    from sales_cdc.defs.orders.writer import apply_changes, sample_orders

    fake = Faker()
    fake.seed_instance(rng.randrange(2**32))
    ddb, table = aws.client("dynamodb"), aws.stack().table_name
    done = 0
    while done < changes:
        new = batch * 6 // 10
        mix = Mix(new, batch - new - batch // 20, batch // 20)
        planned = plan_changes(mix, sample_orders(ddb, table, rng), rng, fake, datetime.now(UTC))
        done += sum(apply_changes(ddb, table, planned, datetime.now(UTC)).values())
    return done


def wait_delivered(aws, timeout: float = 300.0) -> None:
    """Wait until the pipe has put every stream record into Kinesis, then one Firehose buffer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        held = stores(aws)
        if held["kinesis records"][0] >= held["stream records"][0]:
            break
        time.sleep(2)
    time.sleep(10)


def rss_mb() -> float:
    status = Path("/proc/self/status").read_text()
    return (
        next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
        / 1024
    )


def stores(aws) -> dict[str, tuple[int, int]]:
    """(how many things, bytes) each store of the stack holds, each object counted once."""
    from moto.core.base_backend import BackendDict
    from moto.dynamodb.models import dynamodb_backends
    from moto.dynamodbstreams.models import dynamodbstreams_backends
    from moto.kinesis.models import kinesis_backends
    from moto.s3.models import s3_backends

    region, account = "us-east-1", "123456789012"
    stack = aws.stack()
    table = dynamodb_backends[account][region].tables[stack.table_name]
    shards = kinesis_backends[account][region].streams[stack.stream_name].shards.values()
    bucket = s3_backends[account]["aws"].buckets[stack.bucket]
    iterators = dynamodbstreams_backends[account][region].shard_iterators
    seen: set[int] = set()
    found = {
        "dynamodb items": (len(table.items), deep_size(table.items, seen)),
        "stream records": (
            len(table.stream_shard.items),
            deep_size(table.stream_shard.items, seen),
        ),
        "shard iterators": (len(iterators), deep_size(iterators, seen)),
        "kinesis records": (
            sum(len(s.records) for s in shards),
            sum(deep_size(s.records, seen) for s in shards),
        ),
        "s3 objects": (len(bucket.keys), deep_size(bucket.keys, seen)),
        "s3 multipart uploads": (len(bucket.multiparts), deep_size(bucket.multiparts, seen)),
    }
    import moto.backends

    for name in (
        "glue",
        "firehose",
        "logs",
        "awslambda",
        "iam",
        "pipes",
        "s3",
        "dynamodb",
        "kinesis",
    ):
        backends = moto.backends.get_backend(name)  # type: ignore[call-overload]
        assert isinstance(backends, BackendDict)
        found[f"rest of {name}"] = (0, deep_size(dict(backends), seen))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warmup", type=int, default=2000, help="changes before the first look")
    parser.add_argument("--changes", type=int, default=4000, help="changes measured")
    parser.add_argument("--batch", type=int, default=1000, help="changes per generator run")
    args = parser.parse_args()

    from sales_cdc.emulator.server import Emulator, free_port

    emulator = Emulator(free_port()).start()
    workdir = Path(tempfile.mkdtemp(prefix="sales-cdc-memory-"))
    os.environ.update(
        SALES_CDC_ENV="local", SALES_CDC_PREFIX=f"mem{uuid.uuid4().hex[:6]}",
        AWS_ENDPOINT_URL=emulator.endpoint, AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1",
    )  # fmt: skip
    from sales_cdc.defs.infrastructure.provision import provision_all
    from sales_cdc.resources.aws import AwsResource
    from sales_cdc.settings import load_settings

    aws = AwsResource.from_settings(load_settings())
    provision_all(aws)
    runtime_log = (workdir / "runtime.log").open("wb")
    runtime = subprocess.Popen(
        [sys.executable, "-m", "sales_cdc.cli", "runtime",
         "--lambda-cache-dir", str(workdir / "lambda-cache")],
        cwd=REPO, stdout=runtime_log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    rng = random.Random(7)
    try:
        drive(aws, args.warmup, args.batch, rng)
        wait_delivered(aws)
        gc.collect()
        rss_before, before = rss_mb(), stores(aws)
        changes = drive(aws, args.changes, args.batch, rng)
        wait_delivered(aws)
        gc.collect()
        rss_after, after = rss_mb(), stores(aws)
    finally:
        runtime.send_signal(signal.SIGTERM)
        runtime.wait(timeout=60)
        emulator.stop()

    print(f"\n{changes} changes after a warm-up of {args.warmup} (load {os.getloadavg()[0]:.1f})")
    print(f"{'store':<22} {'held before':>12} {'after':>8} {'bytes each':>11} {'B/change':>9}")
    total = 0
    for name, (count, size) in after.items():
        count0, size0 = before[name]
        each = f"{size / count:.0f}" if count else "-"
        total += size - size0
        print(f"{name:<22} {count0:>12} {count:>8} {each:>11} {(size - size0) / changes:>9.0f}")
    print(f"{'stores, total':<22} {'':>12} {'':>8} {'':>11} {total / changes:>9.0f}")
    print(f"process RSS {rss_before:.0f} -> {rss_after:.0f} MB: "
          f"{(rss_after - rss_before) * 2**20 / changes:.0f} B/change")  # fmt: skip


if __name__ == "__main__":
    main()
