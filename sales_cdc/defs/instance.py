"""The Dagster instance a sensor tick reads: opened once per code-server process, not per tick.

Dagster opens the instance anew from its reference for every tick that reads
`context.instance`. On SQLite storage that checks the schema against its migrations, loading
Alembic's scripts from disk: half of the CPU the demo's code server spent on sensor ticks
(py-spy). The instance only reads and writes its storage, so one per reference serves every tick
of the process. (A sensor with resources, like the landing sensor, still opens one per tick:
Dagster builds the tick's resources with it before the sensor runs.)
"""

from __future__ import annotations

import threading

import dagster as dg

_instances: dict[str, dg.DagsterInstance] = {}
_lock = threading.Lock()


def tick_instance(context: dg.SensorEvaluationContext) -> dg.DagsterInstance:
    """`context.instance`, kept for the process's life when the daemon gave a reference; call it
    before the tick's first `context.log`."""
    ref = context.instance_ref
    if ref is None:  # a context built around an instance (tests)
        return context.instance
    key = dg.serialize_value(ref)
    with _lock:  # the landing and aggregates sensors tick side by side
        if key not in _instances:
            _instances[key] = dg.DagsterInstance.from_ref(ref)
        instance = _instances[key]
    # The context's own uses (`context.log` captures a tick's log lines through it) take it too,
    # instead of opening one more (Dagster's attribute, as `build_sensor_context` sets it).
    context._instance = instance  # noqa: SLF001
    return instance
