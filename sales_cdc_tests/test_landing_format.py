"""sales_cdc.landing_format: the one JSON-lines reader of landing objects."""

import gzip
from decimal import Decimal

import pytest

from sales_cdc.landing_format import UnreadableObject, decompress, read_json_lines

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
