"""The landing format (ARCHITECTURE §3.4): its declared columns, and the one JSON-lines reader.

Firehose writes GZIP objects of one JSON object per line under raw/orders_cdc/; plain objects are
read too (told apart by content, as Athena does). Numbers are read as int / Decimal so no digit is
lost. A line that is not a JSON object is counted, not fatal (the table's SerDe is declared with
ignore.malformed.json); an object that claims GZIP and does not decompress is unreadable as a
whole.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

GZIP_MAGIC = b"\x1f\x8b"

# How the Glue JSON classifier catalogs such objects (and how the raw table is declared).
INPUT_FORMAT = "org.apache.hadoop.mapred.TextInputFormat"
OUTPUT_FORMAT = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"
JSON_SERDE = "org.openx.data.jsonserde.JsonSerDe"

# Money: DynamoDB numbers carry up to 38 significant digits and trim trailing zeros ("329.00" ->
# 329), so a crawler would type whole amounts as int. decimal(38,6) is exact (never a binary
# float), holds every amount below 10^32 to the millionth, and is Athena's widest precision; a
# value with more fractional digits is rounded to 6 by the SerDe, one beyond 32 integer digits
# reads as NULL rather than failing the query.
MONEY_TYPE = "decimal(38,6)"

# The landing row's columns and their Glue types, in the order the transform writes them.
LANDING_COLUMNS: tuple[tuple[str, str], ...] = (
    ("event_id", "string"),
    ("event_name", "string"),
    ("sequence_number", "string"),  # up to 40 digits: compared as DECIMAL(38,0) by the SQL
    ("event_time", "string"),  # 'YYYY-MM-DD HH:MM:SS.ffffff' UTC
    ("order_id", "string"),
    ("is_deleted", "boolean"),
    ("customer_id", "string"),
    ("customer_name", "string"),
    ("customer_city", "string"),
    ("customer_country", "string"),
    ("product_id", "string"),
    ("product_name", "string"),
    ("category", "string"),
    ("quantity", "bigint"),
    ("unit_price", MONEY_TYPE),
    ("discount", MONEY_TYPE),
    ("total_amount", MONEY_TYPE),
    ("currency", "string"),
    ("payment_method", "string"),
    ("channel", "string"),
    ("status", "string"),
    ("created_at", "string"),  # ISO-8601 UTC, as DynamoDB holds it
    ("updated_at", "string"),
    ("version", "bigint"),
)
PARTITION_KEYS: tuple[str, ...] = ("year", "month", "day", "hour")
_HIVE_SEGMENT = re.compile(r"^(\w+)=([^/]+)$")  # a hive partition folder: key=value


class UnreadableObject(ValueError):
    """A landing object that is not GZIP or text at all (random bytes, a truncated upload)."""


@dataclass
class JsonLines:
    """The rows of one landing object and the lines that were not JSON objects."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    malformed_lines: int = 0

    @property
    def is_json_lines(self) -> bool:
        """False for an object none of whose lines is a JSON object (random bytes, say)."""
        return bool(self.rows) or not self.malformed_lines


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")  # NaN / Infinity: Python accepts them, JSON does not


_DECODER = json.JSONDecoder(parse_float=Decimal, parse_constant=_reject_constant)


def decompress(data: bytes) -> bytes:
    """The text of an object: gunzipped when it starts with the GZIP magic, as is otherwise."""
    if data[:2] != GZIP_MAGIC:
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise UnreadableObject(f"not a complete GZIP stream ({exc})") from None


def read_json_lines(data: bytes) -> JsonLines:
    """Every JSON-object line of an object (GZIP or plain); other non-blank lines are counted.

    Raises UnreadableObject for a broken GZIP stream; random bytes read as malformed lines.
    """
    result = JsonLines()
    for line in decompress(data).splitlines():
        if not line.strip():
            continue
        try:
            parsed = _DECODER.decode(line.decode("utf-8"))
        except ValueError:  # includes UnicodeDecodeError
            parsed = None
        if isinstance(parsed, dict):
            result.rows.append(parsed)
        else:
            result.malformed_lines += 1
    return result


def partition_values(uri: str, location: str, keys: Sequence[str]) -> tuple[str, ...] | None:
    """The values of partition keys `keys` in the hive folders of an object's s3:// URI under
    a table `location` (.../year=2026/month=03/.../name.gz); None when it is not in such a folder.
    """
    prefix = location.rstrip("/") + "/"
    if not uri.startswith(prefix):
        return None
    relative = uri[len(prefix) :].split("/")
    if len(relative) <= len(keys):
        return None
    values = []
    for key, part in zip(keys, relative, strict=False):
        match = _HIVE_SEGMENT.match(part)
        if match is None or match.group(1) != key:
            return None
        values.append(match.group(2))
    return tuple(values)
