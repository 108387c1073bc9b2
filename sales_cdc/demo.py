"""`sales-cdc demo`: emulator, provisioning, local runtime and the Dagster UI, started in order.

Every process is started the way a user would start it (the same commands as in the README);
Ctrl-C or SIGTERM stops all of them, newest first.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO

from sales_cdc.emulator.server import free_port
from sales_cdc.settings import SettingsError, load_settings
from sales_cdc.stack import REPO_ROOT

DEMO_DIR = REPO_ROOT / ".demo"
# The Dagster instance's settings (infra/dagster.yaml, also the one to use on aws): queued runs
# picked up every half second, sensors evaluated side by side, one lake-writing run at a time.
DAGSTER_YAML = REPO_ROOT / "infra" / "dagster.yaml"


class DemoError(RuntimeError):
    """The demo could not start."""


@dataclass
class Child:
    name: str
    process: subprocess.Popen
    log_path: Path
    log: IO[bytes]


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _wait_http(url: str, timeout: float, child: Child) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.process.poll() is not None:
            raise DemoError(
                f"{child.name} exited with code {child.process.returncode}:\n{_tail(child)}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    raise DemoError(f"{child.name} did not answer on {url} within {timeout:.0f}s:\n{_tail(child)}")


def _stats() -> dict[int, list[str]]:
    """The fields of /proc/<pid>/stat after the command name (state, ppid, pgrp, session, ...),
    of every process."""
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                stats[int(entry.name)] = (entry / "stat").read_text().rsplit(")", 1)[1].split()
    return stats


def descendants(pid: int) -> dict[int, str | None]:
    """Every process below `pid` with its start time (to tell a reused pid apart); Linux only."""
    if not Path("/proc").is_dir():
        return {}
    stats = _stats()
    tree: dict[int, list[int]] = {}
    for process, fields in stats.items():
        tree.setdefault(int(fields[1]), []).append(process)
    found: dict[int, str | None] = {}
    todo = [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            if child not in found:
                found[child] = stats[child][19]
                todo.append(child)
    return found


def session_members(session: int) -> dict[int, str | None]:
    """Every process of the session `session` with its start time; Linux only.

    A child started in a session of its own leaves there what it starts, even what outlives it
    (reparented to init, out of reach of `descendants`): a run Dagster launched while the demo
    was stopping, for instance.
    """
    if not Path("/proc").is_dir():
        return {}
    return {pid: fields[19] for pid, fields in _stats().items() if int(fields[3]) == session}


def running(pid: int, started: str | None) -> bool:
    """The process recorded as (pid, start time) still runs (not gone, reused, or a zombie)."""
    try:
        fields = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    return started is not None and fields[19] == started and fields[0] != "Z"


def _end_leftovers(processes: dict[int, str | None], grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL, what is left of `processes` (only the very processes recorded)."""
    alive = {pid for pid, started in processes.items() if running(pid, started)}
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = {pid for pid in alive if running(pid, processes[pid])}
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = {pid for pid in alive if running(pid, processes[pid])}


def _tail(child: Child, lines: int = 30) -> str:
    child.log.flush()
    text = child.log_path.read_text(errors="replace").splitlines()
    return "\n".join(f"  {line}" for line in text[-lines:])


class Demo:
    """The processes of the local demo, started in order and stopped in reverse."""

    def __init__(
        self,
        emulator_port: int,
        ui_port: int,
        state_dir: Path = DEMO_DIR,
        dashboard_port: int = 8501,
    ) -> None:
        self.emulator_port = emulator_port
        self.ui_port = ui_port
        self.dashboard_port = dashboard_port
        self.children: list[Child] = []
        self.one_shots: list[Child] = []  # commands that end by themselves (first orders)
        self.endpoint = f"http://127.0.0.1:{emulator_port}"
        self.home = state_dir / "dagster_home"
        self.logs = state_dir / "logs"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "SALES_CDC_ENV": "local",
                "AWS_ENDPOINT_URL": self.endpoint,
                "DAGSTER_HOME": str(self.home),
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.setdefault("AWS_ACCESS_KEY_ID", "testing")
        env.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
        return env

    def start(self, name: str, args: list[str]) -> Child:
        log_path = self.logs / f"{name}.log"
        log = log_path.open("wb")
        process = subprocess.Popen(
            args,
            cwd=REPO_ROOT,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        child = Child(name, process, log_path, log)
        self.children.append(child)
        shown = log_path.relative_to(REPO_ROOT) if log_path.is_relative_to(REPO_ROOT) else log_path
        print(f"  started {name} (pid {process.pid}, log {shown})", flush=True)
        return child

    def prepare(self) -> None:
        settings = load_settings(
            {**os.environ, "AWS_ENDPOINT_URL": self.endpoint, "SALES_CDC_ENV": "local"}
        )
        if os.environ.get("SALES_CDC_ENV", "local") != "local":
            raise SettingsError(
                f"SALES_CDC_ENV={os.environ['SALES_CDC_ENV']!r}: the demo runs the embedded stack "
                "only. Unset SALES_CDC_ENV (or set it to local)."
            )
        for port, what, flag in (
            (self.emulator_port, "emulator", "--emulator-port"),
            (self.ui_port, "Dagster UI", "--ui-port"),
        ):
            if not _port_free(port):
                raise DemoError(
                    f"Port {port} on 127.0.0.1 is in use, the {what} needs it. Stop what listens "
                    f"there or choose another: sales-cdc demo {flag} <N>."
                )
        # Emulator state lives in memory: start Dagster's history afresh with it.
        shutil.rmtree(self.home, ignore_errors=True)
        self.home.mkdir(parents=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(DAGSTER_YAML, self.home / "dagster.yaml")
        print(f"sales-cdc demo (prefix {settings.prefix!r}, region {settings.region})", flush=True)

    def run(self) -> int:
        self.prepare()
        python = sys.executable
        dagster = str(Path(python).with_name("dagster"))
        emulator = self.start(
            "emulator",
            [python, "-m", "sales_cdc.cli", "emulator", "--port", str(self.emulator_port)],
        )
        _wait_http(f"{self.endpoint}/moto-api/data.json", 60, emulator)

        print("  provisioning the stack (provision_infrastructure)...", flush=True)
        provision = self.start(
            "provision",
            [
                dagster,
                "job",
                "execute",
                "-m",
                "sales_cdc.definitions",
                "-j",
                "provision_infrastructure",
            ],
        )
        if provision.process.wait() != 0:
            raise DemoError(f"provision_infrastructure failed:\n{_tail(provision)}")
        self.children.remove(provision)

        self.start("runtime", [python, "-m", "sales_cdc.cli", "runtime"])
        # Data in the first minute: the generator's first run (with its history on an empty
        # table) starts now, as a user would start it, instead of at the schedule's first tick.
        first = self.start(
            "first-orders",
            [dagster, "asset", "materialize", "-m", "sales_cdc.definitions",
             "--select", "dynamodb/orders"],
        )  # fmt: skip
        self.children.remove(first)
        self.one_shots.append(first)
        ui = self.start(
            "dagster",
            [
                dagster,
                "dev",
                "-w",
                str(REPO_ROOT / "workspace.yaml"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.ui_port),
            ],
        )
        _wait_http(f"http://127.0.0.1:{self.ui_port}/server_info", 180, ui)
        if not _port_free(self.dashboard_port):  # the dashboard is optional: take a free port
            self.dashboard_port = free_port()
        dashboard = [python, "-m", "sales_cdc.cli", "dashboard", "--port", str(self.dashboard_port)]
        _wait_http(f"{self.dashboard_url}/_stcore/health", 120, self.start("dashboard", dashboard))
        print(
            f"\nDagster UI: http://127.0.0.1:{self.ui_port}  (asset graph: "
            f"http://127.0.0.1:{self.ui_port}/asset-groups)\n"
            f"Dashboard:  {self.dashboard_url}\n"
            f"Emulator:   {self.endpoint}  (export AWS_ENDPOINT_URL={self.endpoint})\n"
            "The generator schedule, landing sensor and crawler schedule are running.\n"
            "Press Ctrl-C to stop everything.\n",
            flush=True,
        )
        return self.supervise()

    def supervise(self) -> int:
        while True:
            for child in list(self.one_shots):
                code = child.process.poll()
                if code is not None:
                    self.one_shots.remove(child)
                    child.log.close()
                    if code:
                        print(f"\n{child.name} failed (code {code}):\n{_tail(child)}",
                              file=sys.stderr, flush=True)  # fmt: skip
            for child in self.children:
                if child.process.poll() is not None:
                    print(
                        f"\n{child.name} exited with code {child.process.returncode}:\n{_tail(child)}",
                        file=sys.stderr,
                    )
                    return 1
            time.sleep(1)

    def stop(self) -> None:
        """Stop the children one by one, newest first: the emulator outlives its clients."""
        for child in self.one_shots:
            if child.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.process.pid, signal.SIGTERM)
                try:
                    child.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(child.process.pid, signal.SIGKILL)
                    child.process.wait()
            child.log.close()
        self.one_shots.clear()
        for child in reversed(self.children):
            # What the child started itself (dagster dev's webserver, daemon, code servers) is
            # ended too when the child leaves it behind (e.g. killed after its timeout).
            below = descendants(child.process.pid)
            if child.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.process.pid, signal.SIGTERM)
                try:
                    child.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(child.process.pid, signal.SIGKILL)
                    child.process.wait()
            # ... and what was started in its session meanwhile (children start in their own).
            _end_leftovers({**below, **session_members(child.process.pid)})
            print(f"  stopped {child.name}", flush=True)
            child.log.close()
        self.children.clear()


def run_demo(
    emulator_port: int, ui_port: int, state_dir: Path = DEMO_DIR, dashboard_port: int = 8501
) -> int:
    """Run the demo until Ctrl-C / SIGTERM; return the exit code."""
    demo = Demo(emulator_port, ui_port, Path(state_dir).resolve(), dashboard_port)

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    # Also SIGINT: a shell that starts the demo in the background leaves Ctrl-C ignored.
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        return demo.run()
    except KeyboardInterrupt:
        print("\nstopping the demo...", flush=True)
        return 0
    except DemoError as exc:
        print(f"sales-cdc demo: {exc}", file=sys.stderr)
        return 1
    finally:
        demo.stop()
