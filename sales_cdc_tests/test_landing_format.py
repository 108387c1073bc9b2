"""sales_cdc.landing_format: the one JSON-lines reader of landing objects."""

import gzip
from decimal import Decimal

import pytest

from sales_cdc.landing_format import (
    UnreadableObject,
    decompress,
    partition_values,
    read_json_lines,
)

BODY = (
    b'{"order_id": "o-1", "total_amount": 12345678901234567890123456789012.345678}\n'
    b"\n"
    b"not json\n"
    b"[1, 2]\n"
    b'{"n": NaN}\n'
    b'{"order_id": "o-2", "quantity": 2}\n'
)


@pytest.mark.parametrize("data", [BODY, gzip.compress(BODY)], ids=["plain", "gzip"])
def test_rows_with_exact_numbers_and_malformed_lines_counted(data: bytes) -> None:
    lines = read_json_lines(data)
    assert [row["order_id"] for row in lines.rows] == ["o-1", "o-2"]
    assert lines.rows[0]["total_amount"] == Decimal("12345678901234567890123456789012.345678")
    assert lines.rows[1]["quantity"] == 2
    assert lines.malformed_lines == 3  # not json, a list, NaN
    assert lines.is_json_lines


def test_broken_gzip_is_unreadable_and_random_bytes_are_not_json_lines() -> None:
    with pytest.raises(UnreadableObject, match="GZIP"):
        read_json_lines(gzip.compress(BODY)[:-10])
    with pytest.raises(UnreadableObject):
        decompress(b"\x1f\x8b\x08garbage")
    noise = read_json_lines(bytes(range(256)) * 8)
    assert noise.rows == [] and noise.malformed_lines > 0 and not noise.is_json_lines
    assert read_json_lines(b"").is_json_lines


def test_partition_values_of_an_object_in_hive_folders() -> None:
    location = "s3://lake/raw/orders_cdc/"
    keys = ("year", "month", "day", "hour")
    assert partition_values(
        "s3://lake/raw/orders_cdc/year=2026/month=03/day=01/hour=10/a.gz", location, keys
    ) == ("2026", "03", "01", "10")
    for uri in (
        "s3://lake/raw/orders_cdc/year=2026/month=03/day=01/a.gz",  # too shallow
        "s3://lake/raw/orders_cdc/year=2026/day=01/month=03/hour=10/a.gz",  # keys out of order
        "s3://lake/raw/other/year=2026/month=03/day=01/hour=10/a.gz",  # another table
        "s3://lake/raw/orders_cdc/2026/03/01/10/a.gz",  # not hive folders
    ):
        assert partition_values(uri, location, keys) is None, uri
