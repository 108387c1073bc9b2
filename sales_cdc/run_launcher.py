"""PreloadedRunLauncher: Dagster runs started from a process that has already imported Dagster and
the libraries a run uses, so a run starts in a fraction of a second.

Dagster's DefaultRunLauncher asks the code server to start each run in a new Python process
(`spawn`), which imports Dagster, dagster-aws, boto3 and the rest again before the first step: 2–3 s
on an idle 2-core machine, 8–17 s when the machine is busy. Every lake_refresh and aggregates run of
the demo pays it. This launcher keeps one helper process (the "preloader") per Python executable
that has imported `preload_modules` once; each run is a fork of it that executes the run exactly as
`dagster api execute_run` does (same function, same interrupt handling), loading the code location
from disk as any run does. Only libraries are preloaded, never the project's code: a reloaded
code location takes effect at the next run, as with the default launcher.

Termination sends SIGINT to the run's process (its pid is the run tag `sales_cdc/run_worker_pid`),
which is how Dagster's own code server interrupts a run it started. Configure it in the instance's
dagster.yaml (infra/dagster.yaml does):

    run_launcher:
      module: sales_cdc.run_launcher
      class: PreloadedRunLauncher
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from dagster._core.launcher.base import RunLauncher
from dagster._serdes import ConfigurableClass

PID_TAG = "sales_cdc/run_worker_pid"
# What a run of this project imports before its first step (measured: ~2.6 s of a run's start).
DEFAULT_PRELOAD = (
    "dagster",
    "dagster._cli.api",
    "dagster_aws.s3",
    "boto3",
    "botocore.session",
    "pydantic",
    "yaml",
    "pyarrow",
    "pyarrow.fs",
    "duckdb",
    "sqlglot",
    "pyiceberg.catalog.glue",
)


# -- the preloader (a process of its own: `python -m sales_cdc.run_launcher MODULE...`) -----------
def _reap() -> None:
    """Collect the exit status of every finished run process (no zombies)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _execute_run(run_id: str, instance_ref: str) -> int:
    """One run, as `dagster api execute_run` executes it (in the forked process)."""
    from dagster import DagsterInstance
    from dagster._cli.api import _execute_run_command_body
    from dagster._core.instance import InstanceRef
    from dagster._utils.interrupts import capture_interrupts
    from dagster_shared.serdes import deserialize_value

    with capture_interrupts():
        ref = deserialize_value(instance_ref, InstanceRef)
        with DagsterInstance.from_ref(ref) as instance:
            return _execute_run_command_body(
                run_id, instance, lambda _event: None, set_exit_code_on_failure=True
            )


def _fork_run(request: Mapping[str, Any]) -> int:
    """Fork a process for the run `request` names; the parent gets its pid."""
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        # The run's output goes where the preloader's errors go (the terminal running Dagster);
        # the request pipe stays the preloader's.
        os.dup2(2, 1)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if request.get("working_directory"):
            os.chdir(request["working_directory"])
        code = _execute_run(request["run_id"], request["instance_ref"])
    except BaseException as exc:  # the run's own failures are in its event log already
        print(f"sales-cdc run {request.get('run_id')}: {exc!r}", file=sys.stderr, flush=True)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve(modules: Sequence[str]) -> None:
    """Import `modules`, say "ready", then fork one run per request line until stdin closes."""
    import importlib

    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:  # a module this environment lacks only loses its head start
            print(f"sales-cdc run launcher: not preloaded: {module} ({exc})", file=sys.stderr)
    # Ctrl-C in the terminal interrupts runs (as with the default launcher), not the preloader:
    # it ends when the launcher closes its stdin.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    reply = sys.stdout
    reply.write("ready\n")
    reply.flush()
    buffered = b""
    while True:
        readable, _, _ = select.select([0], [], [], 1.0)
        _reap()
        if not readable:
            continue
        chunk = os.read(0, 65536)
        if not chunk:
            return
        buffered += chunk
        while b"\n" in buffered:
            line, buffered = buffered.split(b"\n", 1)
            reply.write(json.dumps({"pid": _fork_run(json.loads(line))}) + "\n")
            reply.flush()


# -- the launcher (in the process that launches runs: the Dagster daemon) -------------------------
class PreloadedRunLauncher(RunLauncher, ConfigurableClass):
    """Starts each run as a fork of a process that has preloaded `preload_modules`."""

    def __init__(self, inst_data: Any = None, preload_modules: Sequence[str] | None = None):
        self._inst_data = inst_data
        self._preload = list(DEFAULT_PRELOAD if preload_modules is None else preload_modules)
        self._lock = threading.Lock()
        self._preloaders: dict[str, subprocess.Popen] = {}
        super().__init__()

    @property
    def inst_data(self) -> Any:
        return self._inst_data

    @classmethod
    def config_type(cls) -> Any:
        from dagster import Array, Field

        return {
            "preload_modules": Field(
                Array(str),
                is_required=False,
                description="Modules each run process has imported before it starts "
                "(default: Dagster, dagster-aws, boto3 and the embedded engine's libraries).",
            )
        }

    @classmethod
    def from_config_value(cls, inst_data: Any, config_value: Mapping[str, Any]) -> Any:
        return cls(inst_data=inst_data, preload_modules=config_value.get("preload_modules"))

    def _preloader(self, executable: str) -> subprocess.Popen:
        """The preloader for `executable`, started (and its imports done) on first use."""
        process = self._preloaders.get(executable)
        if process is not None and process.poll() is None:
            return process
        process = subprocess.Popen(
            [executable, "-m", "sales_cdc.run_launcher", *self._preload],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert process.stdout is not None
        if process.stdout.readline().strip() != b"ready":
            process.kill()
            raise RuntimeError(
                f"The run launcher's preloader ({executable} -m sales_cdc.run_launcher) did not "
                "start: see the lines above. Remove run_launcher from dagster.yaml to use "
                "Dagster's default launcher."
            )
        self._preloaders[executable] = process
        return process

    def launch_run(self, context: Any) -> None:
        from dagster._serdes import serialize_value

        run = context.dagster_run
        origin = run.job_code_origin
        if origin is None:
            raise RuntimeError(f"Run {run.run_id} has no code origin to load its job from.")
        pointer = origin.repository_origin.code_pointer
        request = {
            "run_id": run.run_id,
            "instance_ref": serialize_value(self._instance.get_ref()),
            "working_directory": getattr(pointer, "working_directory", None),
        }
        executable = origin.executable_path or sys.executable
        with self._lock:
            try:
                pid = self._fork(executable, request)
            except (OSError, ValueError):  # the preloader died since its last run: a new one
                self._preloaders.pop(executable).kill()
                pid = self._fork(executable, request)
        self._instance.add_run_tags(run.run_id, {PID_TAG: str(pid)})

    def _fork(self, executable: str, request: Mapping[str, Any]) -> int:
        process = self._preloader(executable)
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write((json.dumps(request) + "\n").encode())
        process.stdin.flush()
        return int(json.loads(process.stdout.readline())["pid"])

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if run is None or run.is_finished or PID_TAG not in run.tags:
            return False
        self._instance.report_run_canceling(run)
        try:
            os.kill(int(run.tags[PID_TAG]), signal.SIGINT)
        except ProcessLookupError:
            return False
        return True

    def dispose(self) -> None:
        with self._lock:
            for process in self._preloaders.values():
                if process.stdin is not None:
                    process.stdin.close()  # the preloader ends; running runs go on
            self._preloaders.clear()


if __name__ == "__main__":
    serve(sys.argv[1:])
