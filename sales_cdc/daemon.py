"""`python -m sales_cdc.daemon run -w WORKSPACE`: Dagster's daemon, its sensor daemon passing over
the sensors every half second instead of every 5 s.

Dagster's sensor daemon evaluates the running sensors on passes `MIN_INTERVAL_LOOP_TIME` (5 s)
apart: a module constant with no setting (dagster/_daemon/sensor.py). A landed object waited up to
5 s for the landing sensor's next tick, and the orders_current materialization up to 5 s more for
aggregates_sensor's: the largest part of write -> table freshness in the demo. This entry point sets
the pass, then runs `dagster-daemon` with the arguments given: every daemon (sensors, schedules,
run queue, ...) is Dagster's, unchanged. A sensor still ticks no more often than its own
`minimum_interval_seconds` (aws's sensors: 30 s), and never twice at once.

    python -m sales_cdc.daemon [--sensor-pass-seconds S] run -w WORKSPACE   # `dagster-daemon run`
"""

from __future__ import annotations

import argparse
import sys

import dagster._daemon.sensor as sensor_daemon
from dagster._daemon.cli import create_dagster_daemon_cli

# With the demo's sensors at 1 s (infra/stack.yaml), each ticks every third pass: every 1.5 s.
# (Dagster reads a sensor's interval of 0 as its default, 30 s.)
SENSOR_PASS_SECONDS = 0.5


def set_sensor_pass(seconds: float) -> None:
    """Make Dagster's sensor daemon pass over the sensors every `seconds` (in this process)."""
    if not seconds > 0:
        raise ValueError(
            f"--sensor-pass-seconds is {seconds!r}: give a number of seconds above 0 "
            f"(the demo uses {SENSOR_PASS_SECONDS:g}; Dagster's own pass is 5)."
        )
    sensor_daemon.MIN_INTERVAL_LOOP_TIME = seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m sales_cdc.daemon",
        description="Dagster's daemon (dagster-daemon) with a shorter sensor pass; every other "
        "argument is dagster-daemon's (e.g. run -w workspace.yaml).",
        add_help=False,  # --help goes on to dagster-daemon's own
    )
    parser.add_argument("--sensor-pass-seconds", type=float, default=SENSOR_PASS_SECONDS)
    known, rest = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    try:
        set_sensor_pass(known.sensor_pass_seconds)
    except ValueError as exc:
        parser.exit(2, f"{parser.prog}: {exc}\n")
    create_dagster_daemon_cli()(args=rest, prog_name=parser.prog, obj={})


if __name__ == "__main__":
    main()
