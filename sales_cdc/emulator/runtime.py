"""`sales-cdc runtime`: the pipe and Firehose data plane that AWS runs for you, run locally.

It reads the pipes and delivery streams of this deployment (SALES_CDC_PREFIX) from the emulator's
APIs, runs one thread per pipe and per delivery stream, and keeps its checkpoints in the
emulator's DynamoDB, so that a killed runtime resumes where it left off.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from sales_cdc.emulator.checkpoints import CheckpointStore
from sales_cdc.emulator.firehose import DeliveryConfig, DeliveryWorker, UnsupportedConfiguration
from sales_cdc.emulator.lambda_runtime import FunctionLoader, default_cache_dir
from sales_cdc.emulator.pipe import PipeConfig, PipeWorker
from sales_cdc.settings import Settings, SettingsError, apply_local_credentials, load_settings
from sales_cdc.stack import Stack, checkpoint_table_name

log = logging.getLogger("sales_cdc.runtime")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `runtime` subcommand's options."""
    parser.add_argument(
        "--pipe-poll-interval",
        type=float,
        default=0.25,
        help="seconds between reads of an idle DynamoDB stream (default %(default)s)",
    )
    parser.add_argument(
        "--firehose-poll-interval",
        type=float,
        default=0.25,
        help="seconds between reads of an idle Kinesis stream (default %(default)s)",
    )
    parser.add_argument(
        "--discovery-interval",
        type=float,
        default=2.0,
        help="seconds between reads of the pipe and delivery stream configuration (default %(default)s)",
    )
    parser.add_argument(
        "--lambda-cache-dir",
        type=Path,
        default=None,
        help=f"where deployed Lambda artifacts are extracted (default {default_cache_dir()})",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default %(default)s)")


@dataclass
class RuntimeOptions:
    pipe_poll_interval: float = 0.25
    firehose_poll_interval: float = 0.25
    discovery_interval: float = 2.0
    lambda_cache_dir: Path | None = None


def unreachable(endpoint: str, timeout: float = 2.0) -> str | None:
    """None when something accepts connections at `endpoint`, else one line saying what to start."""
    parsed = urllib.parse.urlsplit(endpoint)
    host = parsed.hostname or "127.0.0.1"
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
    return (
        f"the emulator at {endpoint} (AWS_ENDPOINT_URL) is not reachable ({reason}): start it "
        f"with `sales-cdc emulator --port {port}`, or the whole stack with `make demo`"
    )


class Clients:
    """boto3 clients for the emulator; one set per thread (clients are not shared across threads)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._session = boto3.session.Session()
        self._config = Config(
            retries={"max_attempts": 5, "mode": "standard"},
            max_pool_connections=4,
            connect_timeout=5,
            read_timeout=30,
        )

    def client(self, service: str) -> Any:
        return self._session.client(
            service,
            region_name=self.settings.region,
            endpoint_url=self.settings.endpoint_url,
            config=self._config,
        )


class Runtime:
    """Discovers this deployment's pipes and delivery streams and runs a worker for each."""

    def __init__(self, settings: Settings, options: RuntimeOptions) -> None:
        self.settings = settings
        self.options = options
        self.stop = threading.Event()
        self.clients = Clients(settings)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.stack: Stack | None = None
        self.store: CheckpointStore | None = None
        self.pipes: dict[str, tuple[PipeWorker, threading.Thread]] = {}
        self.deliveries: dict[str, tuple[DeliveryWorker, threading.Thread]] = {}
        self._pipes_api = self.clients.client("pipes")
        self._firehose_api = self.clients.client("firehose")
        self._last_waiting_log = float("-inf")

    # -- lifecycle -------------------------------------------------------------------------

    def run(self) -> None:
        log.info(
            "sales-cdc runtime for prefix %s against %s (owner %s)",
            self.settings.prefix,
            self.settings.endpoint_url,
            self.owner,
        )
        down = False
        while not self.stop.is_set():
            problem = unreachable(self.settings.endpoint_url or "")
            if problem:
                if not down:  # one line when it goes down, not one per retry
                    log.warning("%s; waiting for it", problem)
                down = True
                self.stop.wait(self.options.discovery_interval)
                continue
            if down:
                log.info("the emulator at %s answers again", self.settings.endpoint_url)
                down = False
            try:
                self._connect()
                self.discover()
            except (BotoCoreError, ClientError) as exc:
                log.warning("cannot read the stack from %s: %s; retrying",
                            self.settings.endpoint_url, exc)  # fmt: skip
            self.stop.wait(self.options.discovery_interval)
        self.shutdown()

    def shutdown(self) -> None:
        workers = [*self.pipes.values(), *self.deliveries.values()]
        for _worker, thread in workers:
            thread.join(timeout=30)
        log.info("sales-cdc runtime stopped")

    def _connect(self) -> None:
        """Load the stack and make sure the checkpoint table exists, on every discovery.

        A checkpoint table that has to be created while workers run means the emulator was
        restarted (its state is in memory): every stream was re-created and the workers' positions
        and checkpoints belong to streams that are gone. They are retired and started afresh from
        the new checkpoints, with the stack declaration read again.
        """
        if self.stack is None:
            account = self.clients.client("sts").get_caller_identity()["Account"]
            self.stack = Stack.load(self.settings, account)
        if self.store is None:
            self.store = CheckpointStore(
                self.clients.client("dynamodb"), checkpoint_table_name(self.stack), self.owner
            )
        if self.store.ensure_table() and (self.pipes or self.deliveries):
            log.warning(
                "checkpoint table %s was gone (emulator restarted?): re-created it; restarting "
                "the workers from the new stack",
                self.store.table_name,
            )
            self._retire_all()
            account = self.clients.client("sts").get_caller_identity()["Account"]
            self.stack = Stack.load(self.settings, account)

    def _retire_all(self) -> None:
        for running in (self.pipes, self.deliveries):
            for worker, _thread in running.values():
                worker.retired.set()
            for _worker, thread in running.values():
                thread.join(timeout=30)
            running.clear()

    # -- discovery -------------------------------------------------------------------------

    def _name_prefix(self) -> str:
        return f"{self.settings.prefix}-"

    def pipe_configs(self) -> dict[str, PipeConfig]:
        configs: dict[str, PipeConfig] = {}
        kwargs: dict[str, Any] = {"NamePrefix": self._name_prefix()}
        while True:
            page = self._pipes_api.list_pipes(**kwargs)
            for summary in page.get("Pipes", []):
                if not summary["Name"].startswith(self._name_prefix()):
                    continue
                try:
                    described = self._pipes_api.describe_pipe(Name=summary["Name"])
                except ClientError as exc:
                    if exc.response.get("Error", {}).get("Code") == "NotFoundException":
                        continue
                    raise
                config = PipeConfig.from_description(described)
                if config is not None:
                    configs[config.name] = config
            if not page.get("NextToken"):
                return configs
            kwargs["NextToken"] = page["NextToken"]

    def delivery_configs(self) -> dict[str, DeliveryConfig]:
        names: list[str] = []
        kwargs: dict[str, Any] = {"DeliveryStreamType": "KinesisStreamAsSource", "Limit": 100}
        while True:
            page = self._firehose_api.list_delivery_streams(**kwargs)
            names += page.get("DeliveryStreamNames", [])
            if not page.get("HasMoreDeliveryStreams") or not page.get("DeliveryStreamNames"):
                break
            kwargs["ExclusiveStartDeliveryStreamName"] = page["DeliveryStreamNames"][-1]
        configs: dict[str, DeliveryConfig] = {}
        for name in names:
            if not name.startswith(self._name_prefix()):
                continue
            try:
                described = self._firehose_api.describe_delivery_stream(DeliveryStreamName=name)
                config = DeliveryConfig.from_description(described["DeliveryStreamDescription"])
            except UnsupportedConfiguration as exc:
                log.error("%s; not delivering it", exc)
                continue
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                    continue
                raise
            if config is not None:
                configs[config.name] = config
        return configs

    def discover(self) -> None:
        """Start, update or retire workers to match what the APIs say now."""
        pipes = self.pipe_configs()
        deliveries = self.delivery_configs()
        self._reconcile(self.pipes, pipes, self._start_pipe, "pipe")
        self._reconcile(self.deliveries, deliveries, self._start_delivery, "delivery stream")
        if (not pipes or not deliveries) and time.monotonic() - self._last_waiting_log > 30:
            missing = [
                what
                for what, found in (("pipe", pipes), ("delivery stream", deliveries))
                if not found
            ]
            log.info(
                "waiting for provision_infrastructure: no running %s for prefix %s yet",
                " and no ".join(missing),
                self.settings.prefix,
            )
            self._last_waiting_log = time.monotonic()

    def _reconcile(
        self,
        running: dict[str, tuple[Any, threading.Thread]],
        wanted: dict[str, Any],
        start: Callable[[Any], tuple[Any, threading.Thread]],
        kind: str,
    ) -> None:
        for name in list(running):
            worker, thread = running[name]
            if not thread.is_alive():
                del running[name]
            elif name not in wanted or _identity(wanted[name]) != _identity(worker.config):
                log.info("%s %s is gone or was replaced; stopping its worker", kind, name)
                worker.retired.set()
                thread.join(timeout=30)
                del running[name]
            else:
                worker.update(wanted[name])
        for name, config in wanted.items():
            if name not in running:
                running[name] = start(config)

    def _start_pipe(self, config: PipeConfig) -> tuple[PipeWorker, threading.Thread]:
        assert self.store is not None
        store = CheckpointStore(self.clients.client("dynamodb"), self.store.table_name, self.owner)
        worker = PipeWorker(
            config,
            dynamodbstreams=self.clients.client("dynamodbstreams"),
            kinesis=self.clients.client("kinesis"),
            store=store,
            stop=self.stop,
            poll_interval=self.options.pipe_poll_interval,
            sqs=self.clients.client("sqs"),
        )
        thread = threading.Thread(target=worker.run, name=f"pipe-{config.name}", daemon=True)
        thread.start()
        return worker, thread

    def _start_delivery(self, config: DeliveryConfig) -> tuple[DeliveryWorker, threading.Thread]:
        assert self.store is not None and self.stack is not None
        store = CheckpointStore(self.clients.client("dynamodb"), self.store.table_name, self.owner)
        s3 = self.clients.client("s3")
        functions = FunctionLoader(
            self.clients.client("lambda"),
            s3,
            artifact_bucket=self.stack.bucket,
            artifact_prefix=self.stack.artifact_prefix,
            cache_dir=self.options.lambda_cache_dir,
        )
        worker = DeliveryWorker(
            config,
            kinesis=self.clients.client("kinesis"),
            s3=s3,
            functions=functions,
            store=store,
            stop=self.stop,
            region=self.settings.region,
            poll_interval=self.options.firehose_poll_interval,
        )
        thread = threading.Thread(target=worker.run, name=f"firehose-{config.name}", daemon=True)
        thread.start()
        return worker, thread


def _identity(config: PipeConfig | DeliveryConfig) -> tuple[str, ...]:
    """What cannot change under a running worker (its source); other settings are updated."""
    if isinstance(config, PipeConfig):
        return (config.arn, config.source_arn, config.target_arn)
    return (config.arn, config.source_stream_arn)


def run_runtime(args: argparse.Namespace) -> int:
    """Entry point of `sales-cdc runtime`."""
    logging.basicConfig(
        stream=sys.stdout,
        level=getattr(args, "log_level", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s",
    )
    logging.getLogger("botocore").setLevel(logging.WARNING)
    settings = load_settings()
    if not settings.is_local:
        raise SettingsError(
            "`sales-cdc runtime` only runs with SALES_CDC_ENV=local: in AWS the EventBridge Pipe "
            "and Kinesis Data Firehose run the data plane themselves. Unset SALES_CDC_ENV (or set "
            "it to local) to run the runtime against the embedded emulator."
        )
    apply_local_credentials(settings)
    problem = unreachable(settings.endpoint_url or "")
    if problem:
        print(f"sales-cdc runtime: {problem}", file=sys.stderr)
        return 1
    options = RuntimeOptions(
        pipe_poll_interval=getattr(args, "pipe_poll_interval", 0.25),
        firehose_poll_interval=getattr(args, "firehose_poll_interval", 0.25),
        discovery_interval=getattr(args, "discovery_interval", 2.0),
        lambda_cache_dir=getattr(args, "lambda_cache_dir", None),
    )
    runtime = Runtime(settings, options)

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: delivering what was read, then stopping",
                 signal.Signals(signum).name)  # fmt: skip
        runtime.stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    runtime.run()
    return 0
