"""aggregates_sensor: exactly the changed order days, once each, nothing on the next tick."""

import dagster as dg

from sales_cdc.defs.analytics.assets import AGGREGATE_KEYS, ORDERS_CURRENT
from sales_cdc.defs.analytics.sensors import aggregates_sensor


def report(instance: dg.DagsterInstance, metadata: dict) -> None:
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key=ORDERS_CURRENT, metadata=metadata)
    )


def changed(days: list[str]) -> dict:
    return {"changed_order_dates": dg.MetadataValue.json(days), "rows": 10}


def tick(instance: dg.DagsterInstance, cursor: str | None):
    context = dg.build_sensor_context(instance=instance, cursor=cursor)
    return aggregates_sensor(context), context


def test_requests_exactly_the_changed_days_once() -> None:
    with dg.instance_for_test() as instance:
        result, _ = tick(instance, None)
        assert isinstance(result, dg.SkipReason)

        report(instance, changed(["2026-03-01", "2026-03-05"]))
        # a late status change of an old order, a day before the partitions start, and a repeat
        report(instance, changed(["2025-01-02", "2024-12-31", "2026-03-05"]))
        result, _ = tick(instance, None)
        assert isinstance(result, dg.SensorResult)
        requests = result.run_requests
        assert sorted(r.partition_key for r in requests) == [
            "2025-01-02",
            "2026-03-01",
            "2026-03-05",
        ]
        assert all(list(r.asset_selection) == AGGREGATE_KEYS for r in requests)
        assert all(len(r.asset_check_keys) == 10 for r in requests)
        assert len({r.run_key for r in requests}) == 3
        cursor = result.cursor

        # nothing new: nothing requested, the same cursor
        again, _ = tick(instance, cursor)
        assert isinstance(again, dg.SkipReason)

        # a materialization with nothing changed moves the cursor and requests nothing;
        # one without the metadata is logged and skipped (it names no day)
        report(instance, changed([]))
        report(instance, {"rows": 10})
        quiet, _ = tick(instance, cursor)
        assert quiet.run_requests == [] and int(quiet.cursor) > int(cursor)

        # the same day changing again later is a new request with a new run key
        report(instance, changed(["2026-03-01"]))
        later, _ = tick(instance, quiet.cursor)
        (request,) = later.run_requests
        assert request.partition_key == "2026-03-01"
        assert request.run_key not in {r.run_key for r in requests}


def test_sensor_is_running_by_default_and_loads_with_the_code_location() -> None:
    from sales_cdc.definitions import defs

    sensor = defs.resolve_sensor_def("aggregates_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    repository = defs.get_repository_def()
    for key in AGGREGATE_KEYS:
        assert repository.asset_graph.get(key).parent_keys == {ORDERS_CURRENT}
