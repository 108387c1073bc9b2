"""aggregates_sensor: exactly the changed order days, once each, nothing on the next tick."""

import dagster as dg
from dagster._core.test_utils import create_run_for_test

from sales_cdc.defs.analytics.assets import AGGREGATE_KEYS
from sales_cdc.defs.analytics.sensors import build_aggregates_sensor
from sales_cdc.defs.asset_keys import ORDERS_CURRENT
from sales_cdc.defs.landing.sensors import LAKE_TAG
from sales_cdc.stack import load_declaration

aggregates_sensor = build_aggregates_sensor(load_declaration("local")["analytics"])


def report(instance: dg.DagsterInstance, metadata: dict) -> None:
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key=ORDERS_CURRENT, metadata=metadata)
    )


def changed(days: list[str]) -> dict:
    return {"changed_order_dates": dg.MetadataValue.json(days), "rows": 10}


def tick(instance: dg.DagsterInstance, cursor: str | None):
    context = dg.build_sensor_context(instance=instance, cursor=cursor)
    return aggregates_sensor(context), context


def _range(request: dg.RunRequest) -> tuple[str, str]:
    if request.partition_key:
        return request.partition_key, request.partition_key
    key_range = request.partition_key_range
    assert key_range is not None
    return key_range.start, key_range.end


def apply(instance: dg.DagsterInstance, result: dg.SensorResult) -> None:
    """What the daemon does with a result's partition requests before launching its runs."""
    for request in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))


def test_changed_days_become_partitions_and_are_refreshed_once() -> None:
    with dg.instance_for_test() as instance:
        result, _ = tick(instance, None)
        assert isinstance(result, dg.SkipReason)

        report(instance, changed(["2026-03-01", "2026-03-05"]))
        # a late status change of an old order, a day before the partitions start, a repeat
        report(instance, changed(["2025-01-02", "2024-12-31", "2026-03-05"]))
        result, _ = tick(instance, None)
        assert isinstance(result, dg.SensorResult)
        (added,) = result.dynamic_partitions_requests
        assert added.partitions_def_name == "order_days"
        assert list(added.partition_keys) == ["2025-01-02", "2026-03-01", "2026-03-05"]
        (request,) = result.run_requests  # one run for every changed day
        assert _range(request) == ("2025-01-02", "2026-03-05")
        assert list(request.asset_selection) == AGGREGATE_KEYS
        assert len(request.asset_check_keys) == 10
        # one lake-writing run at a time with orders_current's (infra/dagster.yaml)
        assert request.tags[LAKE_TAG] == "aggregates"
        apply(instance, result)
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
        assert quiet.dynamic_partitions_requests == []

        # the same day changing again later is a new request with a new run key
        report(instance, changed(["2026-03-01"]))
        later, _ = tick(instance, quiet.cursor)
        (single,) = later.run_requests
        assert single.partition_key == "2026-03-01"
        assert single.run_key != request.run_key
        assert later.dynamic_partitions_requests == []  # the day is a partition already

        # values that are not days are never partitions; a new day goes after the known ones
        report(instance, changed(["not-a-day", "2026-13-01", "2026-03-07", "2026-03-05"]))
        odd, _ = tick(instance, later.cursor)
        assert list(odd.dynamic_partitions_requests[0].partition_keys) == ["2026-03-07"]
        assert _range(odd.run_requests[0]) == ("2026-03-05", "2026-03-07")
        apply(instance, odd)
        assert instance.get_dynamic_partitions("order_days") == [
            "2025-01-02",
            "2026-03-01",
            "2026-03-05",
            "2026-03-07",
        ]


def test_sensor_is_running_by_default_and_loads_with_the_code_location() -> None:
    from sales_cdc.definitions import defs

    sensor = defs.resolve_sensor_def("aggregates_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    repository = defs.get_repository_def()
    for key in AGGREGATE_KEYS:
        assert repository.asset_graph.get(key).parent_keys == {ORDERS_CURRENT}


def test_no_second_run_while_one_waits_to_start_the_days_wait_for_the_next_tick() -> None:
    with dg.instance_for_test() as instance:
        report(instance, changed(["2026-03-01"]))
        first, _ = tick(instance, None)
        apply(instance, first)
        (request,) = first.run_requests
        waiting = create_run_for_test(
            instance,
            job_name="__ASSET_JOB",
            status=dg.DagsterRunStatus.NOT_STARTED,
            tags=request.tags,
        )
        report(instance, changed(["2026-03-02"]))
        report(instance, changed(["2026-03-03"]))
        skipped, _ = tick(instance, first.cursor)
        assert isinstance(skipped, dg.SkipReason)

        # the waiting run no longer waits (started, or here cancelled): the days since, in one run
        instance.report_run_canceled(waiting)
        later, _ = tick(instance, first.cursor)
        (request,) = later.run_requests
        assert _range(request) == ("2026-03-02", "2026-03-03")
