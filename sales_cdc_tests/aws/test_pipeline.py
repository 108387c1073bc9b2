"""The whole pipeline in a real AWS account: provision, generate, land, crawl, query, tear down.

Opt-in: `SALES_CDC_TEST_AWS=1 make test-aws` (AWS credentials and AWS_REGION in the environment,
with infra/policies/caller.json's permissions). Skipped, with the reason, otherwise.
"""

from typing import Any

import pytest

from sales_cdc_tests.aws.conftest import drive

pytestmark = pytest.mark.aws
PIPELINE_TIMEOUT_SECONDS = 45 * 60


@pytest.fixture(scope="module")
def report(deployment: dict[str, str]) -> dict[str, Any]:
    return drive("run", deployment, timeout=PIPELINE_TIMEOUT_SECONDS)


def test_provisioning_creates_everything_then_changes_nothing(report):
    assert report["provision"]["actions"] == ["created"]
    assert report["provision"]["resources"] >= 16
    assert report["provision_again"]["actions"] == ["unchanged"]


def test_the_raw_table_is_declared_before_any_crawl_with_money_as_decimal(report):
    before = report["raw_table_before_crawl"]
    if not before["declared_by_provisioning"]:
        pytest.skip("provisioning does not declare the raw table yet (raw_table.py absent)")
    columns = before["columns"]
    assert columns, "the raw table does not exist right after provisioning"
    for money in ("total_amount", "discount", "unit_price"):
        assert columns[money].startswith(("decimal", "double")), (money, columns[money])


def test_every_change_lands_through_pipe_and_firehose(report):
    assert report["generate"]["writes"] > 0
    assert report["land"]["rows"] >= report["land"]["expected_at_least"]


def test_crawl_orders_current_and_aggregates_pass_their_checks(report):
    for step in ("crawl", "orders_current"):
        assert report[step]["success"], step
        assert report[step]["checks"] and all(report[step]["checks"].values()), report[step]
    assert "athena/orders_current:matches_dynamodb" in report["orders_current"]["checks"]
    aggregates = report["aggregates"]
    assert aggregates["days"] and aggregates["success"]
    assert aggregates["checks"] and all(aggregates["checks"].values()), aggregates


def test_nothing_dead_lettered_and_firehose_logs_errors(report):
    assert report["dead_letters"]["checks"] == {
        "sqs/orders_cdc_dead_letters:dead_letter_queue_empty": True
    }
    assert report["firehose_error_logging"]["exists"]
