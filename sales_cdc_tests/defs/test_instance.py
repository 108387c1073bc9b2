"""A sensor tick's Dagster instance: opened once per reference in the code server, not per tick."""

from pathlib import Path

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef

from sales_cdc.defs import instance as tick_instances
from sales_cdc.defs.analytics.sensors import build_aggregates_sensor
from sales_cdc.defs.asset_keys import ORDERS_CURRENT
from sales_cdc.stack import load_declaration

aggregates_sensor = build_aggregates_sensor(load_declaration("local")["analytics"])


@pytest.fixture
def opened(monkeypatch) -> list[InstanceRef]:
    """Every instance opened from a reference, in order."""
    refs: list[InstanceRef] = []
    from_ref = dg.DagsterInstance.from_ref

    def counting(ref: InstanceRef) -> dg.DagsterInstance:
        refs.append(ref)
        return from_ref(ref)

    monkeypatch.setattr(dg.DagsterInstance, "from_ref", staticmethod(counting))
    monkeypatch.setattr(tick_instances, "_instances", {})
    return refs


def _report(instance: dg.DagsterInstance, day: str) -> None:
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key=ORDERS_CURRENT,
            metadata={"changed_order_dates": dg.MetadataValue.json([day]), "rows": 1},
        )
    )


def _tick(ref: InstanceRef, cursor: str | None) -> dg.SensorResult | dg.SkipReason:
    # As the code server evaluates a tick: a reference to the daemon's instance, no instance.
    return aggregates_sensor(dg.SensorEvaluationContext(instance_ref=ref, cursor=cursor))


def test_ticks_read_one_instance_per_reference_and_see_each_new_event(tmp_path: Path, opened):
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
    with (
        dg.DagsterInstance.from_config(str(tmp_path / "first")) as first,
        dg.DagsterInstance.from_config(str(tmp_path / "second")) as second,
    ):
        _report(first, "2026-03-01")
        result = _tick(first.get_ref(), None)
        assert isinstance(result, dg.SensorResult)
        assert result.dynamic_partitions_requests[0].partition_keys == ["2026-03-01"]
        # The kept instance reads what was written after it was opened.
        _report(first, "2026-03-02")
        again = _tick(first.get_ref(), result.cursor)
        assert isinstance(again, dg.SensorResult)
        assert again.dynamic_partitions_requests[0].partition_keys == ["2026-03-02"]
        assert len(opened) == 1  # Dagster's context alone opens one per tick
        # Another instance's ticks read that instance.
        assert isinstance(_tick(second.get_ref(), None), dg.SkipReason)
        assert len(opened) == 2


def test_a_context_built_around_an_instance_uses_it(opened):
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance)
        assert tick_instances.tick_instance(context) is instance
    assert opened == []
