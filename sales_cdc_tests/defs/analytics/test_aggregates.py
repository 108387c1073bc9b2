"""The aggregate tables on the embedded engine: exact figures, per-day replacement, checks."""

from decimal import Decimal
from pathlib import Path

import dagster as dg
import pytest
from pyiceberg import expressions as ice

from sales_cdc.defs import analytics
from sales_cdc.defs.analytics import assets
from sales_cdc.defs.analytics.assets import AGGREGATES, ASSETS
from sales_cdc.defs.analytics.checks import ASSET_CHECKS, check_days
from sales_cdc.defs.lake.projection import orders_current
from sales_cdc.emulator.iceberg import IcebergTables
from sales_cdc.resources.aws import AwsResource
from sales_cdc.resources.lake_catalog import iceberg_catalog
from sales_cdc.resources.query import DuckDBQueryEngine
from sales_cdc.settings import SettingsError, load_settings
from sales_cdc.stack import load_declaration
from sales_cdc_tests.lake_data import catalog_raw_table, event, land, setup_lake

DAY = "2026-03-01"
NEXT_DAY = "2026-03-02"
D = Decimal


def order(order_id: str, seq: int, name: str = "INSERT", **fields) -> dict:
    """A landing row of an order created on DAY unless told otherwise."""
    fields.setdefault("created_at", f"{DAY}T10:15:00.000000Z")
    fields.setdefault("currency", "USD")
    return event(order_id, seq, name, **fields)


WIDGET = {"product_id": "p-1", "product_name": "Widget", "category": "Tools", "unit_price": 10.0}
GADGET = {"product_id": "p-2", "product_name": "Gadget", "category": "Tools", "unit_price": 4.99}
BOOK = {"product_id": "p-3", "product_name": "Book", "category": "Books", "unit_price": 7.25}

ORDERS = [
    order("a", 1, **WIDGET, quantity=2, discount=1.5, total=18.5, status="PLACED"),
    order(
        "b",
        2,
        **WIDGET,
        quantity=1,
        total=10.0,
        status="DELIVERED",
        created_at=f"{DAY}T10:45:00.000000Z",
    ),
    order(
        "c",
        3,
        **GADGET,
        quantity=3,
        total=14.97,
        status="PAID",
        created_at=f"{DAY}T11:05:00.000000Z",
    ),
    order(
        "d",
        4,
        **GADGET,
        quantity=1,
        total=4.99,
        status="CANCELLED",
        created_at=f"{DAY}T11:30:00.000000Z",
    ),
    order(
        "e",
        5,
        **BOOK,
        quantity=2,
        total=14.5,
        status="RETURNED",
        currency="GBP",
        created_at=f"{DAY}T23:59:59.999999Z",
    ),
    order(
        "f",
        6,
        **BOOK,
        quantity=1,
        total=7.25,
        status="SHIPPED",
        currency="GBP",
        created_at=f"{DAY}T00:00:00.000000Z",
    ),
    # g was placed and deleted again: it is in no aggregate
    order("g", 7, **WIDGET, quantity=5, total=50.0),
    order("g", 8, "REMOVE", **WIDGET, quantity=5, total=50.0),
    # the next day's only order
    order("h", 9, **WIDGET, quantity=1, total=10.0, created_at=f"{NEXT_DAY}T08:00:00.000000Z"),
]


@pytest.fixture
def lake(aws: AwsResource) -> AwsResource:
    setup_lake(aws)
    land(aws, ORDERS)
    catalog_raw_table(aws)
    project(aws)
    return aws


def resources(aws: AwsResource) -> dict:
    return {"aws": aws, "query_engine": DuckDBQueryEngine(aws=aws)}


def project(aws: AwsResource) -> dict:
    """Materialize orders_current; its metadata."""
    result = dg.materialize([orders_current], resources=resources(aws))
    (mat,) = result.asset_materializations_for_node("athena__orders_current")
    return {k: v.value for k, v in mat.metadata.items()}


def refresh(
    aws: AwsResource,
    day: str | None = DAY,
    tags: dict | None = None,
    selection=None,
    instance: dg.DagsterInstance | None = None,
) -> dg.ExecuteInProcessResult:
    # order_days is dynamic: the days exist as partitions once aggregates_sensor added them.
    instance = instance or dg.DagsterInstance.ephemeral()
    known = set(instance.get_dynamic_partitions("order_days"))
    days = [d for d in ("2026-02-28", DAY, NEXT_DAY) if d not in known]
    if days:
        instance.add_dynamic_partitions("order_days", days)
    return dg.materialize(
        [*ASSETS, *ASSET_CHECKS],
        resources=resources(aws),
        partition_key=day,
        tags=tags,
        selection=selection,
        instance=instance,
        raise_on_error=False,
    )


def table(aws: AwsResource, name: str, day: str = DAY) -> list[dict]:
    sql = f"SELECT * FROM {name} WHERE order_date = '{day}'"  # noqa: S608 - test's own names
    rows = DuckDBQueryEngine(aws=aws).query(sql).dicts()
    return sorted(rows, key=lambda row: [str(v) for v in row.values()])


def days(aws: AwsResource, name: str) -> set[str]:
    """The order days an aggregate table holds rows of."""
    sql = f"SELECT DISTINCT order_date FROM {name}"  # noqa: S608 - test's own names
    return {r[0] for r in DuckDBQueryEngine(aws=aws).query(sql).rows}


def day_files(aws: AwsResource, name: str, day: str) -> set[str]:
    """The data files of one order day of an Iceberg table."""
    tables = IcebergTables(iceberg_catalog(aws), aws.stack().database)
    scan = tables.load(name).scan(row_filter=ice.EqualTo("order_date", day))
    return {task.file.file_path for task in scan.plan_files()}


def partitions(aws: AwsResource, name: str) -> dict[str, str]:
    """Glue partitions of a Hive-format table (orders_current on this branch)."""
    catalog = DuckDBQueryEngine(aws=aws).catalog()
    return {
        p["Values"][0]: p["StorageDescriptor"]["Location"] for p in catalog.get_partitions(name)
    }


def metadata(result: dg.ExecuteInProcessResult, name: str) -> dict:
    """The metadata of the run's materialization (the same on each partition of a range run)."""
    found = result.asset_materializations_for_node(f"athena__{name}")
    assert len({m.partition for m in found}) == len(found) >= 1
    return {k: v.value for k, v in found[0].metadata.items()}


def checks(result: dg.ExecuteInProcessResult) -> dict[tuple[str, str], bool]:
    return {
        (e.asset_key.path[-1], e.check_name): e.passed for e in result.get_asset_check_evaluations()
    }


def sales(rows: list[dict], *keys: str) -> dict[tuple, tuple]:
    measures = (
        "orders",
        "units",
        "gross_revenue",
        "discounts",
        "net_revenue",
        "cancelled_orders",
        "cancelled_amount",
        "returned_orders",
        "returned_amount",
    )
    return {tuple(r[k] for k in keys): tuple(r[m] for m in measures) for r in rows}


def test_every_aggregate_is_exact_on_hand_made_orders(lake: AwsResource) -> None:
    result = refresh(lake)
    assert result.success
    assert all(checks(result).values()) and len(checks(result)) == 10

    by_product = table(lake, "daily_sales_by_product")
    assert sales(by_product, "product_id", "currency") == {
        ("p-1", "USD"): (2, 3, D("30.00"), D("1.50"), D("28.50"), 0, D("0.00"), 0, D("0.00")),
        ("p-2", "USD"): (1, 3, D("14.97"), D("0.00"), D("14.97"), 1, D("4.99"), 0, D("0.00")),
        ("p-3", "GBP"): (1, 1, D("7.25"), D("0.00"), D("7.25"), 0, D("0.00"), 1, D("14.50")),
    }
    assert {(r["product_id"], r["product_name"], r["category"]) for r in by_product} == {
        ("p-1", "Widget", "Tools"),
        ("p-2", "Gadget", "Tools"),
        ("p-3", "Book", "Books"),
    }

    assert sales(table(lake, "daily_sales_by_category"), "category", "currency") == {
        ("Tools", "USD"): (3, 6, D("44.97"), D("1.50"), D("43.47"), 1, D("4.99"), 0, D("0.00")),
        ("Books", "GBP"): (1, 1, D("7.25"), D("0.00"), D("7.25"), 0, D("0.00"), 1, D("14.50")),
    }

    assert sales(table(lake, "hourly_revenue"), "hour_of_day", "currency") == {
        (0, "GBP"): (1, 1, D("7.25"), D("0.00"), D("7.25"), 0, D("0.00"), 0, D("0.00")),
        (10, "USD"): (2, 3, D("30.00"), D("1.50"), D("28.50"), 0, D("0.00"), 0, D("0.00")),
        (11, "USD"): (1, 3, D("14.97"), D("0.00"), D("14.97"), 1, D("4.99"), 0, D("0.00")),
        (23, "GBP"): (0, 0, D("0.00"), D("0.00"), D("0.00"), 0, D("0.00"), 1, D("14.50")),
    }

    status = {r["status"]: r for r in table(lake, "daily_order_status")}
    assert {
        s: (r["funnel_step"], r["orders"], r["units"], r["reached_orders"])
        for s, r in status.items()
    } == {
        "PLACED": (1, 1, 2, 6),
        "PAID": (2, 1, 3, 4),
        "SHIPPED": (3, 1, 1, 3),
        "DELIVERED": (4, 1, 1, 2),
        "CANCELLED": (None, 1, 1, None),
        "RETURNED": (None, 1, 2, None),
    }
    assert {r["day_orders"] for r in status.values()} == {6}
    assert status["CANCELLED"]["share_of_orders"] == pytest.approx(0.166667)

    product_meta = metadata(result, "daily_sales_by_product")
    assert product_meta["rows"] == 3 and product_meta["orders"] == 4
    assert product_meta["net_revenue"] == {"GBP": "7.25", "USD": "43.47"}
    assert product_meta["net_revenue_usd"] == pytest.approx(43.47)
    assert product_meta["bytes_read"] > product_meta["orders_current_bytes_read"] > 0
    status_meta = metadata(result, "daily_order_status")
    assert status_meta["orders"] == 6 and status_meta["rows"] == 6
    assert status_meta["cancel_rate"] == pytest.approx(1 / 6, abs=1e-6)
    # only the materialized day exists
    for name in AGGREGATES:
        assert days(lake, name) == {DAY}
    assert product_meta["rows_written"] == 3 and product_meta["files_written"] == 1
    assert product_meta["bytes_written"] > 0


def test_rerun_is_a_no_op_other_days_untouched_and_deleted_day_ends_empty(
    lake: AwsResource,
) -> None:
    assert refresh(lake, DAY).success
    assert refresh(lake, NEXT_DAY).success
    before = {name: (table(lake, name), table(lake, name, NEXT_DAY)) for name in AGGREGATES}
    next_day_files = {name: day_files(lake, name, NEXT_DAY) for name in AGGREGATES}
    engine = DuckDBQueryEngine(aws=lake)
    # orders_current is an Iceberg table: a day's read plans that day's data files only
    sizes = {
        day: engine.query(
            "SELECT count(*) AS n FROM orders_current WHERE order_date = %(d)s", {"d": day}
        ).bytes_scanned
        for day in (DAY, NEXT_DAY)
    }
    assert all(sizes.values())
    first_bytes = metadata(refresh(lake, DAY), "daily_sales_by_product")

    # re-running DAY gives the same rows and leaves NEXT_DAY's files where they were
    after = {name: (table(lake, name), table(lake, name, NEXT_DAY)) for name in AGGREGATES}
    assert after == before
    assert {name: day_files(lake, name, NEXT_DAY) for name in AGGREGATES} == next_day_files
    assert table(lake, "daily_sales_by_product", NEXT_DAY)[0]["net_revenue"] == D("10.00")
    # one commit per refreshed day, and no snapshot ever held a day half replaced
    tables = IcebergTables(iceberg_catalog(lake), lake.stack().database)
    history = tables.load("daily_sales_by_product")
    operations = [s.summary.operation.value for s in history.snapshots()]
    assert operations == ["append", "overwrite", "overwrite"]
    for snapshot in history.snapshots()[1:]:
        rows = history.scan(snapshot_id=snapshot.snapshot_id).to_arrow().to_pylist()
        day_rows = [r for r in rows if r["order_date"] == DAY]
        assert len(day_rows) == 3 and sum(r["net_revenue"] for r in day_rows) == D("50.72")

    # NEXT_DAY's only order is deleted: refreshing that day leaves it with no rows at all
    land(
        lake,
        [
            order(
                "h",
                10,
                "REMOVE",
                **WIDGET,
                quantity=1,
                total=10.0,
                created_at=f"{NEXT_DAY}T08:00:00.000000Z",
            )
        ],
        hour="2026/03/02/09",
    )
    assert project(lake)["changed_order_dates"] == [NEXT_DAY]
    result = refresh(lake, NEXT_DAY)
    assert result.success and all(checks(result).values())
    assert metadata(result, "daily_sales_by_product")["days_without_orders"] == 1
    for name in AGGREGATES:
        assert table(lake, name, NEXT_DAY) == []
        assert days(lake, name) == {DAY} and day_files(lake, name, NEXT_DAY) == set()
        assert table(lake, name) == before[name][0]

    # refreshing DAY read exactly DAY's partition of orders_current, nothing of the other days
    assert first_bytes["orders_current_bytes_read"] == sizes[DAY] < sum(sizes.values())


def test_backfill_of_a_date_range_is_one_run_over_every_day(lake: AwsResource) -> None:
    result = refresh(
        lake,
        day=None,
        tags={
            "dagster/asset_partition_range_start": "2026-02-28",
            "dagster/asset_partition_range_end": NEXT_DAY,
        },
    )
    assert result.success
    assert all(checks(result).values()) and len(checks(result)) == 10
    materialized = result.asset_materializations_for_node("athena__daily_sales_by_category")
    assert sorted(m.partition for m in materialized) == ["2026-02-28", DAY, NEXT_DAY]
    meta = metadata(result, "daily_sales_by_category")
    assert meta["days_refreshed"] == 3 and meta["days_without_orders"] == 1
    assert meta["net_revenue"] == {"GBP": "7.25", "USD": "53.47"}
    assert (meta["first_day"], meta["last_day"]) == ("2026-02-28", NEXT_DAY)
    for name in AGGREGATES:
        assert days(lake, name) == {DAY, NEXT_DAY}
    assert sales(table(lake, "daily_sales_by_category", NEXT_DAY), "category") == {
        ("Tools",): (1, 1, D("10.00"), D("0.00"), D("10.00"), 0, D("0.00"), 0, D("0.00"))
    }
    # the whole range is one write per table: one Iceberg commit holding every day
    tables = IcebergTables(iceberg_catalog(lake), lake.stack().database)
    for name in AGGREGATES:
        operations = [s.summary.operation.value for s in tables.load(name).snapshots()]
        assert operations == ["append"], (name, operations)
    # and it holds exactly what refreshing each day on its own gives
    ranged = {name: (table(lake, name), table(lake, name, NEXT_DAY)) for name in AGGREGATES}
    for day in (NEXT_DAY, DAY):
        assert refresh(lake, day).success
    assert {name: (table(lake, name), table(lake, name, NEXT_DAY)) for name in AGGREGATES} == ranged


def test_checks_compare_with_the_orders_current_their_refresh_read(lake: AwsResource) -> None:
    # orders_current merges a new order of DAY between the aggregates' refresh and their checks
    # (the demo runs them side by side): the checks compare DAY as of the snapshot the refresh
    # read, recorded on its materialization, and pass.
    with dg.instance_for_test() as instance:
        only_assets = dg.AssetSelection.assets(*ASSETS)
        assert refresh(lake, NEXT_DAY, selection=only_assets, instance=instance).success
        refreshed = refresh(lake, selection=only_assets, instance=instance)
        assert refreshed.success
        pinned = metadata(refreshed, "daily_sales_by_category")["orders_current_snapshot_id"]
        land(lake, [order("late", 40, **WIDGET, quantity=1, total=99.0)], hour="2026/03/01/12")
        catalog_raw_table(lake)
        project(lake)
        engine = DuckDBQueryEngine(aws=lake)
        assert engine.snapshot_id("orders_current") != int(pinned)
        everything = dg.AssetSelection.all_asset_checks()  # every order day, as from the UI
        checked = refresh(lake, None, selection=everything, instance=instance)
        assert checks(checked) and all(checks(checked).values()), checks(checked)

        # the next refresh reads the new snapshot: the day now holds the late order
        again = refresh(lake, instance=instance)
        assert again.success and all(checks(again).values())
        assert metadata(again, "daily_sales_by_category")["orders_current_snapshot_id"] == str(
            engine.snapshot_id("orders_current")
        )
        # a day whose refresh recorded no snapshot is compared with the current orders_current
        findings = check_days(engine, "daily_sales_by_category", [DAY])
        assert not findings.mismatched
        stale = check_days(engine, "daily_sales_by_category", [DAY], {DAY: int(pinned)})
        assert [m["order_date"] for m in stale.mismatched] == [DAY]
        # a snapshot maintenance has expired: the day is compared with the current state, and
        # the check says how many days it compared that way
        expired = check_days(engine, "daily_sales_by_category", [DAY], {DAY: 42})
        assert expired.unpinned_days == [DAY] and not expired.mismatched


def _tamper(aws: AwsResource, name: str, select: str) -> None:
    DuckDBQueryEngine(aws=aws).replace_rows(name, select, where=f"order_date = '{DAY}'")


def test_checks_fail_when_a_partition_is_tampered_with(lake: AwsResource) -> None:
    with dg.instance_for_test() as instance:
        assert refresh(lake, instance=instance).success
        assert refresh(lake, NEXT_DAY, instance=instance).success
        columns = [c for c in table(lake, "daily_sales_by_product")[0] if c != "net_revenue"]
        # one product's net revenue made negative
        _tamper(
            lake,
            "daily_sales_by_product",
            (
                f"SELECT {', '.join(c for c in columns if c != 'order_date')}, "  # noqa: S608
                "CASE WHEN product_id = 'p-1' THEN -net_revenue ELSE net_revenue END AS net_revenue, "
                f"order_date FROM daily_sales_by_product WHERE order_date = '{DAY}'"
            ),
        )
        # one status counted twice: the day's statuses no longer add up to its orders
        _tamper(
            lake,
            "daily_order_status",
            (
                "SELECT status, funnel_step, CASE WHEN status = 'PAID' THEN 2 ELSE orders END "
                "AS orders, units, day_orders, share_of_orders, reached_orders, order_date "
                f"FROM daily_order_status WHERE order_date = '{DAY}'"
            ),
        )
        # the checks alone, as run from the UI without a partition: they check every order day
        only_checks = refresh(
            lake, None, selection=dg.AssetSelection.all_asset_checks(), instance=instance
        )
        found = checks(only_checks)
        (evaluation,) = [
            e for e in only_checks.get_asset_check_evaluations() if e.check_name == "counts_add_up"
        ]
        assert evaluation.metadata["days_checked"].value == 2
        assert evaluation.metadata["failing_sample"].value[0]["order_date"] == DAY
    assert found[("daily_sales_by_product", "matches_orders_current")] is False
    assert found[("daily_sales_by_product", "no_negative_revenue")] is False
    assert found[("daily_order_status", "counts_add_up")] is False
    assert found[("daily_order_status", "matches_orders_current")] is False
    assert found[("daily_sales_by_category", "matches_orders_current")] is True
    assert found[("hourly_revenue", "no_negative_revenue")] is True


def test_partitions_start_comes_from_infra_and_a_bad_one_fails_the_build(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sales_cdc.definitions import build_definitions

    declared = load_declaration("local")
    assert assets.partitions_start(declared["analytics"]) == "2025-01-01"
    # A declaration that did not come through stack.yaml's validation: the stage refuses it.
    declared["analytics"]["partitions_start"] = "last year"
    with pytest.raises(
        SettingsError,
        match=r"analytics\.partitions_start='last year' in infra/stack\.yaml is not a date",
    ):
        analytics.build_defs(declared)

    # The same mistake in stack.yaml: building the definitions names the file, line and setting.
    stack_yaml = (Path(__file__).parents[3] / "infra" / "stack.yaml").read_text()
    (tmp_path / "stack.yaml").write_text(
        stack_yaml.replace('partitions_start: "2025-01-01"', 'partitions_start: "last year"')
    )
    monkeypatch.setenv("SALES_CDC_INFRA_DIR", str(tmp_path))
    with pytest.raises(
        SettingsError,
        match=r"stack.yaml:\d+: analytics.partitions_start: .*valid date.*'last year'",
    ):
        build_definitions(load_settings({}))


def test_customer_behaviour_is_exact_and_its_checks_can_fail(lake: AwsResource) -> None:
    with dg.instance_for_test() as instance:
        result = refresh(lake, instance=instance)
        assert result.success
        keys = ("customer_country", "channel", "payment_method", "currency")
        measures = (
            "orders",
            "units",
            "net_revenue",
            "cancelled_orders",
            "returned_orders",
            "customers",
            "day_customers",
            "day_repeat_customers",
        )
        # every order of ORDERS is customer c-1's: one customer of the day, buying four times
        assert {
            tuple(r[k] for k in keys): tuple(r[m] for m in measures)
            for r in table(lake, "daily_customer_behaviour")
        } == {
            ("GB", "WEB", "CARD", "USD"): (3, 6, D("43.47"), 1, 0, 1, 1, 1),
            ("GB", "WEB", "CARD", "GBP"): (1, 1, D("7.25"), 0, 1, 1, 1, 1),
        }
        meta = metadata(result, "daily_customer_behaviour")
        assert meta["net_revenue"] == {"GBP": "7.25", "USD": "43.47"}
        assert (meta["customers"], meta["repeat_customers"], meta["rows"]) == (1, 1, 2)
        assert refresh(lake, NEXT_DAY, instance=instance).success

        # one row states other day figures, and its revenue no longer matches orders_current
        _tamper(
            lake,
            "daily_customer_behaviour",
            (
                "SELECT customer_country, channel, payment_method, currency, orders, units, "
                "CASE WHEN currency = 'USD' THEN net_revenue + 1 ELSE net_revenue END "
                "AS net_revenue, cancelled_orders, returned_orders, customers, "
                "CASE WHEN currency = 'USD' THEN 5 ELSE day_customers END AS day_customers, "
                "day_repeat_customers, order_date "
                f"FROM daily_customer_behaviour WHERE order_date = '{DAY}'"  # noqa: S608
            ),
        )
        found = checks(
            refresh(lake, None, selection=dg.AssetSelection.all_asset_checks(), instance=instance)
        )
    assert found[("daily_customer_behaviour", "matches_orders_current")] is False
    assert found[("daily_customer_behaviour", "customers_add_up")] is False
    assert found[("daily_sales_by_product", "matches_orders_current")] is True
