"""athena/orders_current on the embedded engine: CDC edge cases, checks and reconciliation."""

import gzip
import json
import os
import signal
import subprocess
import sys
from decimal import Decimal

import dagster as dg
import pytest

from sales_cdc.defs.lake.merge import ORDERS_CURRENT_COLUMNS
from sales_cdc.defs.lake.projection import (
    ASSET_CHECKS,
    build_reconcile_schedule,
    landing_objects_readable,
    orders_current,
    orders_current_matches_dynamodb,
    orders_current_rules,
)
from sales_cdc.resources.aws import AwsResource
from sales_cdc.resources.query import DuckDBQueryEngine
from sales_cdc.stack import load_declaration
from sales_cdc_tests.lake_data import (
    RAW_COLUMNS,
    catalog_raw_table,
    event,
    land,
    land_lines,
    setup_lake,
)


@pytest.fixture
def lake(aws: AwsResource) -> AwsResource:
    setup_lake(aws)
    return aws


def materialize(
    aws: AwsResource, checks: bool = False, full_rebuild: bool = False
) -> dg.ExecuteInProcessResult:
    assets = [orders_current, *(ASSET_CHECKS if checks else [])]
    return dg.materialize(
        assets,
        resources={"aws": aws, "query_engine": DuckDBQueryEngine(aws=aws)},
        run_config={"ops": {"athena__orders_current": {"config": {"full_rebuild": full_rebuild}}}},
        raise_on_error=False,
    )


def current(aws: AwsResource) -> dict[str, dict]:
    rows = DuckDBQueryEngine(aws=aws).query("SELECT * FROM orders_current").dicts()
    return {r["order_id"]: r for r in rows}


def metadata(result: dg.ExecuteInProcessResult) -> dict:
    (mat,) = result.asset_materializations_for_node("athena__orders_current")
    return {k: v.value for k, v in mat.metadata.items()}


def test_duplicates_out_of_order_late_events_and_reinsert(lake: AwsResource) -> None:
    dup = event("a", 30, status="SHIPPED", event_id="e-a-30")
    land(lake, [event("a", 10, "INSERT"), dup, event("b", 5, "INSERT")], hour="2026/03/01/10")
    # out of order across files: a's seq 20 lands after seq 30, and seq 30 lands again
    land(lake, [event("a", 20, status="PAID"), dup], hour="2026/03/01/11")
    # b removed at 40, then a late MODIFY with a smaller sequence number arrives
    land(lake, [event("b", 40, "REMOVE")], hour="2026/03/01/12")
    land(lake, [event("b", 35, status="PAID")], hour="2026/03/01/13")
    # c removed, then re-inserted with a higher sequence number
    land(
        lake,
        [
            event("c", 1, "INSERT"),
            event("c", 2, "REMOVE"),
            event("c", 3, "INSERT", created_at="2026-03-02T08:00:00.000000Z", total=7.125),
        ],
        hour="2026/03/01/14",
    )
    catalog_raw_table(lake)

    result = materialize(lake)
    assert result.success
    rows = current(lake)
    assert set(rows) == {"a", "c"}
    assert rows["a"]["status"] == "SHIPPED" and rows["a"]["last_event_id"] == "e-a-30"
    assert rows["a"]["last_sequence_number"] == Decimal(30)
    assert rows["c"]["order_date"] == "2026-03-02"
    assert rows["c"]["total_amount"] == Decimal("7.13")
    meta = metadata(result)
    # b's tombstone, and c's: kept through c's re-insert
    assert meta["rows"] == 2 and meta["tombstones"] == 2
    assert meta["events_merged"] == 10 and meta["objects_merged"] == 5
    assert meta["changed_order_dates"] == ["2026-03-01", "2026-03-02"]
    assert meta["bytes_read"] > 0


def test_rerun_is_idempotent_and_reports_only_changed_days(lake: AwsResource) -> None:
    land(
        lake,
        [
            event("a", 1, "INSERT"),
            event("d", 2, "INSERT", created_at="2026-03-05T01:00:00.000000Z"),
        ],
        hour="2026/03/01/10",
    )
    catalog_raw_table(lake)
    assert materialize(lake).success
    first = current(lake)

    again = materialize(lake)
    assert current(lake) == first
    assert metadata(again)["changed_order_dates"] == []
    assert metadata(again)["objects_merged"] == 0

    # a new hour lands; the asset registers its partition itself (no crawl in between)
    land(
        lake,
        [event("d", 3, status="PAID", created_at="2026-03-05T01:00:00.000000Z")],
        hour="2026/03/05/02",
    )
    changed = materialize(lake)
    meta = metadata(changed)
    assert meta["landing_partitions_added"] == 1
    assert meta["changed_order_dates"] == ["2026-03-05"]
    assert current(lake)["d"]["status"] == "PAID"


def test_schema_evolution_discount_absent_then_new_column(lake: AwsResource) -> None:
    land(lake, [event("a", 1, "INSERT")], hour="2026/03/01/10")
    catalog_raw_table(lake, [c for c in RAW_COLUMNS if c[0] != "discount"])
    assert materialize(lake).success
    assert current(lake)["a"]["discount"] is None

    # later files carry discount and an attribute nobody has seen before
    land(lake, [event("b", 2, "INSERT", discount=1.5, gift_wrap=True)], hour="2026/03/01/11")
    catalog_raw_table(lake, [*RAW_COLUMNS, ("gift_wrap", "boolean")])
    assert materialize(lake).success
    rows = current(lake)
    assert rows["a"]["discount"] is None
    assert rows["b"]["discount"] == Decimal("1.50")


def test_plain_files_lines_that_are_not_landing_rows_and_missing_attributes(
    lake: AwsResource,
) -> None:
    land(lake, [event("a", 1, "INSERT"), event("b", 1, "INSERT")])
    # a plain (not gzip) object, as a hand-written file would be; a broken line; a row with no
    # event_id; a sequence number that is not a number; the event fields without item attributes
    minimal = {
        "event_id": "e-b-5",
        "event_name": "MODIFY",
        "sequence_number": "5",
        "event_time": "2026-03-01 10:05:00.000000",
        "order_id": "b",
        "is_deleted": False,
    }
    no_event_id = {k: v for k, v in event("a", 9, status="DELIVERED").items() if k != "event_id"}
    land_lines(
        lake,
        [
            json.dumps(event("a", 2, status="PAID")),
            '{"event_id": "x", broken',
            json.dumps(no_event_id),
            json.dumps(event("a", "later", status="RETURNED")),
        ],
        compress=False,
    )
    land_lines(lake, [json.dumps(minimal)], hour="2026/03/01/11")
    core = {"event_id", "event_name", "sequence_number", "event_time", "order_id", "is_deleted"}
    catalog_raw_table(lake, [c for c in RAW_COLUMNS if c[0] in core])  # only what all rows share

    result = materialize(lake)
    assert result.success
    rows = current(lake)
    assert rows["a"]["last_sequence_number"] == Decimal(2)
    assert rows["b"]["last_event_id"] == "e-b-5" and rows["b"]["total_amount"] is None
    meta = metadata(result)
    assert meta["unreadable_lines_skipped"] == 1


def _check_results(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_checks_pass_on_good_data_and_block_on_bad(lake: AwsResource) -> None:
    land(lake, [event("a", 1, "INSERT"), event("b", 2, "INSERT")])
    catalog_raw_table(lake)
    good = _check_results(materialize(lake, checks=True))
    for name in (
        "one_row_per_order",
        "order_id_not_null",
        "quantity_positive",
        "amounts_not_negative",
        "status_known",
        "order_date_known",
    ):
        assert good[name].passed, name

    land(
        lake,
        [
            event("n", 3, "INSERT", total=-5.0),
            event("q", 4, "INSERT", quantity=0),
            event("s", 5, "INSERT", status="LOST"),
            event("t", 6, "INSERT", created_at="yesterday"),
        ],
        hour="2026/03/01/11",
    )
    bad = _check_results(materialize(lake, checks=True))
    assert not bad["amounts_not_negative"].passed
    assert bad["amounts_not_negative"].metadata["sample_order_id"].value == "n"
    assert not bad["quantity_positive"].passed
    assert not bad["status_known"].passed
    assert bad["order_date_known"].metadata["sample_order_id"].value == "t"
    assert not bad["order_date_known"].passed
    assert bad["one_row_per_order"].passed


def _add_row(aws: AwsResource, **overrides: str) -> None:
    """A row added to orders_current behind the merge's back: a's row with `overrides` (SQL)."""
    columns = ", ".join(f"{overrides.get(c, c)} AS {c}" for c in ORDERS_CURRENT_COLUMNS)
    DuckDBQueryEngine(aws=aws).append_rows(
        "orders_current", f"SELECT {columns} FROM orders_current WHERE order_id = 'a'"
    )


def test_checks_after_a_merge_read_its_changed_days_and_alone_the_whole_table(
    lake: AwsResource,
) -> None:
    land(lake, [event("a", 1, "INSERT"), event("b", 2, "INSERT", created_at="2026-03-02T10:00Z")])
    catalog_raw_table(lake)
    assert materialize(lake).success
    # bad rows in a day the next merge changes (2026-03-01) and in days it does not touch
    _add_row(lake, order_id="NULL", status="'LOST'", unit_price="-1")
    _add_row(lake, order_id="'z'", quantity="0", order_date="'2026-03-05'")
    _add_row(lake, order_date="'2026-03-09'")  # a second row of order a, in another day
    land(lake, [event("a", 3, status="PAID")], hour="2026/03/01/11")

    merged = materialize(lake, checks=True)
    assert metadata(merged)["changed_order_dates"] == ["2026-03-01"]
    found = _check_results(merged)
    assert found["one_row_per_order"].metadata["checked"].value.startswith("1 changed order day")
    for name in ("one_row_per_order", "order_id_not_null", "status_known", "amounts_not_negative"):
        assert not found[name].passed, name
    assert found["quantity_positive"].passed  # z's day was not changed by the merge
    assert found["order_date_known"].passed

    alone = dg.materialize(
        [orders_current, orders_current_rules],
        selection=dg.AssetSelection.checks(orders_current_rules),
        resources={"aws": lake, "query_engine": DuckDBQueryEngine(aws=lake)},
        raise_on_error=False,
    )
    whole = _check_results(alone)
    assert whole["quantity_positive"].metadata["checked"].value == "whole table"
    assert not whole["quantity_positive"].passed
    assert whole["quantity_positive"].metadata["sample_order_id"].value == "z"
    assert not whole["one_row_per_order"].passed
    assert whole["one_row_per_order"].metadata["rows_checked"].value == 5


def _put_orders(aws: AwsResource, orders: dict[str, tuple[str, int, str]]) -> None:
    stack = aws.stack()
    ddb = aws.client("dynamodb")
    ddb.create_table(
        TableName=stack.table_name,
        KeySchema=[{"AttributeName": "orderId", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "orderId", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for order_id, (status, version, total) in orders.items():
        ddb.put_item(
            TableName=stack.table_name,
            Item={
                "orderId": {"S": order_id},
                "status": {"S": status},
                "version": {"N": str(version)},
                "totalAmount": {"N": total},
                "customerName": {"S": "x"},
            },
        )


def test_reconciliation_passes_when_equal_and_lists_mismatches(lake: AwsResource) -> None:
    land(
        lake,
        [
            event("a", 1, "INSERT", total=20.0),
            event("b", 2, "INSERT", total=5.5),
            event("b", 3, status="PAID", version=2, total=5.5),
        ],
    )
    catalog_raw_table(lake)
    assert materialize(lake).success
    _put_orders(lake, {"a": ("PLACED", 1, "20"), "b": ("PAID", 2, "5.50")})
    resources = {"aws": lake, "query_engine": DuckDBQueryEngine(aws=lake)}
    ok = dg.materialize([orders_current, orders_current_matches_dynamodb], resources=resources)
    assert _check_results(ok)["matches_dynamodb"].passed

    stack = lake.stack()
    ddb = lake.client("dynamodb")
    ddb.put_item(
        TableName=stack.table_name,
        Item={
            "orderId": {"S": "b"},
            "status": {"S": "SHIPPED"},
            "version": {"N": "3"},
            "totalAmount": {"N": "5.50"},
        },
    )
    ddb.put_item(
        TableName=stack.table_name,
        Item={
            "orderId": {"S": "z"},
            "status": {"S": "PLACED"},
            "version": {"N": "1"},
            "totalAmount": {"N": "1"},
        },
    )
    evaluation = _check_results(
        dg.materialize(
            [orders_current, orders_current_matches_dynamodb],
            resources=resources,
            raise_on_error=False,
        )
    )["matches_dynamodb"]
    assert not evaluation.passed
    meta = {k: v.value for k, v in evaluation.metadata.items()}
    assert meta["missing"] == 1 and meta["missing_sample"] == ["z"]
    assert meta["mismatched"] == 1 and meta["extra"] == 0
    assert meta["mismatched_sample"][0]["order_id"] == "b"
    assert json.dumps(meta["mismatched_sample"][0]["status"]) == json.dumps(
        {"dynamodb": "SHIPPED", "orders_current": "PAID"}
    )


def test_reconciliation_scans_in_small_pages_and_reads_every_order_once(
    lake: AwsResource, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sales_cdc.defs.lake import projection

    _put_orders(lake, {f"o{n}": ("PLACED", 1, "1.00") for n in range(23)})
    monkeypatch.setattr(projection, "SCAN_PAGE_ITEMS", 2)
    limits: list[int] = []
    client = AwsResource.client

    def counting_client(self: AwsResource, service: str):
        made = client(self, service)
        made.meta.events.register(
            "provide-client-params.dynamodb.Scan",
            lambda params, **_: limits.append(params["Limit"]),
        )
        return made

    monkeypatch.setattr(AwsResource, "client", counting_client)
    orders = projection.scan_orders(lake)
    assert sorted(orders) == sorted(f"o{n}" for n in range(23))
    # Limit on every request: each page holds at most SCAN_PAGE_ITEMS, whatever the table's size
    assert limits and set(limits) == {2} and len(limits) >= 23 // 2


def test_lake_refresh_runs_the_rules_but_reconciles_on_its_own_schedule(lake: AwsResource):
    """A merge run reads what changed; matches_dynamodb (all of OrderTable and orders_current)
    runs in reconcile_orders, on reconcile_schedule, once orders_current exists."""
    from sales_cdc.definitions import defs

    repository = defs.get_repository_def()

    def checks(job: str) -> set[str]:
        return {
            key.name for key in repository.get_job(job).asset_layer.asset_graph.asset_check_keys
        }

    assert "matches_dynamodb" not in checks("lake_refresh")
    assert {"one_row_per_order", "landing_objects_readable"} <= checks("lake_refresh")
    assert checks("reconcile_orders") == {"matches_dynamodb"}

    for env, cron in (("local", "*/5 * * * *"), ("aws", "30 * * * *")):
        schedule = build_reconcile_schedule(load_declaration(env)["schedules"])
        assert schedule.cron_schedule == cron
        assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    schedule = build_reconcile_schedule(load_declaration("local")["schedules"])
    # The schedule context enters an instance of its own: closed with the block, or Dagster's
    # definitions-state storage keeps pointing at it for the tests that come after.
    with dg.instance_for_test() as instance, dg.build_schedule_context(instance) as context:
        assert isinstance(schedule.evaluate_tick(context).skip_message, str)
        land(lake, [event("a", 1, "INSERT")])
        catalog_raw_table(lake)
        resources = {"aws": lake, "query_engine": DuckDBQueryEngine(aws=lake)}
        assert dg.materialize([orders_current], resources=resources, instance=instance).success
        [request] = schedule.evaluate_tick(context).run_requests
        assert request.job_name in (None, "reconcile_orders")


def test_reconcile_sets_aside_changes_newer_than_the_landed_data():
    from datetime import UTC, datetime, timedelta

    from sales_cdc.defs.lake.projection import reconcile

    cutoff = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    old, new = cutoff - timedelta(minutes=5), cutoff + timedelta(seconds=5)

    def order(status: str, version: int, when: datetime) -> dict:
        return {"status": status, "version": version, "total_amount": 1, "updated_at": when}

    lake = {"a": order("PAID", 2, old), "gone": order("PLACED", 1, old)}
    dynamodb = {"a": order("SHIPPED", 3, new), "b": order("PLACED", 1, new)}
    found = reconcile(dynamodb, lake, cutoff)
    # a and b changed after the newest landed event: in flight, not mismatches.
    assert found["in_flight"] == ["a", "b"] and not found["drained"]
    assert found["mismatched"] == [] and found["missing"] == []
    assert found["extra"] == ["gone"]  # reported, but only a failure once drained

    settled = {"a": order("SHIPPED", 3, old)}
    found = reconcile(settled, lake, cutoff)
    assert found["drained"] and found["extra"] == ["gone"]
    assert found["mismatched"][0]["order_id"] == "a"


def _tables(aws: AwsResource) -> dict[str, list]:
    engine = DuckDBQueryEngine(aws=aws)
    return {
        t: sorted(engine.query(f"SELECT * FROM {t}").rows, key=repr)
        for t in ("orders_current", "order_tombstones")
    }


def _history(lake: AwsResource) -> None:
    land(lake, [event("a", 1, "INSERT"), event("b", 2, "INSERT")], hour="2026/03/01/10")
    land(lake, [event("b", 5, "REMOVE"), event("a", 3, status="PAID")], hour="2026/03/01/11")


def test_odd_objects_are_set_aside_and_odd_values_named_by_checks(lake: AwsResource) -> None:
    _history(lake)
    stack = lake.stack()
    s3 = lake.client("s3")
    good = gzip.compress(b'{"event_id": "x"}\n' * 50)
    noise = f"{stack.raw_prefix}year=2026/month=03/day=01/hour=12/noise.gz"
    truncated = f"{stack.raw_prefix}year=2026/month=03/day=01/hour=12/truncated.gz"
    s3.put_object(Bucket=stack.bucket, Key=noise, Body=bytes(range(256)) * 8)
    s3.put_object(Bucket=stack.bucket, Key=truncated, Body=good[: len(good) // 2])
    land(
        lake,
        [
            event("m", 7, "INSERT", total=10**20, event_time="not a time"),
            event("q", 8, "INSERT", quantity="three", total=int("9" * 38)),
        ],
        hour="2026/03/01/12",
    )
    catalog_raw_table(lake)

    result = dg.materialize(
        [orders_current, orders_current_rules, landing_objects_readable],
        resources={"aws": lake, "query_engine": DuckDBQueryEngine(aws=lake)},
        raise_on_error=False,
    )
    # the merge succeeds; only the checks that name the odd values fail
    assert result.is_node_success("athena__orders_current")
    meta = metadata(result)
    assert meta["objects_set_aside"] == 2 and sorted(meta["set_aside_keys"]) == [noise, truncated]
    rows = current(lake)
    assert set(rows) == {"a", "m", "q"}
    assert rows["m"]["total_amount"] is None and rows["m"]["last_event_time"] is None
    assert rows["q"]["quantity"] is None
    found = _check_results(result)
    assert not found["amounts_valid"].passed and not found["event_time_valid"].passed
    assert found["amounts_valid"].metadata["sample_order_id"].value in {"m", "q"}
    assert not found["quantity_positive"].passed
    assert not found["landing_objects_readable"].passed
    named = found["landing_objects_readable"].metadata["set_aside_keys"].value
    assert sorted(named) == [noise, truncated]
    # the next run does not read them again
    assert metadata(materialize(lake))["objects_set_aside"] == 0


def test_full_rebuild_gives_the_incremental_tables(lake: AwsResource) -> None:
    _history(lake)
    catalog_raw_table(lake)
    assert materialize(lake).success
    land(lake, [event("b", 4, status="SHIPPED"), event("c", 6, "INSERT")], hour="2026/03/01/09")
    land(lake, [event("a", 3, status="PAID")], hour="2026/03/01/13")  # a duplicate
    catalog_raw_table(lake)
    assert materialize(lake).success
    incremental = _tables(lake)
    assert {r[0] for r in incremental["orders_current"]} == {"a", "c"}
    rebuilt = materialize(lake, full_rebuild=True)
    assert rebuilt.success and metadata(rebuilt)["objects_merged"] == 4
    assert _tables(lake) == incremental
    assert metadata(materialize(lake))["objects_merged"] == 0


def test_objects_beyond_one_statement_are_merged_in_turns(
    lake: AwsResource, monkeypatch: pytest.MonkeyPatch
) -> None:
    _history(lake)
    catalog_raw_table(lake)
    assert materialize(lake).success
    land(lake, [event("b", 4, status="SHIPPED"), event("c", 6, "INSERT")], hour="2026/03/01/09")
    land(lake, [event("a", 3, status="PAID")], hour="2026/03/01/13")
    catalog_raw_table(lake)
    assert materialize(lake).success
    whole = _tables(lake)
    # One object URI per statement: every run merges in turns, a rebuild rebuilds from the first.
    from sales_cdc.defs.lake import projection

    monkeypatch.setattr(projection, "MAX_PATHS_BYTES", 1)
    rebuilt = materialize(lake, full_rebuild=True)
    assert rebuilt.success and metadata(rebuilt)["objects_merged"] == 4
    assert _tables(lake) == whole
    land(lake, [event("c", 7, "REMOVE"), event("d", 8, "INSERT")], hour="2026/03/01/14")
    land(lake, [event("d", 9, status="PAID"), event("c", 6, "INSERT")], hour="2026/03/01/15")
    catalog_raw_table(lake)
    turns = materialize(lake)
    assert turns.success and metadata(turns)["objects_merged"] == 2
    assert metadata(turns)["orders_deleted"] == 1 and metadata(turns)["orders_inserted"] == 1
    in_turns = _tables(lake)
    assert metadata(materialize(lake, full_rebuild=True))["objects_merged"] == 6
    assert _tables(lake) == in_turns and {r[0] for r in in_turns["orders_current"]} == {"a", "d"}


CRASH = """
import os, signal
import dagster as dg
from sales_cdc.defs.lake import projection
from sales_cdc.resources.aws import AwsResource
from sales_cdc.resources.query import DuckDBQueryEngine
from sales_cdc.settings import load_settings
projection.before_ledger_write = lambda: os.kill(os.getpid(), signal.SIGKILL)
aws = AwsResource.from_settings(load_settings())  # the test's deployment, from its environment
dg.materialize([projection.orders_current],
               resources={"aws": aws, "query_engine": DuckDBQueryEngine(aws=aws)})
"""


def test_sigkill_between_data_commit_and_ledger_write_then_rerun_is_exact(
    lake: AwsResource,
) -> None:
    _history(lake)
    catalog_raw_table(lake)
    assert materialize(lake).success
    land(lake, [event("a", 9, "REMOVE"), event("d", 10, "INSERT")], hour="2026/03/01/14")
    land(lake, [event("b", 11, "INSERT", created_at="2026-03-04T10:00:00.000000Z")])
    catalog_raw_table(lake)
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    crashed = subprocess.run(
        [sys.executable, "-c", CRASH],
        env=env,
        capture_output=True,
        timeout=300,
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr.decode()[-2000:]
    assert {r[0] for r in _tables(lake)["orders_current"]} == {"b", "d"}  # data committed
    rerun = materialize(lake)
    assert rerun.success
    meta = metadata(rerun)
    assert meta["objects_merged"] == 2 and meta["orders_reapplied"] == 3
    assert meta["changed_order_dates"] == ["2026-03-01", "2026-03-04"]
    incremental = _tables(lake)
    assert materialize(lake, full_rebuild=True).success
    assert _tables(lake) == incremental
