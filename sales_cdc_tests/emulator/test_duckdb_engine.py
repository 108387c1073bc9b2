"""The embedded Athena stand-in: catalog-typed reads, partition pruning, writes and crash safety."""

import datetime as dt
import json
from decimal import Decimal

import pyarrow as pa
import pytest

from sales_cdc.emulator import duckdb_engine
from sales_cdc.emulator.duckdb_engine import DuckDBEngine, EngineError, arrow_to_hive, hive_to_arrow
from sales_cdc.resources.aws import AwsResource
from sales_cdc.resources.lake_catalog import PARQUET_SERDE
from sales_cdc.resources.query import DuckDBQueryEngine
from sales_cdc_tests.lake_data import (
    RAW_COLUMNS,
    catalog_raw_table,
    event,
    land,
    land_lines,
    setup_lake,
)

SALES = """
SELECT order_id, CAST(total_amount AS DECIMAL(18, 2)) AS total_amount, day
FROM orders_cdc
"""


@pytest.fixture
def engine(aws: AwsResource) -> DuckDBQueryEngine:
    setup_lake(aws)
    land(
        aws,
        [event("a", 1, "INSERT", total=10.0), event("b", 2, "INSERT", total=20.0)],
        hour="2026/03/01/10",
    )
    land(aws, [event("c", 3, "INSERT", total=30.0)], hour="2026/03/02/10")
    land(aws, [event("d", 4, "INSERT", total=40.0)], hour="2026/03/03/10")
    catalog_raw_table(aws)
    return DuckDBQueryEngine(aws=aws)


def _rows(engine: DuckDBQueryEngine, sql: str) -> list[tuple]:
    return sorted(engine.query(sql).rows)


def test_hive_types_round_trip() -> None:
    assert hive_to_arrow("decimal(18,2)") == pa.decimal128(18, 2)
    assert hive_to_arrow("array<struct<a:bigint,b:string>>") == pa.list_(
        pa.struct([("a", pa.int64()), ("b", pa.string())])
    )
    assert arrow_to_hive(pa.decimal128(38, 0)) == "decimal(38,0)"
    assert arrow_to_hive(pa.timestamp("us")) == "timestamp"
    with pytest.raises(EngineError, match="uniontype"):
        hive_to_arrow("uniontype<int,string>")


def test_json_is_read_with_the_cataloged_types(engine: DuckDBQueryEngine) -> None:
    # the files have no `discount`: NULL of the cataloged type; quantity is the cataloged bigint
    result = engine.query(
        "SELECT typeof(quantity) AS q, typeof(discount) AS d, count(*) AS n, count(discount) AS k "
        "FROM orders_cdc GROUP BY 1, 2"
    )
    assert result.dicts() == [{"q": "BIGINT", "d": "DOUBLE", "n": 4, "k": 0}]


def test_partition_filters_prune_what_is_read(engine: DuckDBQueryEngine) -> None:
    everything = engine.query("SELECT count(*) AS n FROM orders_cdc")
    one_day = engine.query("SELECT count(*) AS n FROM orders_cdc WHERE day = %(d)s", {"d": "02"})
    two_days = engine.query("SELECT count(*) AS n FROM orders_cdc WHERE day IN ('01', '03')")
    assert (everything.rows, one_day.rows, two_days.rows) == ([(4,)], [(1,)], [(3,)])
    assert 0 < one_day.bytes_scanned < two_days.bytes_scanned < everything.bytes_scanned
    sizes = {
        obj["Key"].split("/")[4]: obj["Size"]
        for obj in engine.catalog().list_objects(f"s3://{engine.aws.stack().bucket}/raw/")
    }
    assert one_day.bytes_scanned == sizes["day=02"]


def test_unknown_table_is_explained(engine: DuckDBQueryEngine) -> None:
    with pytest.raises(Exception, match="not in the Glue catalog"):
        engine.query("SELECT * FROM no_such_table")


def test_write_registers_parquet_in_glue_and_replaces_partitions(engine: DuckDBQueryEngine) -> None:
    engine.write_table("sales", SALES, partitioned_by=["day"])
    catalog = engine.catalog()
    table = catalog.get_table("sales")
    assert table["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"] == PARQUET_SERDE
    assert {c["Name"]: c["Type"] for c in table["StorageDescriptor"]["Columns"]} == {
        "order_id": "string",
        "total_amount": "decimal(18,2)",
    }
    assert sorted(tuple(p["Values"]) for p in catalog.get_partitions("sales")) == [
        ("01",),
        ("02",),
        ("03",),
    ]
    first = {
        tuple(p["Values"]): p["StorageDescriptor"]["Location"]
        for p in catalog.get_partitions("sales")
    }

    # day 02 changes, day 03 is replaced by nothing: only those two partitions are touched
    land(engine.aws, [event("c2", 5, "INSERT", total=1.0)], hour="2026/03/02/11")
    catalog_raw_table(engine.aws)
    land(engine.aws, [event("x", 6, "INSERT", total=99.0)], hour="2026/03/01/12")
    catalog_raw_table(engine.aws)
    result = engine.write_table(
        "sales",
        SALES + " WHERE day <> '03'",
        partitioned_by=["day"],
        replace_partitions=[("02",), ("03",)],
    )
    assert result.partitions == [("02",)]
    after = {
        tuple(p["Values"]): p["StorageDescriptor"]["Location"]
        for p in catalog.get_partitions("sales")
    }
    assert set(after) == {("01",), ("02",)}
    assert after[("01",)] == first[("01",)]  # untouched: x of day 01 is not in it
    assert after[("02",)] != first[("02",)]
    assert _rows(engine, "SELECT order_id, day FROM sales") == [
        ("a", "01"),
        ("b", "01"),
        ("c", "02"),
        ("c2", "02"),
    ]
    bucket = engine.aws.stack().bucket
    # the replaced partitions' old files are gone, the kept partition's are still there
    left = [o["Key"] for o in catalog.list_objects(f"s3://{bucket}/curated/sales/")]
    assert not any(first[("02",)].split(bucket + "/")[1] in k for k in left)
    assert not any(first[("03",)].split(bucket + "/")[1] in k for k in left)
    assert any(first[("01",)].split(bucket + "/")[1] in k for k in left)

    # a full replace makes the table exactly the new result and deletes everything older
    engine.write_table("sales", SALES, partitioned_by=["day"])
    assert [r[0] for r in _rows(engine, "SELECT order_id FROM sales")] == [
        "a",
        "b",
        "c",
        "c2",
        "d",
        "x",
    ]
    runs = {
        k.split("/")[2]
        for k in (o["Key"] for o in catalog.list_objects(f"s3://{bucket}/curated/sales/"))
    }
    assert len(runs) == 1, [o["Key"] for o in catalog.list_objects(f"s3://{bucket}/curated/sales/")]


def test_unpartitioned_write_switches_location(engine: DuckDBQueryEngine) -> None:
    engine.write_table("totals", "SELECT count(*) AS orders FROM orders_cdc")
    first = engine.catalog().get_table("totals")["StorageDescriptor"]["Location"]
    engine.write_table("totals", "SELECT count(*) + 1 AS orders FROM orders_cdc")
    second = engine.catalog().get_table("totals")["StorageDescriptor"]["Location"]
    assert first != second and _rows(engine, "SELECT orders FROM totals") == [(5,)]
    assert engine.catalog().list_objects(first) == []


def test_a_write_failing_midway_leaves_the_old_table(
    engine: DuckDBQueryEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine.write_table("sales", SALES, partitioned_by=["day"])
    before = _rows(engine, "SELECT order_id, day FROM sales")
    locations = sorted(
        p["StorageDescriptor"]["Location"] for p in engine.catalog().get_partitions("sales")
    )
    original = DuckDBEngine._write_file
    calls = []

    def crash_on_second_file(self, data, folder):
        calls.append(folder)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return original(self, data, folder)

    monkeypatch.setattr(duckdb_engine.DuckDBEngine, "_write_file", crash_on_second_file)
    land(engine.aws, [event("z", 9, "INSERT")], hour="2026/03/01/13")
    catalog_raw_table(engine.aws)
    with pytest.raises(RuntimeError, match="disk full"):
        engine.write_table("sales", SALES, partitioned_by=["day"])
    monkeypatch.undo()

    assert _rows(engine, "SELECT order_id, day FROM sales") == before
    assert (
        sorted(p["StorageDescriptor"]["Location"] for p in engine.catalog().get_partitions("sales"))
        == locations
    )
    # the half-written run folder was cleaned up
    bucket = engine.aws.stack().bucket
    new_run = calls[0].split("/")[5]
    assert not [
        o
        for o in engine.catalog().list_objects(f"s3://{bucket}/curated/sales/")
        if new_run in o["Key"]
    ]


def test_schema_of_raw_table_drives_missing_columns(aws: AwsResource) -> None:
    setup_lake(aws)
    land(aws, [event("a", 1, "INSERT")])
    catalog_raw_table(aws, [c for c in RAW_COLUMNS if c[0] != "discount"])
    engine = DuckDBQueryEngine(aws=aws)
    with pytest.raises(Exception, match="discount"):
        engine.query("SELECT discount FROM orders_cdc")
    text = "-- optional: orders_cdc.discount double\nSELECT discount FROM orders_cdc"
    assert engine.query(text).rows == [(None,)]


def test_plain_objects_type_drift_and_malformed_lines_read_as_the_json_serde_does(
    aws: AwsResource,
) -> None:
    setup_lake(aws)
    land(aws, [event("a", 1, "INSERT", total=10.0)])
    drifted = {**event("b", 2, "INSERT"), "total_amount": "12.50", "status": 7, "QUANTITY": 3}
    land_lines(
        aws,
        [json.dumps(drifted), "{not json", "[1, 2]", json.dumps(event("c", 3, "INSERT"))],
        compress=False,
    )
    catalog_raw_table(aws)
    rows = DuckDBQueryEngine(aws=aws).query(
        "SELECT order_id, total_amount, status, quantity FROM orders_cdc ORDER BY order_id"
    )
    assert rows.rows == [
        ("a", 10.0, "PLACED", 2),
        ("b", 12.5, "7", 3),  # converted to the cataloged types; names match case-insensitively
        ("c", 20.0, "PLACED", 2),
        (None, None, None, None),  # the two lines that are not JSON objects: rows of NULLs
        (None, None, None, None),
    ]


def test_json_lines_as_table_converts_or_nulls_each_value() -> None:
    schema = pa.schema(
        [
            ("s", pa.string()),
            ("i", pa.int64()),
            ("d", pa.decimal128(18, 2)),
            ("b", pa.bool_()),
            ("t", pa.timestamp("us")),
        ]
    )
    data = b'{"s": 12.50, "i": "7", "d": "3.1", "b": "true", "t": "2026-03-01 10:00:00"}\n'
    data += b'{"s": {"k": [1]}, "i": 2.5, "d": "x", "b": 1, "t": "noon"}\n\n'
    assert duckdb_engine.json_lines_as_table(data, schema).to_pylist() == [
        {"s": "12.50", "i": 7, "d": Decimal("3.10"), "b": True, "t": dt.datetime(2026, 3, 1, 10)},
        {"s": '{"k":[1]}', "i": None, "d": None, "b": None, "t": None},
    ]


def test_a_truncated_gzip_object_is_named_in_the_error(aws: AwsResource) -> None:
    setup_lake(aws)
    key = land(aws, [event("a", 1, "INSERT")])
    stack = aws.stack()
    body = aws.client("s3").get_object(Bucket=stack.bucket, Key=key)["Body"].read()
    aws.client("s3").put_object(Bucket=stack.bucket, Key=key, Body=body[:-8])
    catalog_raw_table(aws)
    with pytest.raises(Exception, match=rf"Cannot read JSON object .*{key}"):
        DuckDBQueryEngine(aws=aws).query("SELECT count(*) FROM orders_cdc")


def test_path_pseudo_column_names_objects_and_prunes_what_is_read(
    engine: DuckDBQueryEngine,
) -> None:
    bucket = engine.aws.stack().bucket
    by_path = engine.query('SELECT "$path" AS p, order_id FROM orders_cdc').rows
    paths = {order_id: path for path, order_id in by_path}
    assert set(paths) == {"a", "b", "c", "d"} and paths["a"] == paths["b"]
    assert all(p.startswith(f"s3://{bucket}/raw/orders_cdc/year=2026/") for p in paths.values())
    assert "/day=02/" in paths["c"]

    everything = engine.query("SELECT count(*) AS n FROM orders_cdc")
    one = engine.query('SELECT order_id FROM orders_cdc WHERE "$path" = %(p)s', {"p": paths["c"]})
    two = engine.query(
        'SELECT order_id FROM orders_cdc WHERE "$path" IN (%(p)s) AND day = %(d)s',
        {"p": [paths["a"], paths["d"]], "d": "01"},
    )
    unknown = engine.query(
        'SELECT order_id FROM orders_cdc WHERE "$path" = %(p)s',
        {"p": f"s3://{bucket}/raw/orders_cdc/year=2026/month=03/day=09/hour=10/nothing.gz"},
    )
    assert one.rows == [("c",)] and sorted(two.rows) == [("a",), ("b",)] and unknown.rows == []
    # Named objects: the catalog is asked for their partitions only, never for every partition.
    from sales_cdc.resources.lake_catalog import LakeCatalog

    def listing_every_partition(self, name):
        raise AssertionError("a read by $path listed every partition")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(LakeCatalog, "get_partitions", listing_every_partition)
        again = engine.query(
            'SELECT order_id FROM orders_cdc WHERE "$path" = %(p)s', {"p": paths["c"]}
        )
        assert again.rows == [("c",)]
    sizes = {
        f"s3://{bucket}/{obj['Key']}": obj["Size"]
        for obj in engine.catalog().list_objects(f"s3://{bucket}/raw/")
    }
    assert one.bytes_scanned == sizes[paths["c"]]
    assert two.bytes_scanned == sizes[paths["a"]] < everything.bytes_scanned
    assert unknown.bytes_scanned == 0
