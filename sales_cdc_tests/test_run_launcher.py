"""PreloadedRunLauncher: runs launched the way a user launches them (`dagster job launch` against
an instance whose dagster.yaml names the launcher) execute in a fork of the preloader, and a run
is terminated from another process as the Dagster UI terminates it."""

import os
import pickle
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.utils import make_new_run_id

from sales_cdc.run_launcher import PID_TAG

JOBS = """
import os
import time

import dagster as dg


@dg.op
def where(context):
    context.log.info(f"run process {os.getpid()}, parent {os.getppid()}, cwd {os.getcwd()}")
    preloaded = sorted(m for m in ("duckdb", "pyiceberg.catalog.glue") if m in __import__("sys").modules)
    return {"pid": os.getpid(), "ppid": os.getppid(), "preloaded": preloaded}


@dg.op
def nap(context, found):
    time.sleep(float(os.environ.get("NAP_SECONDS", "0")))
    return found


@dg.job(executor_def=dg.in_process_executor)
def tiny():
    nap(where())


defs = dg.Definitions(jobs=[tiny])
"""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        textwrap.dedent(
            """\
            telemetry:
              enabled: false
            run_coordinator:
              module: dagster._core.run_coordinator
              class: DefaultRunCoordinator
            run_launcher:
              module: sales_cdc.run_launcher
              class: PreloadedRunLauncher
            """
        )
    )
    (tmp_path / "tiny_jobs.py").write_text(JOBS)
    return home


def _launch(home: Path, nap: float = 0) -> str:
    env = {**os.environ, "DAGSTER_HOME": str(home), "NAP_SECONDS": str(nap)}
    dagster = str(Path(sys.executable).with_name("dagster"))
    # Into a file: the run's own output goes where the launching process's errors go.
    with open(home / "launch.log", "ab") as log:
        subprocess.run(
            [dagster, "job", "launch", "-f", "tiny_jobs.py", "-j", "tiny"],
            cwd=home.parent,
            env=env,
            check=True,
            stdout=log,
            stderr=log,
            timeout=120,
        )
    with dg.DagsterInstance.from_config(str(home)) as instance:
        [run] = instance.get_runs(limit=1)
        return run.run_id


def _wait(home: Path, run_id: str, statuses: set[dg.DagsterRunStatus]) -> dg.DagsterRun:
    deadline = time.monotonic() + 120
    with dg.DagsterInstance.from_config(str(home)) as instance:
        while time.monotonic() < deadline:
            run = instance.get_run_by_id(run_id)
            if run is not None and run.status in statuses:
                return run
            time.sleep(0.2)
    raise AssertionError(f"run {run_id} did not reach {statuses}")


def test_a_launched_run_executes_in_a_fork_of_the_preloader(home: Path) -> None:
    run_id = _launch(home)
    run = _wait(home, run_id, {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE})
    assert run.status == dg.DagsterRunStatus.SUCCESS
    with dg.DagsterInstance.from_config(str(home)) as instance:
        messages = [e.user_message for e in instance.all_logs(run_id)]
    pid = int(run.tags[PID_TAG])
    assert any(f"run process {pid}," in m for m in messages), messages
    assert any(f"cwd {home.parent}" in m for m in messages)
    # The op's output, as the run's fs IO manager stored it.
    result = pickle.loads((home / "storage" / run_id / "where" / "result").read_bytes())
    assert result["pid"] == pid and result["ppid"] != os.getpid()
    # The engine's libraries were imported before the run started, not by it.
    assert result["preloaded"] == ["duckdb", "pyiceberg.catalog.glue"]


def test_a_run_is_terminated_from_another_process(home: Path) -> None:
    run_id = _launch(home, nap=60)
    _wait(home, run_id, {dg.DagsterRunStatus.STARTED})
    with dg.DagsterInstance.from_config(str(home)) as instance:
        # As the Dagster UI does: the instance's launcher, in a process that did not launch it.
        assert instance.run_launcher.terminate(run_id)
    run = _wait(home, run_id, {dg.DagsterRunStatus.CANCELED, dg.DagsterRunStatus.FAILURE})
    assert run.status == dg.DagsterRunStatus.CANCELED


def test_a_dead_preloader_is_replaced_at_the_next_launch(home: Path) -> None:
    from dagster._core.launcher import LaunchRunContext

    first = _wait(home, _launch(home), {dg.DagsterRunStatus.SUCCESS})
    with dg.DagsterInstance.from_config(str(home)) as instance:
        launcher = instance.run_launcher
        pids = []
        for _ in range(2):
            # Another run of the same job (the launched run, as a new one not started yet).
            run = instance.add_run(
                first._replace(run_id=make_new_run_id(), status=dg.DagsterRunStatus.STARTING)
            )
            launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
            pids.append(_wait(home, run.run_id, {dg.DagsterRunStatus.SUCCESS}).tags[PID_TAG])
            [preloader] = launcher._preloaders.values()
            preloader.kill()  # dies between two launches
            preloader.wait(timeout=30)
        assert len(set(pids)) == 2
        launcher.dispose()
