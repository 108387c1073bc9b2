"""The code location loads and holds every asset, job, schedule and sensor by name."""

import dagster as dg

from sales_cdc.definitions import defs

ASSETS = {
    "dynamodb/orders",
    "s3/raw/orders_cdc",
    "s3/errors/orders_cdc",
    "glue/orders_cdc",
    "athena/orders_current",
    "athena/daily_sales_by_product",
    "athena/daily_sales_by_category",
    "athena/daily_order_status",
    "athena/hourly_revenue",
}
JOBS = {"provision_infrastructure", "teardown_infrastructure", "maintain_lake_tables"}
SCHEDULES = {"order_generator_schedule", "crawler_schedule", "maintain_lake_tables_schedule"}
SENSORS = {"landing_objects_sensor", "aggregates_sensor"}
RESOURCES = {"aws", "s3", "query_engine", "crawler"}


def test_code_location_loads_with_every_definition():
    repository = defs.get_repository_def()
    keys = {key.to_user_string() for key in repository.asset_graph.get_all_asset_keys()}
    assert keys == ASSETS
    assert {job.name for job in repository.get_all_jobs()} >= JOBS
    assert {s.name for s in repository.schedule_defs} == SCHEDULES
    assert {s.name for s in repository.sensor_defs} == SENSORS
    assert set(defs.resources or {}) >= RESOURCES


def test_assets_carry_kinds_and_the_lake_runs_in_order():
    graph = defs.get_repository_def().asset_graph
    for key in graph.get_all_asset_keys():
        assert graph.get(key).kinds, key
    upstream = {
        "glue/orders_cdc": "s3/raw/orders_cdc",
        "athena/orders_current": "glue/orders_cdc",
        "s3/raw/orders_cdc": "dynamodb/orders",
        "athena/daily_sales_by_product": "athena/orders_current",
    }
    for child, parent in upstream.items():
        parents = {
            p.to_user_string() for p in graph.get(dg.AssetKey.from_user_string(child)).parent_keys
        }
        assert parent in parents, (child, parents)


def test_landing_asset_has_a_freshness_policy_and_checks():
    graph = defs.get_repository_def().asset_graph
    landing = graph.get(dg.AssetKey(["s3", "raw", "orders_cdc"]))
    assert landing.freshness_policy is not None
    check_names = {k.name for k in graph.asset_check_keys}
    assert {"no_error_records", "error_rate"} <= check_names
