"""A whole local stack for the runtime benchmarks: emulator and runtime processes, provisioned.

Used by end_to_end_latency.py and sustained_throughput.py (run from the repository root):
the emulator (`sales-cdc emulator`) and the runtime (`sales-cdc runtime`) each run in a process
of their own, as a user runs them; this process provisions, writes and observes.
"""

import gzip
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from sales_cdc.emulator.server import free_port, wait_until_ready  # noqa: E402

STATS_LINE = re.compile(r"(pipe|delivery stream) (\S+): stopped; stats (\{.*\})")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class LocalStack:
    """Emulator + provisioned stack + runtime; `with LocalStack() as stack:`."""

    def __init__(self, buffer_seconds: int = 1, buffer_mb: int = 1) -> None:
        self.buffer_seconds = buffer_seconds
        self.buffer_mb = buffer_mb
        self.workdir = Path(tempfile.mkdtemp(prefix="sales-cdc-bench-"))
        self.port = free_port()
        self.prefix = f"bench{uuid.uuid4().hex[:8]}"
        self.emulator: subprocess.Popen[bytes] | None = None
        self.runtime: subprocess.Popen[bytes] | None = None
        self.runtime_log = self.workdir / "runtime.log"
        self.aws: Any = None

    def __enter__(self) -> "LocalStack":
        env = os.environ
        env.update(
            SALES_CDC_ENV="local",
            SALES_CDC_PREFIX=self.prefix,
            AWS_ENDPOINT_URL=f"http://127.0.0.1:{self.port}",
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_DEFAULT_REGION="us-east-1",
        )
        self.emulator = subprocess.Popen(
            [sys.executable, "-m", "sales_cdc.cli", "emulator", "--port", str(self.port)],
            cwd=REPO_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until_ready(env["AWS_ENDPOINT_URL"])
        from sales_cdc.defs.infrastructure.provision import provision_all
        from sales_cdc.resources.aws import AwsResource
        from sales_cdc.settings import load_settings

        self.aws = AwsResource.from_settings(load_settings())
        provision_all(self.aws)
        self._set_buffering()
        self.runtime = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sales_cdc.cli",
                "runtime",
                "--lambda-cache-dir",
                str(self.workdir / "lambda-cache"),
            ],
            cwd=REPO_ROOT,
            stdout=self.runtime_log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        self._wait_for_runtime()
        return self

    def _set_buffering(self) -> None:
        firehose = self.aws.client("firehose")
        name = self.aws.stack().delivery_name
        description = firehose.describe_delivery_stream(DeliveryStreamName=name)[
            "DeliveryStreamDescription"
        ]
        firehose.update_destination(
            DeliveryStreamName=name,
            CurrentDeliveryStreamVersionId=description["VersionId"],
            DestinationId=description["Destinations"][0]["DestinationId"],
            ExtendedS3DestinationUpdate={
                "BufferingHints": {
                    "SizeInMBs": self.buffer_mb,
                    "IntervalInSeconds": self.buffer_seconds,
                }
            },
        )

    def _wait_for_runtime(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.runtime_log.read_text().count("leased shard") < 3:
            if time.monotonic() > deadline or self.runtime.poll() is not None:
                raise RuntimeError(f"the runtime did not start: see {self.runtime_log}")
            time.sleep(0.2)

    def stop_runtime(self) -> dict[str, dict[str, float]]:
        """SIGTERM the runtime; the per-component stats it logs on the way out."""
        if self.runtime is None or self.runtime.poll() is not None:
            return {}
        self.runtime.send_signal(signal.SIGTERM)
        self.runtime.wait(timeout=60)
        stats = {}
        for kind, _name, payload in STATS_LINE.findall(self.runtime_log.read_text()):
            stats["pipe" if kind == "pipe" else "firehose"] = json.loads(payload)
        return stats

    def __exit__(self, *exc: object) -> None:
        for process in (self.runtime, self.emulator):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()

    # -- observing the lake ----------------------------------------------------------------

    def new_rows(self, seen: set[str]) -> list[tuple[float, dict[str, Any]]]:
        """Landing rows of objects not in `seen` (updated), with the time they were first seen."""
        s3 = self.aws.client("s3") if not hasattr(self, "_s3") else self._s3
        self._s3 = s3
        stack = self.aws.stack()
        rows = []
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=stack.bucket, Prefix=stack.raw_prefix
        ):
            for item in page.get("Contents", []):
                if item["Key"] in seen:
                    continue
                now = time.time()
                seen.add(item["Key"])
                body = gzip.decompress(
                    s3.get_object(Bucket=stack.bucket, Key=item["Key"])["Body"].read()
                )
                rows += [(now, json.loads(line)) for line in body.splitlines()]
        return rows


def order_item(order_id: str, version: int, status: str = "PLACED") -> dict[str, Any]:
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    return {
        "orderId": {"S": order_id},
        "customerId": {"S": "c-42"},
        "customerName": {"S": "Ada Lovelace"},
        "customerCity": {"S": "London"},
        "customerCountry": {"S": "GB"},
        "productId": {"S": "p-7"},
        "productName": {"S": "Analytical Engine"},
        "category": {"S": "Machines"},
        "quantity": {"N": "1"},
        "unitPrice": {"N": "1843.00"},
        "totalAmount": {"N": "1843.00"},
        "currency": {"S": "GBP"},
        "paymentMethod": {"S": "card"},
        "channel": {"S": "web"},
        "status": {"S": status},
        "createdAt": {"S": now},
        "updatedAt": {"S": now},
        "version": {"N": str(version)},
    }


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]
