"""The code location loads and holds every asset, job, schedule and sensor by name."""

import subprocess
import sys
import textwrap

import dagster as dg

from sales_cdc.definitions import build_definitions, defs
from sales_cdc.settings import load_settings

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
    "athena/daily_customer_behaviour",
    "sqs/orders_cdc_dead_letters",
}
JOBS = {
    "provision_infrastructure",
    "teardown_infrastructure",
    "maintain_lake_tables",
    "redrive_failed_records",
    "dead_letter_check",
    "reconcile_orders",
}
SCHEDULES = {
    "order_generator_schedule",
    "crawler_schedule",
    "maintain_lake_tables_schedule",
    "dead_letter_check_schedule",
    "reconcile_schedule",
}
SENSORS = {"landing_objects_sensor", "aggregates_sensor"}
RESOURCES = {"aws", "query_engine", "crawler", "transform"}


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


def test_importing_the_stages_reads_no_environment(tmp_path):
    """Every module of sales_cdc/defs imports with a broken environment and no stack.yaml: only
    building the definitions reads them, and fails there with the settings message."""
    script = textwrap.dedent(
        """
        import importlib, pkgutil
        import sales_cdc.defs

        for module in pkgutil.walk_packages(sales_cdc.defs.__path__, "sales_cdc.defs."):
            importlib.import_module(module.name)
        print("imported")
        import sales_cdc.definitions
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={
            "SALES_CDC_ENV": "staging",
            "SALES_CDC_INFRA_DIR": str(tmp_path / "nowhere"),
            "PATH": "/usr/bin:/bin",
        },
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.stdout.strip() == "imported", result.stderr
    assert result.returncode != 0
    assert "SALES_CDC_ENV='staging' is not a known environment" in result.stderr


def test_definitions_build_for_each_environment_as_stack_yaml_declares():
    aws_defs = build_definitions(load_settings({"SALES_CDC_ENV": "aws", "AWS_REGION": "eu-west-1"}))
    aws = aws_defs.get_repository_def()
    local = defs.get_repository_def()
    for repository in (aws, local):
        assert {s.name for s in repository.schedule_defs} == SCHEDULES
        assert {s.name for s in repository.sensor_defs} == SENSORS
    running = dg.DefaultScheduleStatus.RUNNING
    assert local.get_schedule_def("crawler_schedule").default_status == running
    assert aws.get_schedule_def("crawler_schedule").default_status != running
    assert local.get_schedule_def("order_generator_schedule").default_status == running
    assert aws.get_schedule_def("order_generator_schedule").default_status != running
    assert type((aws_defs.resources or {})["query_engine"]).__name__ == "AthenaQueryEngine"


def test_local_sensors_run_at_the_sensor_daemons_pace():
    """Locally both sensors are evaluated on every pass of Dagster's sensor daemon (every 5 s):
    a landed object waits for the next pass only. Their interval is under the pass's 5 s: at 5 s
    every other pass skipped them (a tick starts a moment after its pass)."""
    from dagster._daemon.sensor import MIN_INTERVAL_LOOP_TIME

    repository = build_definitions(load_settings({"SALES_CDC_ENV": "local"})).get_repository_def()
    intervals = {s.name: s.minimum_interval_seconds for s in repository.sensor_defs}
    assert set(intervals) == {"landing_objects_sensor", "aggregates_sensor"}
    assert all(interval < MIN_INTERVAL_LOOP_TIME for interval in intervals.values()), intervals


def test_loading_the_code_location_leaves_faker_to_the_generators_runs():
    """Every run's process loads the code location: Faker is imported by the generator's run
    only, not by the lake's runs."""
    code = "import sys, sales_cdc.definitions; print('faker' in sys.modules)"
    found = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"SALES_CDC_ENV": "local", "PATH": ""},
    )
    assert found.stdout.strip() == "False"
