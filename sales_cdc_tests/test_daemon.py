"""The demo's Dagster daemon (sales_cdc/daemon.py): Dagster's own, its sensors passed over every
half second."""

import os
import signal
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dagster as dg
import dagster._daemon.sensor as sensor_daemon
import pytest

from sales_cdc.daemon import SENSOR_PASS_SECONDS, main

SENSORS = """
import dagster as dg


@dg.op
def nothing():
    pass


@dg.job
def idle():
    nothing()


@dg.sensor(job=idle, minimum_interval_seconds=1, default_status=dg.DefaultSensorStatus.RUNNING)
def every_second(context):
    return dg.SkipReason("nothing to do")


defs = dg.Definitions(jobs=[idle], sensors=[every_second])
"""


def _tick_times(home: Path) -> list[float]:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        states = instance.all_instigator_state()
        if not states:
            return []
        (state,) = states
        ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=100)
        return sorted(tick.timestamp for tick in ticks)


def test_a_sensor_of_one_second_ticks_every_pass_and_a_half_not_every_five(tmp_path: Path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    (tmp_path / "sensors.py").write_text(SENSORS)
    (tmp_path / "workspace.yaml").write_text(
        textwrap.dedent(
            f"""\
            load_from:
              - python_file:
                  relative_path: sensors.py
                  working_directory: {tmp_path}
            """
        )
    )
    with open(tmp_path / "daemon.log", "wb") as log:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "sales_cdc.daemon", "run", "-w", "workspace.yaml"],
            cwd=tmp_path,
            env={**os.environ, "DAGSTER_HOME": str(home)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        ticks: list[float] = []
        while len(ticks) < 6 and time.monotonic() < deadline and daemon.poll() is None:
            time.sleep(0.5)
            ticks = _tick_times(home)
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait()
    assert len(ticks) >= 6, (tmp_path / "daemon.log").read_text()[-3000:]
    gaps = [later - earlier for earlier, later in zip(ticks, ticks[1:], strict=False)]
    # Three passes of 0.5 s (two passes later a hair under 1 s has elapsed); Dagster's: 5 s.
    assert statistics.median(gaps) < 2.5 < sensor_daemon.MIN_INTERVAL_LOOP_TIME, gaps
    assert min(gaps) >= 0.9, gaps  # never under the sensor's own minimum interval


def test_a_pass_that_is_not_above_zero_is_refused_with_the_flag_named(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--sensor-pass-seconds", "0", "run"])
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert "--sensor-pass-seconds is 0.0" in error
    assert f"the demo uses {SENSOR_PASS_SECONDS:g}" in error
    assert sensor_daemon.MIN_INTERVAL_LOOP_TIME == 5  # this process's Dagster untouched
