"""glue/orders_cdc: the crawler run as an asset, its schema checks, and the crawler schedule."""

import dagster as dg
import pytest

from sales_cdc.defs.lake.catalog import (
    GLUE_ORDERS_CDC,
    build_crawler_schedule,
    glue_orders_cdc,
    raw_cdc_columns,
    raw_cdc_partition_keys,
)
from sales_cdc.landing_format import LANDING_COLUMNS
from sales_cdc.resources import build_resources
from sales_cdc.resources.aws import AwsResource
from sales_cdc.resources.lake_catalog import as_table_input
from sales_cdc.settings import Settings
from sales_cdc.stack import load_declaration
from sales_cdc_tests.emulator.test_crawler import HOUR_10, HOUR_11, landing_row, put_landing

CATALOG = [glue_orders_cdc, raw_cdc_columns, raw_cdc_partition_keys]


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_materializing_runs_the_crawler_and_the_checks_pass(
    provisioned: AwsResource, local_env: Settings
) -> None:
    put_landing(provisioned, HOUR_10, [landing_row(1), landing_row(2)])
    put_landing(provisioned, HOUR_11, [landing_row(3, gift_note="hi")])

    result = dg.materialize(CATALOG, resources=build_resources(local_env))

    assert result.success
    metadata = result.asset_materializations_for_node("glue__orders_cdc")[0].metadata
    assert metadata["partitions"].value == 2 and metadata["partitions_added"].value == 2
    assert metadata["objects_read"].value == 2 and metadata["bytes_read"].value > 0
    assert metadata["columns"].value == len(LANDING_COLUMNS) + 1  # declared + gift_note
    assert "| gift_note | string |" in metadata["schema"].value
    checks = _checks(result)
    assert checks["raw_cdc_columns"].passed and checks["raw_cdc_partition_keys"].passed

    put_landing(provisioned, "year=2026/month=11/day=21/hour=12/", [landing_row(4)])
    again = dg.materialize(CATALOG, resources=build_resources(local_env))
    metadata = again.asset_materializations_for_node("glue__orders_cdc")[0].metadata
    assert metadata["objects_read"].value == 1 and metadata["partitions_added"].value == 1
    assert metadata["columns_added"].value == "none"


def test_odd_values_leave_the_declared_schema_and_the_checks_green(
    provisioned: AwsResource, local_env: Settings
) -> None:
    # is_deleted as text, a fractional quantity, a list amount: the declared types stay.
    odd = landing_row(1, is_deleted="false", quantity=1.5, total_amount=[1, "x"])
    put_landing(provisioned, HOUR_10, [odd, landing_row(2)])

    result = dg.materialize(CATALOG, resources=build_resources(local_env))

    checks = _checks(result)
    assert checks["raw_cdc_columns"].passed and checks["raw_cdc_partition_keys"].passed
    assert checks["raw_cdc_columns"].metadata["problems"].value == "none"


def test_column_check_fails_when_a_declared_type_was_changed(
    provisioned: AwsResource, local_env: Settings
) -> None:
    put_landing(provisioned, HOUR_10, [landing_row(1)])
    dg.materialize(CATALOG, resources=build_resources(local_env))
    stack = provisioned.stack()
    glue = provisioned.client("glue")
    table = glue.get_table(DatabaseName=stack.database, Name=stack.raw_table)["Table"]
    # What a crawler left on Glue's default "update the table definition" would do.
    for column in table["StorageDescriptor"]["Columns"]:
        column["Type"] = {"quantity": "string", "total_amount": "bigint"}.get(
            column["Name"], column["Type"]
        )
    glue.update_table(DatabaseName=stack.database, TableInput=as_table_input(table))

    check = raw_cdc_columns(aws=provisioned)

    assert not check.passed
    problems = check.metadata["problems"].value
    assert "quantity is string, declared bigint" in problems
    assert "total_amount is bigint, declared decimal(38,6)" in problems
    assert "provision_infrastructure" in check.metadata["fix"].value


def test_partition_key_check_fails_on_other_partitioning(provisioned: AwsResource) -> None:
    stack = provisioned.stack()
    provisioned.client("glue").delete_table(DatabaseName=stack.database, Name=stack.raw_table)
    provisioned.client("glue").create_table(
        DatabaseName=stack.database,
        TableInput={
            "Name": stack.raw_table,
            "StorageDescriptor": {"Columns": [{"Name": "event_id", "Type": "string"}]},
            "PartitionKeys": [{"Name": "dt", "Type": "string"}],
        },
    )
    assert not raw_cdc_partition_keys(aws=provisioned).passed
    columns = raw_cdc_columns(aws=provisioned)
    assert not columns.passed and "order_id is missing" in columns.metadata["problems"].value


def test_checks_fail_when_the_table_does_not_exist(provisioned: AwsResource) -> None:
    stack = provisioned.stack()
    provisioned.client("glue").delete_table(DatabaseName=stack.database, Name=stack.raw_table)
    assert not raw_cdc_columns(aws=provisioned).passed
    assert not raw_cdc_partition_keys(aws=provisioned).passed


@pytest.mark.parametrize("env", ["local", "aws"])
def test_crawler_schedule_follows_infra(env: str) -> None:
    declared = load_declaration(env)["schedules"]
    schedule = build_crawler_schedule(declared)
    assert schedule.name == "crawler_schedule"
    assert schedule.cron_schedule == declared["crawler_cron"]
    running = schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert running == declared["crawler_running"]
    assert (env, schedule.cron_schedule, running) in {
        ("local", "*/2 * * * *", True),
        ("aws", "0 * * * *", False),
    }


def test_lake_definitions_target_the_glue_table(local_env: Settings) -> None:
    from sales_cdc.defs import lake

    defs = dg.Definitions.merge(
        lake.build_defs(load_declaration(local_env.env)),
        dg.Definitions(resources=build_resources(local_env)),
    )
    schedule = defs.resolve_schedule_def("crawler_schedule")
    job = defs.resolve_job_def(schedule.job_name)
    assert GLUE_ORDERS_CDC in job.asset_layer.executable_asset_keys
    assert GLUE_ORDERS_CDC in defs.resolve_asset_graph().get_all_asset_keys()


def test_crawler_schedule_skips_until_orders_have_landed(provisioned) -> None:
    schedule = build_crawler_schedule(load_declaration("local")["schedules"])
    context = dg.build_schedule_context(resources={"aws": provisioned})
    assert isinstance(schedule.evaluate_tick(context).skip_message, str)
    stack = provisioned.stack()
    provisioned.client("s3").put_object(
        Bucket=stack.bucket,
        Key=f"{stack.raw_prefix}year=2026/month=11/day=21/hour=10/a.gz",
        Body=b"",
    )
    context = dg.build_schedule_context(resources={"aws": provisioned})
    assert len(schedule.evaluate_tick(context).run_requests) == 1
