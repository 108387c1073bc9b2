"""Sustained changes/s through the local stack, and which component limits it.

    python benchmarks/sustained_throughput.py [--writers 4] [--seconds 30]

Starts an emulator and a runtime process and provisions a stack (Firehose buffering 1 MB / 1 s).
Writer threads put orders into OrderTable as fast as the emulator takes them for `--seconds`;
then the script waits until every change has landed in S3. Figures:
- offered rate: changes/s the writers got into DynamoDB;
- sustained rate: changes / (first write -> last change landed);
- per stage, the seconds spent and the busy share of its thread (writers: DynamoDB PutItem;
  pipe: GetRecords, PutRecords, checkpoints; firehose: GetRecords, Lambda, S3 PutObject,
  checkpoints), and the CPU seconds of the emulator and runtime processes. The stage whose thread
  is busy nearly all the time, or the process that holds a core, is the limit.
"""

import argparse
import threading
import time
import uuid

from local_stack import LocalStack, cpu_seconds, order_item


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=4, help="writer threads")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long to write")
    args = parser.parse_args()

    with LocalStack(buffer_seconds=1, buffer_mb=1) as stack:
        table = stack.aws.stack().table_name
        counts = [0] * args.writers
        busy = [0.0] * args.writers
        stop_at = time.monotonic() + args.seconds
        emulator_cpu0 = cpu_seconds(stack.emulator.pid)
        runtime_cpu0 = cpu_seconds(stack.runtime.pid)

        def write(index: int) -> None:
            ddb = stack.aws.client("dynamodb")
            while time.monotonic() < stop_at:
                item = order_item(str(uuid.uuid4()), 1)
                started = time.perf_counter()
                ddb.put_item(TableName=table, Item=item)
                busy[index] += time.perf_counter() - started
                counts[index] += 1

        first_write = time.time()
        writers = [threading.Thread(target=write, args=(i,)) for i in range(args.writers)]
        for thread in writers:
            thread.start()
        seen: set[str] = set()
        landed: set[str] = set()
        last_landed = first_write
        while any(t.is_alive() for t in writers) or len(landed) < sum(counts):
            rows = stack.new_rows(seen)
            if rows:
                last_landed = max(at for at, _ in rows)
                landed.update(row["event_id"] for _, row in rows)
            if time.time() - last_landed > 60 and not any(t.is_alive() for t in writers):
                break
            time.sleep(0.5)
        wall = last_landed - first_write
        emulator_cpu = cpu_seconds(stack.emulator.pid) - emulator_cpu0
        runtime_cpu = cpu_seconds(stack.runtime.pid) - runtime_cpu0
        stats = stack.stop_runtime()

    written = sum(counts)
    print(f"writers: {args.writers} threads for {args.seconds:g} s")
    print(f"offered: {written} changes, {written / args.seconds:.0f} changes/s into DynamoDB")
    print(f"landed: {len(landed)} of {written}; sustained {len(landed) / wall:.0f} changes/s "
          f"(first write -> last landed {wall:.1f} s)")  # fmt: skip
    pipe, firehose = stats.get("pipe", {}), stats.get("firehose", {})
    stages = [
        ("dynamodb PutItem (writers, per thread)", sum(busy) / args.writers, written),
        ("pipe GetRecords", pipe.get("read_seconds", 0), pipe.get("records", 0)),
        ("pipe PutRecords", pipe.get("put_seconds", 0), pipe.get("records", 0)),
        ("pipe checkpoints", pipe.get("checkpoint_seconds", 0), pipe.get("records", 0)),
        ("firehose GetRecords", firehose.get("read_seconds", 0), firehose.get("records", 0)),
        ("firehose Lambda", firehose.get("lambda_seconds", 0), firehose.get("records", 0)),
        ("firehose S3 PutObject", firehose.get("s3_seconds", 0), firehose.get("records", 0)),
        ("firehose checkpoints", firehose.get("checkpoint_seconds", 0), firehose.get("records", 0)),
    ]
    print(f"{'stage':40} {'seconds':>8} {'busy':>6} {'us/change':>10}")
    for name, seconds, records in stages:
        per = seconds / records * 1e6 if records else 0
        print(f"{name:40} {seconds:8.2f} {seconds / wall:6.0%} {per:10.0f}")
    pipe_busy = sum(pipe.get(k, 0) for k in ("read_seconds", "put_seconds", "checkpoint_seconds"))
    fh_busy = sum(
        firehose.get(k, 0)
        for k in ("read_seconds", "lambda_seconds", "s3_seconds", "checkpoint_seconds")
    )
    print(f"pipe thread busy {pipe_busy / wall:.0%}, firehose thread busy {fh_busy / wall:.0%}, "
          f"writer threads busy {sum(busy) / args.writers / args.seconds:.0%}")  # fmt: skip
    print(f"CPU: emulator process {emulator_cpu:.1f} s ({emulator_cpu / wall:.0%} of a core), "
          f"runtime process {runtime_cpu:.1f} s ({runtime_cpu / wall:.0%} of a core), 2 cores")  # fmt: skip
    shares = {
        "the emulator (moto, one process: DynamoDB writes and every API call)": emulator_cpu,
        "the runtime process": runtime_cpu,
    }
    print(f"limit: {max(shares, key=shares.__getitem__)}")


if __name__ == "__main__":
    main()
