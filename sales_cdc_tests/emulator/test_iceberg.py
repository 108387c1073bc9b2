"""Iceberg tables through pyiceberg against the emulator: catalog, commits, filters, maintenance."""

import datetime as dt
import threading
from decimal import Decimal

import pyarrow as pa
import pytest
from pyiceberg import expressions as ice
from pyiceberg.exceptions import CommitFailedException

from sales_cdc.emulator.iceberg import (
    MANIFEST_MERGE_COUNT,
    IcebergTables,
    parse_ddl,
    parse_predicate,
    to_row_filter,
)
from sales_cdc.resources.aws import AwsResource
from sales_cdc.resources.lake_catalog import S3Objects, iceberg_catalog
from sales_cdc_tests.lake_data import setup_lake

DDL = """CREATE TABLE IF NOT EXISTS sales (
    product_id string, orders bigint, net_revenue decimal(18,2), sold_at timestamp,
    order_date string
) PARTITIONED BY (order_date) LOCATION 's3://b/curated/sales/'
TBLPROPERTIES ('table_type' = 'ICEBERG', 'format' = 'parquet')"""


def rows(*items: tuple) -> pa.Table:
    return pa.table(
        {
            "product_id": [i[0] for i in items],
            "orders": pa.array([i[1] for i in items], pa.int64()),
            "net_revenue": pa.array([Decimal(i[2]) for i in items], pa.decimal128(18, 2)),
            "sold_at": pa.array([dt.datetime(2026, 3, 1, 10)] * len(items), pa.timestamp("us")),
            "order_date": [i[3] for i in items],
        }
    )


@pytest.fixture
def tables(aws: AwsResource) -> IcebergTables:
    setup_lake(aws)
    found = IcebergTables(iceberg_catalog(aws), aws.stack().database)
    assert found.create(parse_ddl(DDL), f"s3://{aws.stack().bucket}/curated/sales/")
    return found


def test_ddl_becomes_schema_and_identity_partition() -> None:
    definition = parse_ddl(DDL)
    assert definition.name == "sales"
    assert [f.name for f in definition.schema.fields] == [
        "product_id",
        "orders",
        "net_revenue",
        "sold_at",
        "order_date",
    ]
    assert str(definition.schema.find_field("net_revenue").field_type) == "decimal(18, 2)"
    (field,) = definition.partition_spec.fields
    assert field.name == "order_date" and str(field.transform) == "identity"


def test_a_truncate_partition_groups_days_into_months(aws: AwsResource) -> None:
    """order_tombstones' layout: truncate(7, order_date), one partition (and file) per month; a
    filter on days still prunes to their month, and replacing one day keeps its month's others."""
    setup_lake(aws)
    ddl = DDL.replace("PARTITIONED BY (order_date)", "PARTITIONED BY (truncate(7, order_date))")
    (field,) = parse_ddl(ddl).partition_spec.fields
    assert (field.name, str(field.transform)) == ("order_date_trunc", "truncate[7]")
    tables = IcebergTables(iceberg_catalog(aws), aws.stack().database)
    assert tables.create(parse_ddl(ddl), f"s3://{aws.stack().bucket}/curated/sales/")
    days = [f"2026-03-{d:02d}" for d in range(1, 31)] + ["2026-04-01"]
    tables.append("sales", rows(*[(f"p{i}", i, "1.00", day) for i, day in enumerate(days)]))
    table = tables.load("sales")
    assert len(list(table.scan().plan_files())) == 2  # March and April
    one_day = ice.EqualTo("order_date", "2026-03-02")
    assert len(list(table.scan(row_filter=one_day).plan_files())) == 1
    tables.overwrite("sales", rows(("new", 99, "2.00", "2026-03-02")), one_day)
    stored, _, _ = tables.scan("sales", ice.AlwaysTrue())
    by_day = dict(
        zip(stored["order_date"].to_pylist(), stored["product_id"].to_pylist(), strict=True)
    )
    assert len(stored) == len(days) and by_day["2026-03-02"] == "new"
    assert by_day["2026-03-01"] == "p0" and by_day["2026-04-01"] == "p30"


def test_create_append_overwrite_scan_against_the_emulator(
    tables: IcebergTables, aws: AwsResource
) -> None:
    glue = aws.client("glue").get_table(DatabaseName=aws.stack().database, Name="sales")["Table"]
    assert glue["Parameters"]["table_type"] == "ICEBERG"
    assert not tables.create(parse_ddl(DDL), "s3://ignored/")  # exists: unchanged
    tables.append("sales", rows(("p1", 1, "10.00", "2026-03-01"), ("p2", 2, "5.50", "2026-03-02")))
    committed = tables.overwrite(
        "sales", rows(("p3", 7, "70.00", "2026-03-01")), ice.EqualTo("order_date", "2026-03-01")
    )
    assert committed.files_removed == 1 and committed.files_written == 1
    data, files, size = tables.scan("sales")
    assert sorted(data.column("product_id").to_pylist()) == ["p2", "p3"]
    assert files == 2 and size > 0
    one_day, files, _ = tables.scan("sales", ice.EqualTo("order_date", "2026-03-02"))
    assert one_day.column("product_id").to_pylist() == ["p2"] and files == 1
    table = tables.load("sales")
    operations = [s.summary.operation.value for s in table.snapshots()]
    assert operations == ["append", "overwrite"]  # the replace is ONE snapshot


def test_overwrite_with_a_non_partition_filter_keeps_the_other_rows(tables: IcebergTables) -> None:
    tables.append("sales", rows(("p1", 1, "1.00", "d1"), ("p2", 2, "2.00", "d1")))
    tables.overwrite("sales", rows(("p9", 9, "9.00", "d1")), ice.EqualTo("product_id", "p1"))
    data, _, _ = tables.scan("sales")
    assert sorted(data.column("product_id").to_pylist()) == ["p2", "p9"]


def test_sql_predicates_become_row_filters() -> None:
    columns = ["order_date", "orders"]

    def convert(sql: str):
        return to_row_filter(parse_predicate(sql), columns)

    assert convert("order_date = '2026-03-01'") == ice.EqualTo("order_date", "2026-03-01")
    assert convert("order_date IN ('a', 'b') OR order_date IS NULL") == ice.Or(
        ice.In("order_date", ["a", "b"]), ice.IsNull("order_date")
    )
    assert convert("NOT (orders = 3)") == ice.Not(ice.EqualTo("orders", 3))
    assert convert("upper(order_date) = 'A'") is None
    assert convert("other = 1") is None


def test_a_stale_commit_is_refused_then_retried(tables: IcebergTables, aws: AwsResource) -> None:
    """Glue's UpdateTable VersionId check (the emulator honours it) makes commits optimistic."""
    database = aws.stack().database
    glue = aws.client("glue")
    version = glue.get_table(DatabaseName=database, Name="sales")["Table"]["VersionId"]
    stale = tables.load("sales")
    tables.append("sales", rows(("p1", 1, "1.00", "d1")))
    with pytest.raises(CommitFailedException):
        stale.append(rows(("p2", 2, "2.00", "d1")))
    table = glue.get_table(DatabaseName=database, Name="sales")["Table"]
    table_input = {k: table[k] for k in ("Name", "StorageDescriptor", "TableType", "Parameters")}
    with pytest.raises(glue.exceptions.ConcurrentModificationException):
        glue.update_table(DatabaseName=database, TableInput=table_input, VersionId=version)
    # concurrent writers through IcebergTables retry on conflict: nothing is lost
    threads = [
        threading.Thread(target=tables.append, args=("sales", rows((f"c{i}", i, "1.00", f"d{i}"))))
        for i in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    data, _, _ = tables.scan("sales")
    assert sorted(data.column("product_id").to_pylist()) == ["c0", "c1", "c2", "c3", "p1"]


def test_metadata_is_read_again_only_after_another_writer_committed(
    tables: IcebergTables, aws: AwsResource, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[str] = []
    load_table = tables.catalog.load_table
    monkeypatch.setattr(
        tables.catalog,
        "load_table",
        lambda identifier: reads.append(identifier) or load_table(identifier),
    )
    tables.append("sales", rows(("p1", 1, "1.00", "d1")))
    tables.overwrite("sales", rows(("p2", 2, "2.00", "d1")), ice.EqualTo("order_date", "d1"))
    tables.scan("sales")
    assert tables.row_count("sales") == 1
    assert reads == []  # the table created and committed here is kept
    other = IcebergTables(iceberg_catalog(aws), aws.stack().database)
    other.append("sales", rows(("p3", 3, "3.00", "d2")))
    data, _, _ = tables.scan("sales")
    assert sorted(data.column("product_id").to_pylist()) == ["p2", "p3"]
    assert len(reads) == 1  # read again once: another writer committed
    tables.scan("sales")
    assert len(reads) == 1


def test_maintenance_compacts_expires_and_removes_orphans(
    tables: IcebergTables, aws: AwsResource
) -> None:
    for i in range(4):
        tables.append("sales", rows((f"p{i}", i, "1.00", "d1")))
    bucket = aws.stack().bucket
    aws.client("s3").put_object(Bucket=bucket, Key="curated/sales/data/orphan.parquet", Body=b"x")
    store = S3Objects(aws.client("s3"))
    before = {uri for uri, _, _ in store.list(f"s3://{bucket}/curated/sales/")}
    done = tables.maintain(
        "sales",
        older_than=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1),
        retain_last=1,
        store=store,
    )
    assert (done.data_files_before, done.data_files_after) == (4, 1)
    assert done.snapshots_before == 4 and done.snapshots_after == 1
    after = {uri for uri, _, _ in store.list(f"s3://{bucket}/curated/sales/")}
    assert f"s3://{bucket}/curated/sales/data/orphan.parquet" not in after
    assert done.files_deleted == len(before - after) > 4
    data, files, _ = tables.scan("sales")
    assert sorted(data.column("product_id").to_pylist()) == ["p0", "p1", "p2", "p3"]
    assert files == 1


def test_commits_merge_manifests_and_keep_every_row(tables: IcebergTables) -> None:
    """A table merged into every few seconds: appends and partition replaces, each a commit. The
    manifests a scan plans from stay few; every row of every commit is where it should be."""
    expected: dict[str, str] = {}
    for i in range(30):
        day = f"2026-03-{i % 10 + 1:02d}"
        if i % 3:
            tables.append("sales", rows((f"a{i}", i, "1.00", day)))
        else:
            replaced = ice.EqualTo("order_date", day)
            tables.overwrite("sales", rows((f"o{i}", i, "2.00", day)), replaced)
            expected = {k: d for k, d in expected.items() if d != day}
        expected[f"a{i}" if i % 3 else f"o{i}"] = day
    data, _, _ = tables.scan("sales")
    assert sorted(data.column("product_id").to_pylist()) == sorted(expected)
    table = tables.load("sales")
    manifests = table.current_snapshot().manifests(table.io)
    assert len(manifests) <= MANIFEST_MERGE_COUNT < len(table.snapshots()) == 30
    # An older snapshot still reads as it was (merging wrote new manifests, changed no old one).
    tenth = table.snapshots()[9]
    then = table.scan(snapshot_id=tenth.snapshot_id).to_arrow()
    assert sorted(then.column("product_id").to_pylist()) == sorted(
        [f"a{i}" for i in range(10) if i % 3] + ["o0", "o3", "o6", "o9"]
    )
