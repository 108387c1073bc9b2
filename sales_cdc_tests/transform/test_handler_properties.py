"""Property-based tests of the transform: any DynamoDB item converts, numbers stay exact."""

import base64
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sales_cdc.transform.handler import lambda_handler, number_literal, snake_case

FIXED_COLUMNS = [
    "event_id",
    "event_name",
    "sequence_number",
    "event_time",
    "order_id",
    "is_deleted",
]
ORDER_ID = "order-1"
PROPERTY_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


# --------------------------------------------------------------------------- strategies


@st.composite
def decimals(draw: st.DrawFn) -> Decimal:
    """Finite decimals with up to 38 significant digits and DynamoDB-sized exponents."""
    digits = draw(st.lists(st.integers(0, 9), min_size=1, max_size=38))
    exponent = draw(st.integers(-130, 125))
    return Decimal((draw(st.integers(0, 1)), tuple(digits), exponent))


@st.composite
def number_texts(draw: st.DrawFn) -> str:
    """Decimal texts as DynamoDB could hold them, in JSON and in non-JSON spellings."""
    value = draw(decimals())
    text = draw(
        st.sampled_from(
            [
                str(value),  # '1.23E+5', '-0.001'
                format(value, "f"),  # plain digits
                format(value, "e"),  # '1.23e+5'
                format(value, "E").replace("E+", "E"),
            ]
        )
    )
    unsigned = text.removeprefix("-")
    sign = "-" if text.startswith("-") else draw(st.sampled_from(["", "+"]))
    if unsigned.startswith("0.") and draw(st.booleans()):
        unsigned = unsigned[1:]  # '.5'
    elif unsigned.isdigit() and draw(st.booleans()):
        unsigned += "."  # '5.'
    if draw(st.booleans()):
        unsigned = "0" * draw(st.integers(1, 3)) + unsigned  # leading zeros
    return sign + unsigned


base64_texts = st.binary(max_size=24).map(lambda b: base64.b64encode(b).decode("ascii"))
scalars = st.one_of(
    st.builds(lambda s: {"S": s}, st.text(max_size=20)),
    st.builds(lambda n: {"N": n}, number_texts()),
    st.builds(lambda b: {"BOOL": b}, st.booleans()),
    st.just({"NULL": True}),
    st.builds(lambda b: {"B": b}, base64_texts),
    st.builds(lambda v: {"SS": v}, st.lists(st.text(max_size=8), max_size=4, unique=True)),
    st.builds(lambda v: {"NS": v}, st.lists(number_texts(), max_size=4)),
    st.builds(lambda v: {"BS": v}, st.lists(base64_texts, max_size=4)),
)
typed_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.builds(lambda v: {"L": v}, st.lists(children, max_size=4)),
        st.builds(lambda v: {"M": v}, st.dictionaries(st.text(max_size=10), children, max_size=4)),
    ),
    max_leaves=12,
)
attribute_names = st.from_regex(r"[a-zA-Z][a-zA-Z0-9_]{0,15}", fullmatch=True)


def landable(names: list[str]) -> bool:
    """Whether the names land on distinct columns that are not fixed ones."""
    columns = [snake_case(name) for name in names]
    return len(set(columns)) == len(columns) and not set(columns) & set(FIXED_COLUMNS)


items = st.dictionaries(attribute_names, typed_values, max_size=8).filter(landable)


# --------------------------------------------------------------------------- oracle


def expected_value(typed: dict[str, Any]) -> Any:
    """The plain value a typed value must land as, numbers as Decimal of the original text."""
    [(tag, value)] = typed.items()
    if tag == "N":
        return Decimal(value)
    if tag == "NS":
        return [Decimal(v) for v in value]
    if tag == "NULL":
        return None
    if tag == "L":
        return [expected_value(v) for v in value]
    if tag == "M":
        return {k: expected_value(v) for k, v in value.items()}
    return value  # S, BOOL, B, SS, BS


def transform_item(event_name: str, item: dict[str, Any]) -> dict[str, Any]:
    """The response record for a stream record carrying the item."""
    image = "OldImage" if event_name == "REMOVE" else "NewImage"
    record = {
        "eventID": "e-1",
        "eventName": event_name,
        "dynamodb": {
            "ApproximateCreationDateTime": 1_772_874_000,
            "Keys": {"orderId": {"S": ORDER_ID}},
            image: {"orderId": {"S": ORDER_ID}} | item,
            "SequenceNumber": "1",
        },
    }
    data = base64.b64encode(json.dumps(record).encode()).decode()
    event = {"records": [{"recordId": "r", "approximateArrivalTimestamp": 0, "data": data}]}
    [out] = lambda_handler(event, None)["records"]
    return out


# --------------------------------------------------------------------------- properties


@PROPERTY_SETTINGS
@given(item=items, event_name=st.sampled_from(["INSERT", "MODIFY", "REMOVE"]))
def test_any_item_lands_as_one_json_line_with_exact_values(item, event_name):
    out = transform_item(event_name, item)
    assert out["result"] == "Ok"
    data = base64.b64decode(out["data"])
    assert data.endswith(b"\n") and data.count(b"\n") == 1
    text = data.decode("utf-8")
    row = json.loads(text, parse_float=Decimal, parse_int=Decimal)
    assert list(row)[:6] == FIXED_COLUMNS
    assert row["is_deleted"] is (event_name == "REMOVE")
    expected = {snake_case(name): expected_value(typed) for name, typed in item.items()}
    assert {k: v for k, v in row.items() if k not in FIXED_COLUMNS} == expected
    assert list(row)[6:] == list(expected)


@PROPERTY_SETTINGS
@given(text=number_texts())
def test_every_number_round_trips_exactly(text):
    literal = number_literal(text)
    parsed = json.loads(literal, parse_float=Decimal, parse_int=Decimal)
    assert isinstance(parsed, Decimal)
    assert parsed == Decimal(text)
    assert number_literal(literal) == literal  # a literal is already JSON: emitted verbatim


@PROPERTY_SETTINGS
@given(value=decimals())
def test_json_spelled_numbers_are_emitted_verbatim(value):
    text = str(value)
    assert number_literal(text) == text


@PROPERTY_SETTINGS
@given(
    data=st.one_of(
        st.binary(max_size=64).map(lambda b: base64.b64encode(b).decode()),
        st.text(max_size=64),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=5),
            lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
        ).map(lambda v: base64.b64encode(json.dumps(v).encode()).decode()),
    )
)
def test_arbitrary_data_never_raises(data):
    event = {"records": [{"recordId": "junk", "data": data}, {"recordId": "junk2", "data": data}]}
    records = lambda_handler(event, None)["records"]
    assert [r["recordId"] for r in records] == ["junk", "junk2"]
    for record in records:
        assert record["result"] in ("Ok", "ProcessingFailed")
        if record["result"] == "ProcessingFailed":
            assert record["data"] == data


@PROPERTY_SETTINGS
@given(item=items, path=st.data())
def test_corrupting_any_typed_value_fails_only_that_record(item, path):
    corrupt = path.draw(
        st.sampled_from([{"N": "x"}, {"S": 1}, {"BOOL": "no"}, {"NULL": False}, {}, {"Z": 1}])
    )
    broken = dict(item) | {"brokenValue": corrupt}
    if item and path.draw(st.booleans()):
        name = path.draw(st.sampled_from(sorted(item)))
        broken = dict(item) | {name: {"L": [item[name], corrupt]}}
    assert transform_item("INSERT", broken)["result"] == "ProcessingFailed"
    assert transform_item("INSERT", item)["result"] == "Ok"


MAX_MICROS = 253_402_300_799_999_999  # 9999-12-31 23:59:59.999999
MS_FROM_MICROS = 100_000_000_001_000  # ms values above 1e11 are read as epoch ms


@PROPERTY_SETTINGS
@given(
    micros_and_unit=st.one_of(
        st.tuples(st.integers(0, 100_000_000_000_000_000), st.just("s")),
        st.tuples(st.integers(MS_FROM_MICROS, MAX_MICROS), st.just("ms")),
    )
)
def test_event_time_matches_datetime(micros_and_unit):
    micros, unit = micros_and_unit
    seconds, fraction = divmod(micros, 1_000_000)
    created = (
        f"{seconds}.{fraction:06d}" if unit == "s" else f"{micros // 1000}.{micros % 1000:03d}"
    )
    record = {
        "eventID": "e-1",
        "eventName": "INSERT",
        "dynamodb": {
            "ApproximateCreationDateTime": "CREATED",
            "Keys": {"orderId": {"S": ORDER_ID}},
            "NewImage": {},
            "SequenceNumber": "1",
        },
    }
    text = json.dumps(record).replace('"CREATED"', created)
    data = base64.b64encode(text.encode()).decode()
    [out] = lambda_handler({"records": [{"recordId": "r", "data": data}]}, None)["records"]
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
    landed = json.loads(base64.b64decode(out["data"]))
    assert landed["event_time"] == moment.strftime("%Y-%m-%d %H:%M:%S.%f")
    assert out["metadata"]["partitionKeys"] == {
        "year": f"{moment.year:04d}",
        "month": f"{moment.month:02d}",
        "day": f"{moment.day:02d}",
        "hour": f"{moment.hour:02d}",
    }
