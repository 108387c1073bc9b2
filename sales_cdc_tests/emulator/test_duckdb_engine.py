"""The embedded Athena stand-in: catalog-typed reads, partition pruning, writes and crash safety."""

import datetime as dt
import json
from decimal import Decimal

import pyarrow as pa
import pytest

from sales_cdc.emulator import duckdb_engine
from sales_cdc.emulator.duckdb_engine import EngineError, arrow_to_hive, hive_to_arrow
from sales_cdc.resources.aws import AwsResource
from sales_cdc.resources.query import DuckDBQueryEngine
from sales_cdc_tests.lake_data import (
    RAW_COLUMNS,
    catalog_raw_table,
    event,
    land,
    land_lines,
    setup_lake,
)


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
