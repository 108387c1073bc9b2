"""The instance's run coordinator (infra/dagster.yaml): Dagster's queue, checked every half second."""

import shutil
from pathlib import Path

import dagster as dg
import pytest
from dagster._daemon.controller import create_daemon_of_type
from dagster._daemon.run_coordinator import QueuedRunCoordinatorDaemon

from sales_cdc.run_coordinator import QueuedRunCoordinator

DAGSTER_YAML = Path(__file__).resolve().parents[1] / "infra" / "dagster.yaml"


def test_the_demos_queue_is_checked_every_half_second_with_its_limits(tmp_path: Path):
    shutil.copyfile(DAGSTER_YAML, tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        coordinator = instance.run_coordinator
        assert isinstance(coordinator, dg.QueuedRunCoordinator)  # Dagster's daemon dequeues
        daemon = create_daemon_of_type(QueuedRunCoordinatorDaemon.daemon_type(), instance)
        assert daemon.interval_seconds == coordinator.dequeue_interval_seconds == 0.5
        queue = instance.get_concurrency_config().run_queue_config
        assert queue.max_concurrent_runs == 4
        assert {"key": "sales_cdc/lake", "value": "aggregates", "limit": 1} in (
            queue.tag_concurrency_limits
        )


def test_an_interval_that_is_not_above_zero_is_refused():
    with pytest.raises(dg.DagsterInvalidConfigError, match="dequeue_interval_seconds.*above 0"):
        QueuedRunCoordinator(dequeue_interval_seconds=0)
    assert QueuedRunCoordinator().dequeue_interval_seconds == 5.0  # Dagster's default
