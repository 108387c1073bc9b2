"""Each dashboard query: parsed as Athena SQL, executed on DuckDB over landed orders with exact
figures; failed records from the S3 listing; check results from the Dagster instance."""

import datetime as dt
import gzip
import re

import dagster as dg
import pytest
import sqlglot

from sales_cdc.dashboard.data import QUERIES, DashboardData, dagster_state, freshness_params
from sales_cdc.defs.analytics.assets import ASSETS
from sales_cdc.defs.analytics.checks import ASSET_CHECKS
from sales_cdc.resources.aws import AwsResource
from sales_cdc.resources.sql import read_sql
from sales_cdc_tests.dashboard.conftest import DAY, NEXT_DAY, PARAMS
from sales_cdc_tests.defs.analytics.test_aggregates import resources
from sales_cdc_tests.lake_data import setup_lake


def rows(data: DashboardData, name: str, params: dict | None = None) -> list[tuple]:
    answer = data.run(name, PARAMS if params is None else params)
    assert not answer.missing_table and answer.error is None
    frame = answer.frame.astype(object)
    return [tuple(row) for row in frame.where(frame.notna(), None).itertuples(index=False)]


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_query_is_athena_sql(name: str) -> None:
    text = read_sql(name)
    (statement,) = sqlglot.parse(text.replace("%(", "'").replace(")s", "'"), read="athena")
    assert isinstance(statement, sqlglot.exp.Query), name
    assert set(re.findall(r"%\((\w+)\)s", text)) <= {
        "start_date", "end_date", "currencies", "years", "months", "days",
    }  # fmt: skip


def test_sales_daily_is_per_day_and_currency(data: DashboardData) -> None:
    assert rows(data, "dashboard_sales_daily") == [
        (DAY, "EUR", 1, 3, 21.75, 0, 0),
        (DAY, "USD", 2, 3, 24.99, 1, 0),
        (NEXT_DAY, "EUR", 0, 0, 0.0, 0, 1),
        (NEXT_DAY, "USD", 1, 4, 40.0, 0, 0),
    ]
    # the currency filter and the date range
    only_usd = {**PARAMS, "currencies": ["USD"], "end_date": DAY}
    assert rows(data, "dashboard_sales_daily", only_usd) == [(DAY, "USD", 2, 3, 24.99, 1, 0)]


def test_sales_hourly(data: DashboardData) -> None:
    assert rows(data, "dashboard_sales_hourly") == [
        (DAY, 10, "USD", 1, 2, 20.0),
        (DAY, 11, "EUR", 1, 3, 21.75),
        (DAY, 11, "USD", 1, 1, 4.99),
        (DAY, 12, "USD", 0, 0, 0.0),
        (NEXT_DAY, 8, "EUR", 0, 0, 0.0),
        (NEXT_DAY, 9, "USD", 1, 4, 40.0),
    ]


def test_order_funnel_and_rates(data: DashboardData) -> None:
    assert rows(data, "dashboard_order_funnel") == [
        ("PLACED", 1, 1, 4),
        ("PAID", 2, 1, 2),
        ("SHIPPED", 3, 1, 2),
        ("DELIVERED", 4, 1, 1),
        ("CANCELLED", None, 1, None),
        ("RETURNED", None, 1, None),
    ]
    assert rows(data, "dashboard_order_rates") == [
        (DAY, 4, 1, 0, 0.25, 0.0),
        (NEXT_DAY, 2, 0, 1, 0.0, 0.5),
    ]


def test_top_products_and_categories(data: DashboardData) -> None:
    # a product with no sale (p-1 in EUR: only returned) is no top seller
    assert rows(data, "dashboard_top_products") == [
        ("p-3", "Book", "Books", "EUR", 1, 3, 21.75, 1, 1),
        ("p-1", "Widget", "Tools", "USD", 2, 6, 60.0, 1, 1),
        ("p-2", "Gadget", "Tools", "USD", 1, 1, 4.99, 2, 2),
    ]
    assert rows(data, "dashboard_categories") == [
        ("Books", "EUR", 1, 3, 21.75),
        ("Tools", "EUR", 0, 0, 0.0),
        ("Tools", "USD", 3, 7, 64.99),
    ]


def test_customer_behaviour_and_repeat_customers(data: DashboardData) -> None:
    assert rows(data, "dashboard_customers") == [
        ("channel", "MOBILE", "EUR", 1, 21.75),
        ("channel", "WEB", "EUR", 0, 0.0),
        ("channel", "MOBILE", "USD", 1, 40.0),
        ("channel", "WEB", "USD", 2, 24.99),
        ("country", "DE", "EUR", 1, 21.75),
        ("country", "US", "USD", 1, 40.0),
        ("country", "GB", "USD", 2, 24.99),
        ("payment_method", "PAYPAL", "EUR", 1, 21.75),
        ("payment_method", "CARD", "EUR", 0, 0.0),
        ("payment_method", "CARD", "USD", 3, 64.99),
    ]
    # c-1 bought twice on DAY: one repeat customer of two; NEXT_DAY's only buyer bought once
    assert rows(data, "dashboard_repeat_customers") == [(DAY, 2, 1, 1), (NEXT_DAY, 1, 0, 1)]


def test_currencies(data: DashboardData) -> None:
    assert rows(data, "dashboard_currencies") == [("EUR",), ("USD",)]


# Athena prunes partitions by the query's filters on partition columns:
# https://docs.aws.amazon.com/athena/latest/ug/bucketing-vs-partitioning.html
def test_freshness_reads_only_the_days_passed(data: DashboardData) -> None:
    params = freshness_params(dt.datetime(2026, 3, 2, 12, tzinfo=dt.UTC))
    assert params == {"years": ["2026"], "months": ["03"], "days": ["01", "02"]}
    newest = dt.datetime(2026, 3, 2, 9)
    assert rows(data, "dashboard_freshness", params) == [
        ("orders_cdc", newest, 6),
        ("orders_current", newest, 6),
    ]
    # days with nothing landed: nothing read from the raw log, orders_current still answers
    later = freshness_params(dt.datetime(2026, 3, 9, 12, tzinfo=dt.UTC))
    found = rows(data, "dashboard_freshness", later)
    scanned = {
        name: data.engine.query(read_sql("dashboard_freshness"), days).bytes_scanned
        for name, days in (("landed", params), ("nothing landed", later))
    }
    assert scanned["nothing landed"] < scanned["landed"], scanned
    assert (
        found[0][0] == "orders_cdc"
        and found[0][2] == 0
        and found[1]
        == found[1][:1]
        + (
            newest,
            6,
        )
    )


def test_a_table_not_cataloged_yet_gives_the_empty_state(aws: AwsResource) -> None:
    setup_lake(aws)
    data = DashboardData(aws.settings)
    answer = data.run("dashboard_customers", PARAMS)
    assert answer.missing_table and answer.empty
    assert "No data in daily_customer_behaviour yet" in answer.empty_state()
    assert "make demo" in answer.empty_state()
    assert data.failed_records().objects == 0


# ListObjectsV2 lists keys under a Prefix with Size and LastModified, 1,000 per page:
# https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html
def test_failed_records_are_listed_from_errors(lake: AwsResource, data: DashboardData) -> None:
    stack = lake.stack()
    s3 = lake.client("s3")
    prefix = f"{stack.errors_prefix}processing-failed/2026/03/02/09/"
    for name in ("a", "b"):
        s3.put_object(Bucket=stack.bucket, Key=prefix + name, Body=gzip.compress(b"{}\n" * 3))
    try:
        found = data.failed_records()
        assert found.objects == 2 and found.bytes == 2 * len(gzip.compress(b"{}\n" * 3))
        assert found.newest is not None and found.prefix.endswith(stack.errors_prefix)
    finally:
        for name in ("a", "b"):
            s3.delete_object(Bucket=stack.bucket, Key=prefix + name)


def test_dagster_state_reads_materializations_and_check_results(lake: AwsResource) -> None:
    with dg.instance_for_test() as instance:
        empty = dagster_state(instance)
        assert empty.available and set(empty.materialized.values()) == {None}
        instance.add_dynamic_partitions("order_days", [DAY])
        assert {c["status"] for c in empty.checks} == {"not run yet"}
        assert dg.materialize(
            [*ASSETS, *ASSET_CHECKS], resources=resources(lake), partition_key=DAY,
            instance=instance,
        ).success  # fmt: skip
        state = dagster_state(instance)
    assert state.materialized["athena/daily_customer_behaviour"] is not None
    assert state.materialized["athena/orders_current"] is None
    results = {(c["asset"], c["check"]): c["status"] for c in state.checks}
    assert results[("athena/daily_customer_behaviour", "customers_add_up")] == "passed"
    assert results[("athena/daily_sales_by_product", "matches_orders_current")] == "passed"
    assert results[("s3/errors/orders_cdc", "no_error_records")] == "not run yet"


def test_dagster_state_without_dagster_home_says_what_to_set(monkeypatch) -> None:
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    state = dagster_state()
    assert not state.available and "DAGSTER_HOME" in state.reason
