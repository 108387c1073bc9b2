"""Firehose transform Lambda: DynamoDB Streams records (via Pipes and Kinesis) to landing rows.

Deployed alone: this file sits at the root of the Lambda zip and runs as ``handler.lambda_handler``
(python3.12), so it imports the standard library only. The same file is importable as
``sales_cdc.transform.handler`` for tests and the local Firehose runtime.

Contract (ARCHITECTURE.md §3.2-3.4): every request record gets exactly one response record, same
recordId, same order. A record that cannot be turned into a landing row comes back as
``ProcessingFailed`` with its original data (Firehose writes it to the error output); nothing
raises.

The hot path is hand-rolled rather than ``json.dumps`` of a converted item, because numbers must
keep their exact DynamoDB text and because it is several times faster: strings go through the C
string encoder that ``json.dumps(ensure_ascii=False)`` uses; number texts, column names and
per-second timestamps are cached (bounded, so a warm Lambda stays small).
"""

import binascii
import json
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from json.encoder import encode_basestring as _json_string  # the encoder of ensure_ascii=False
from typing import Any

LOGGER = logging.getLogger(__name__)

OK = "Ok"
PROCESSING_FAILED = "ProcessingFailed"

# eventName -> (image the landing row is taken from, JSON text of is_deleted).
_EVENT_IMAGES: dict[str, tuple[str, str]] = {
    "INSERT": ("NewImage", "false"),
    "MODIFY": ("NewImage", "false"),
    "REMOVE": ("OldImage", "true"),
}
KEY_ATTRIBUTE = "orderId"
_KEY_COLUMN = "order_id"
# Columns the transform writes before the item attributes; an attribute may not land on one.
_FIXED_COLUMNS = frozenset(
    {"event_id", "event_name", "sequence_number", "event_time", _KEY_COLUMN, "is_deleted"}
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_END_OF_YEAR_9999 = 253_402_300_800  # epoch seconds of 10000-01-01: event_time has 4-digit years
_MILLISECONDS_ABOVE = 100_000_000_000  # a larger ApproximateCreationDateTime is epoch milliseconds
_MICROS_PER_SECOND = 1_000_000
_PICOSECOND = Decimal(
    "1e-12"
)  # finer than any unit we scale to microseconds, and exact below 28 digits

# A JSON number literal (RFC 8259) is emitted verbatim; any other decimal text is normalised.
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_DECIMAL_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_CAMEL_ACRONYM = re.compile(r"([A-Z]+)([A-Z][a-z])")
_CAMEL_WORD = re.compile(r"([a-z0-9])([A-Z])")

_CACHE_LIMIT = 65_536
_NUMBER_CACHE: dict[str, str] = {}  # N text -> JSON literal
_COLUMNS_CACHE: dict[tuple[str, ...], tuple[str | None, ...]] = {}  # attribute names -> prefixes
_SECOND_CACHE: dict[int, tuple[str, tuple[str, str, str, str]]] = {}  # epoch second -> texts
_CREATION_CACHE: dict[int, tuple[str, tuple[str, str, str, str]]] = {}  # int value -> texts


class MalformedRecord(ValueError):
    """A record that cannot become a landing row; the message says why (never the payload)."""


def _reject_constant(name: str) -> None:
    """Refuse NaN and Infinity, which json accepts but JSON does not have."""
    raise ValueError(f"{name} is not JSON")


# Floats (only ApproximateCreationDateTime has one) become Decimal so no digit is lost.
_STREAM_RECORD_DECODER = json.JSONDecoder(parse_float=Decimal, parse_constant=_reject_constant)


def _remember(cache: dict[Any, Any], key: Any, value: Any) -> None:
    """Store a cache entry, emptying the cache first when it is full."""
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    cache[key] = value


# --------------------------------------------------------------------------- names


def snake_case(name: str) -> str:
    """A top-level attribute name as a column: orderId -> order_id, HTTPStatus -> http_status."""
    return _CAMEL_WORD.sub(r"\1_\2", _CAMEL_ACRONYM.sub(r"\1_\2", name)).lower()


def _build_column_prefixes(names: tuple[str, ...]) -> tuple[str | None, ...]:
    """The ',"column":' text of each attribute, None for the key attribute; refuses clashes."""
    columns = [snake_case(name) for name in names]
    landing = [column for column in columns if column != _KEY_COLUMN]
    clashes = {c for c in landing if c in _FIXED_COLUMNS or landing.count(c) > 1}
    if clashes:
        raise MalformedRecord(f"attribute names clash as columns: {sorted(clashes)}")
    return tuple(
        None if column == _KEY_COLUMN else f",{_json_string(column)}:" for column in columns
    )


def _column_prefixes(names: tuple[str, ...]) -> tuple[str | None, ...]:
    """Cached _build_column_prefixes: orders share a handful of attribute layouts."""
    prefixes = _COLUMNS_CACHE.get(names)
    if prefixes is None:
        prefixes = _build_column_prefixes(names)
        _remember(_COLUMNS_CACHE, names, prefixes)
    return prefixes


# --------------------------------------------------------------------------- typed values


def number_literal(text: object) -> str:
    """A DynamoDB N text as a JSON number literal of exactly the same decimal value."""
    if type(text) is not str:
        raise MalformedRecord("N value is not a string")
    literal = _NUMBER_CACHE.get(text)
    if literal is not None:
        return literal
    if _JSON_NUMBER.fullmatch(text):
        literal = text
    elif _DECIMAL_NUMBER.fullmatch(text):
        try:
            literal = str(Decimal(text))  # '+3' -> '3', '.5' -> '0.5', '5.' -> '5'
        except (InvalidOperation, ValueError):
            raise MalformedRecord("N value is out of the decimal range") from None
    else:
        raise MalformedRecord("N value is not a finite decimal number")
    _remember(_NUMBER_CACHE, text, literal)
    return literal


def _string(value: object) -> str:
    """An S value as a JSON string (UTF-8 kept, not \\u-escaped)."""
    if type(value) is not str:
        raise MalformedRecord("S value is not a string")
    return _json_string(value)


def _binary(value: object) -> str:
    """A B value (base64 text) as a JSON string, after checking it is base64."""
    if type(value) is not str:
        raise MalformedRecord("B value is not a string")
    try:
        binascii.a2b_base64(value, strict_mode=True)
    except ValueError:
        raise MalformedRecord("B value is not valid base64") from None
    return f'"{value}"'  # the base64 alphabet needs no escaping


def _boolean(value: object) -> str:
    """A BOOL value as true or false."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    raise MalformedRecord("BOOL value is not a boolean")


def _null(value: object) -> str:
    """A NULL value (always {"NULL": true}) as null."""
    if value is not True:
        raise MalformedRecord("NULL value is not true")
    return "null"


def _json_list(value: object, element: Callable[[Any], str], tag: str) -> str:
    """A DynamoDB list or set as a JSON array, each element converted by element()."""
    if type(value) is not list:
        raise MalformedRecord(f"{tag} value is not a list")
    return f"[{','.join([element(item) for item in value])}]"


def _map(value: object) -> str:
    """An M value as a JSON object; nested names stay as they are."""
    if type(value) is not dict:
        raise MalformedRecord("M value is not an object")
    members = [f"{_json_string(name)}:{typed_value(typed)}" for name, typed in value.items()]
    return f"{{{','.join(members)}}}"


_CONVERTERS: dict[str, Callable[[Any], str]] = {
    "S": _string,
    "N": number_literal,
    "BOOL": _boolean,
    "NULL": _null,
    "B": _binary,
    "M": _map,
    "L": lambda value: _json_list(value, typed_value, "L"),
    "SS": lambda value: _json_list(value, _string, "SS"),
    "NS": lambda value: _json_list(value, number_literal, "NS"),
    "BS": lambda value: _json_list(value, _binary, "BS"),
}


def typed_value(typed: object) -> str:
    """A DynamoDB-typed value ({"S": ..}, {"N": ..}, {"M": ..}, ...) as JSON text."""
    if type(typed) is not dict or len(typed) != 1:
        raise MalformedRecord("a typed value must be an object with exactly one type tag")
    ((tag, value),) = typed.items()
    converter = _CONVERTERS.get(tag)
    if converter is None:
        raise MalformedRecord(f"unknown type tag {tag[:16]!r}")
    return converter(value)


def _image_columns(image: dict[str, Any], order_id: str) -> str:
    """Every image attribute as ',"column":value' text, in image order, key attribute once."""
    names = tuple(image)
    prefixes = _column_prefixes(names)
    key_value = {"S": order_id}
    parts: list[str] = []
    append = parts.append
    name = ""
    try:
        # `name` is read by the except clause below, to say which attribute is malformed.
        for name, prefix, typed in zip(names, prefixes, image.values(), strict=True):  # noqa: B007
            if prefix is None:
                if typed != key_value:
                    raise MalformedRecord("differs from Keys.orderId")
                continue
            # Fast paths for the common S and N values; everything else goes the general way.
            if type(typed) is dict and len(typed) == 1:
                ((tag, value),) = typed.items()
                if tag == "S" and type(value) is str:
                    append(prefix + _json_string(value))
                    continue
                if tag == "N" and type(value) is str:
                    literal = _NUMBER_CACHE.get(value)
                    if literal is not None:
                        append(prefix + literal)
                        continue
            append(prefix + typed_value(typed))
    except MalformedRecord as exc:
        raise MalformedRecord(f"attribute {name[:64]!r}: {exc}") from None
    return "".join(parts)


# --------------------------------------------------------------------------- event time


def _second_texts(second: int) -> tuple[str, tuple[str, str, str, str]]:
    """'YYYY-MM-DD HH:MM:SS' and the (year, month, day, hour) partition values of a second."""
    texts = _SECOND_CACHE.get(second)
    if texts is None:
        t = _EPOCH + timedelta(seconds=second)
        date_hour = (f"{t.year:04d}", f"{t.month:02d}", f"{t.day:02d}", f"{t.hour:02d}")
        year, month, day, hour = date_hour
        texts = (f"{year}-{month}-{day} {hour}:{t.minute:02d}:{t.second:02d}", date_hour)
        _remember(_SECOND_CACHE, second, texts)
    return texts


def _event_time_texts(micros: int) -> tuple[str, tuple[str, str, str, str]]:
    """event_time ('YYYY-MM-DD HH:MM:SS.ffffff', UTC) and partition values of epoch microseconds."""
    second, fraction = divmod(micros, _MICROS_PER_SECOND)
    second_text, partition = _second_texts(second)
    return f"{second_text}.{fraction:06d}", partition


def _finite_number(value: object, field: str) -> int | Decimal:
    """A JSON number as int or finite Decimal (a float via its shortest text: no binary noise)."""
    if type(value) is int:
        return value
    if type(value) is float:
        value = Decimal(repr(value))
    if type(value) is Decimal and value.is_finite():
        return value
    raise MalformedRecord(f"{field} is not a finite number")


def _epoch_micros(value: int | Decimal, per_unit: int, field: str) -> int:
    """Epoch microseconds (floored) of a number of units; refuses instants outside 1970..9999."""
    if not 0 <= value < _END_OF_YEAR_9999 * _MICROS_PER_SECOND // per_unit:
        raise MalformedRecord(f"{field} is out of range")
    if type(value) is int:
        return value * per_unit
    # Exact floor, whatever the precision of the text (Decimal arithmetic would round at 28 digits).
    numerator, denominator = value.quantize(_PICOSECOND, rounding=ROUND_FLOOR).as_integer_ratio()
    return numerator * per_unit // denominator


def _creation_micros(created: object) -> int:
    """Epoch microseconds of ApproximateCreationDateTime (seconds; milliseconds above 1e11)."""
    field = "dynamodb.ApproximateCreationDateTime"
    value = _finite_number(created, field)
    per_unit = 1_000 if value > _MILLISECONDS_ABOVE else _MICROS_PER_SECOND
    return _epoch_micros(value, per_unit, field)


def _arrival_micros(arrival_ms: object) -> int:
    """Epoch microseconds of the Firehose record's approximateArrivalTimestamp (milliseconds)."""
    field = "approximateArrivalTimestamp"
    return _epoch_micros(_finite_number(arrival_ms, field), 1_000, field)


def _event_time(created: object, arrival_ms: object) -> tuple[str, tuple[str, str, str, str]]:
    """event_time and partition values from ApproximateCreationDateTime, else the arrival time."""
    if type(created) is int:
        texts = _CREATION_CACHE.get(created)
        if texts is None:
            texts = _event_time_texts(_creation_micros(created))
            _remember(_CREATION_CACHE, created, texts)
        return texts
    if created is None:
        return _event_time_texts(_arrival_micros(arrival_ms))
    return _event_time_texts(_creation_micros(created))


# --------------------------------------------------------------------------- records


def _decode_stream_record(data: object) -> dict[str, Any]:
    """The DynamoDB stream record carried, base64-encoded, in a Firehose record's data."""
    if type(data) is not str:
        raise MalformedRecord("data is not a base64 string")
    try:
        raw = binascii.a2b_base64(data, strict_mode=True)
    except ValueError:
        raise MalformedRecord("data is not valid base64") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedRecord("data is not UTF-8") from None
    try:
        record = _STREAM_RECORD_DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise MalformedRecord(f"data is not JSON ({exc.msg} at char {exc.pos})") from None
    except (ValueError, RecursionError) as exc:
        raise MalformedRecord(f"data is not JSON ({type(exc).__name__})") from None
    if type(record) is not dict:
        raise MalformedRecord("data is not a JSON object")
    return record


def _order_id(keys: object) -> str:
    """The order id from Keys.orderId.S."""
    key = keys.get(KEY_ATTRIBUTE) if type(keys) is dict else None
    order_id = key.get("S") if type(key) is dict and len(key) == 1 else None
    if type(order_id) is not str or not order_id:
        raise MalformedRecord("Keys.orderId.S is missing")
    return order_id


def landing_row(data: object, arrival_ms: object) -> tuple[str, tuple[str, str, str, str]]:
    """The landing row (compact JSON + newline) of one record's data, and its partition values."""
    record = _decode_stream_record(data)
    event_name = record.get("eventName")
    stream = record.get("dynamodb")
    if event_name is None or type(stream) is not dict:
        raise MalformedRecord("not a DynamoDB stream record (no eventName or no dynamodb)")
    if type(event_name) is not str or event_name not in _EVENT_IMAGES:
        raise MalformedRecord(f"unknown eventName {str(event_name)[:16]!r}")
    image_field, is_deleted = _EVENT_IMAGES[event_name]
    image = stream.get(image_field)
    if type(image) is not dict:
        raise MalformedRecord(f"{event_name} without {image_field}")
    event_id = record.get("eventID")
    if type(event_id) is not str or not event_id:
        raise MalformedRecord("eventID is missing")
    sequence = stream.get("SequenceNumber")
    if type(sequence) is not str or not (sequence.isascii() and sequence.isdigit()):
        raise MalformedRecord("dynamodb.SequenceNumber is not a string of digits")
    order_id = _order_id(stream.get("Keys"))
    event_time, partition = _event_time(stream.get("ApproximateCreationDateTime"), arrival_ms)
    row = (
        f'{{"event_id":{_json_string(event_id)},"event_name":"{event_name}",'
        f'"sequence_number":"{sequence}","event_time":"{event_time}",'
        f'"order_id":{_json_string(order_id)},"is_deleted":{is_deleted}'
        f"{_image_columns(image, order_id)}}}\n"
    )
    return row, partition


def transform_record(record: object) -> dict[str, Any]:
    """The Firehose response record for one request record; never raises."""
    if type(record) is not dict:
        record = {}
    record_id = record.get("recordId")
    data = record.get("data")
    try:
        row, (year, month, day, hour) = landing_row(data, record.get("approximateArrivalTimestamp"))
        encoded = binascii.b2a_base64(row.encode("utf-8"), newline=False).decode("ascii")
    except MalformedRecord as exc:
        reason = str(exc)
    except UnicodeEncodeError:
        reason = "a string is not valid Unicode (lone surrogate)"
    except RecursionError:
        reason = "values are nested too deeply"
    except Exception as exc:  # a bad record must never stop the batch
        reason = f"unexpected {type(exc).__name__}"
    else:
        return {
            "recordId": record_id,
            "result": OK,
            "data": encoded,
            "metadata": {"partitionKeys": {"year": year, "month": month, "day": day, "hour": hour}},
        }
    LOGGER.warning("record %s ProcessingFailed: %s", record_id, reason)
    return {
        "recordId": record_id,
        "result": PROCESSING_FAILED,
        "data": data if type(data) is str else "",
    }


def lambda_handler(event: dict[str, Any], context: object) -> dict[str, list[dict[str, Any]]]:
    """Transform one Firehose batch: one response record per request record, in order."""
    records = event.get("records") if type(event) is dict else None
    if type(records) is not list:
        LOGGER.warning("the Firehose event has no records list; nothing to transform")
        return {"records": []}
    return {"records": [transform_record(record) for record in records]}
