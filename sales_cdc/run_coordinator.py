"""QueuedRunCoordinator whose queue is checked at a fraction of a second.

Dagster's QueuedRunCoordinator takes `dequeue_interval_seconds` as a whole number, so 1 s at the
least, and its daemon waits in half-second steps until the interval has passed since its last pass
began: a queued run waited up to 1.5 s before it was launched. Every run the demo's sensors request
waits there once (a DynamoDB write reaches the aggregates through two runs). This coordinator is the
same class with a fractional interval; everything else (limits, pools, the daemon) is Dagster's.
Configure it in the instance's dagster.yaml (infra/dagster.yaml does):

    run_coordinator:
      module: sales_cdc.run_coordinator
      class: QueuedRunCoordinator
      config:
        dequeue_interval_seconds: 0.5
"""

from __future__ import annotations

from typing import Any

import dagster as dg


class QueuedRunCoordinator(dg.QueuedRunCoordinator):
    """Dagster's QueuedRunCoordinator, with `dequeue_interval_seconds` any number of seconds > 0."""

    def __init__(self, dequeue_interval_seconds: float | None = None, **kwargs: Any):
        interval = 5.0 if dequeue_interval_seconds is None else float(dequeue_interval_seconds)
        if not interval > 0:
            raise dg.DagsterInvalidConfigError(
                "run_coordinator.config.dequeue_interval_seconds in dagster.yaml is "
                f"{dequeue_interval_seconds!r}: it must be a number of seconds above 0 "
                "(infra/dagster.yaml uses 0.5).",
                [],
                None,
            )
        super().__init__(**kwargs)
        self._interval = interval

    @property
    def dequeue_interval_seconds(self) -> float:  # type: ignore[override]
        return self._interval

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        fields = dict(super().config_type())
        fields["dequeue_interval_seconds"] = dg.Field(
            float,
            is_required=False,
            description="Seconds between the daemon's passes over the run queue (fractions allowed).",
        )
        return fields
