"""`sales-cdc demo`'s process handling (the whole demo runs in test_browser_demo.py)."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

from sales_cdc.demo import Child, Demo, descendants, running

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc (Linux)")


def _demo_with_child(tmp_path: Path, script: str) -> tuple[Demo, subprocess.Popen]:
    """A Demo whose one child runs `script` in a session of its own, as Demo.start starts it."""
    log_path = tmp_path / "child.log"
    log = log_path.open("wb")
    process = subprocess.Popen([sys.executable, "-c", script], start_new_session=True, stdout=log)
    demo = Demo(emulator_port=1, ui_port=2, state_dir=tmp_path)
    demo.children.append(Child("child", process, log_path, log))
    return demo, process


def _wait_until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.1)


def test_stop_ends_what_a_child_left_behind_in_another_session(tmp_path: Path) -> None:
    # a child that starts a grandchild in a session of its own, then ignores SIGTERM itself
    script = (
        "import subprocess, signal, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'],"
        " start_new_session=True)\n"
        "time.sleep(300)\n"
    )
    demo, process = _demo_with_child(tmp_path, script)
    _wait_until(lambda: descendants(process.pid))
    below = descendants(process.pid)
    assert below, "the grandchild never started"
    started = time.monotonic()
    demo.stop()
    assert process.poll() is not None
    assert not any(running(pid, start) for pid, start in below.items())
    assert time.monotonic() - started < 60


def test_stop_ends_what_a_child_started_in_its_session_while_stopping(tmp_path: Path) -> None:
    # A child that, when told to stop, starts one more process in its own session and exits: as
    # Dagster's daemon can launch one last run while `dagster dev` shuts down. The process
    # outlives the child (reparented to init), out of reach of its process tree.
    late = tmp_path / "late.pid"
    script = (
        "import os, signal, subprocess, sys, time\n"
        "def stop(*_):\n"
        "    late = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
        f"    open({str(late)!r}, 'w').write(str(late.pid))\n"
        "    os._exit(0)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        "print('ready', flush=True)\n"
        "time.sleep(300)\n"
    )
    demo, process = _demo_with_child(tmp_path, script)
    _wait_until(lambda: b"ready" in (tmp_path / "child.log").read_bytes())
    demo.stop()
    assert process.poll() is not None
    pid = int(late.read_text())
    assert (
        not Path(f"/proc/{pid}").exists()
        or Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] == "Z"
    )


def test_the_instance_runs_one_lake_write_of_each_kind_at_a_time(tmp_path: Path) -> None:
    import shutil

    import dagster as dg

    from sales_cdc.defs.lake.projection import orders_current
    from sales_cdc.defs.landing.sensors import LAKE_TAG
    from sales_cdc.demo import DAGSTER_YAML

    shutil.copyfile(DAGSTER_YAML, tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:  # validates the file
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        config = instance.get_concurrency_config()
        # one aggregates run at a time
        limits = config.run_queue_config.tag_concurrency_limits
        assert {"key": LAKE_TAG, "value": "aggregates", "limit": 1} in limits
        # one orders_current merge at a time (its pool), one more run loading meanwhile
        assert orders_current.op.pool == "orders_current"
        assert config.pool_config.default_pool_limit == 1
        assert config.pool_config.pool_granularity.value == "op"
        assert config.run_queue_config.op_concurrency_slot_buffer == 1
