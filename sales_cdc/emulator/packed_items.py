"""The emulator's DynamoDB items kept packed: compressed bytes while no request uses them.

moto keeps every stored item as a tree of Python objects: an order item of the demo (eighteen
attribute values, each a DynamoType with its own attribute dict) takes about 2.7 KB, and a table
that grows all afternoon grows the emulator with it, its small objects scattered over memory the
allocator can then not give back. Here a stored item keeps its attributes packed (pickled as plain
values, compressed with a dictionary shared by the items of the same attribute names: about 200
bytes for an order) and unpacks them when a request reads them (`item.attrs`). When the last
request that used the item ends, the attributes, changed in place or not, are packed again.

A request that unpacks an item counts as one of its users until it ends; the item is packed only
when it has no user and nobody touched it since its attributes were read for packing, so an update
by a concurrent request is never lost. Items touched outside a request (a test reading moto's
backend directly) stay unpacked until a request touches them.
"""

from __future__ import annotations

import copy
import pickle
import sys
import threading
import zlib
from typing import Any, NamedTuple

# At most this many shared dictionaries (one per set of attribute names); items of further name
# sets are compressed without one.
MAX_DICTIONARIES = 256
_dictionaries: dict[frozenset[str], bytes] = {}
_lock = threading.Lock()
_request = threading.local()  # .touched: the items the current request uses (None outside one)


class Packed(NamedTuple):
    """An item's attributes packed: compressed pickle of their plain values."""

    body: bytes
    dictionary: bytes | None  # the shared zlib dictionary it was compressed with
    size: int  # the item's size as moto counts it (Item.size)
    checksum: int  # crc32 of the uncompressed pickle: unchanged attributes are not compressed again


class _Packing:
    """What a stored item keeps beside its attributes: their packed form and who uses them."""

    __slots__ = ("packed", "users", "touches")

    def __init__(self) -> None:
        self.packed: Packed | None = None
        self.users = 0
        self.touches = 0


def _plain(value: Any) -> tuple:
    """A DynamoType as plain values (type, value), nested lists and maps included."""
    if value.type == "L":
        return ("L", [_plain(v) for v in value.value])
    if value.type == "M":
        return ("M", {k: _plain(v) for k, v in value.value.items()})
    return (value.type, value.value)


def _typed(plain: tuple, dynamo_type: type) -> Any:
    kind, value = plain
    typed = dynamo_type.__new__(dynamo_type)
    typed.type = kind
    if kind == "L":
        value = [_typed(v, dynamo_type) for v in value]
    elif kind == "M":
        value = {k: _typed(v, dynamo_type) for k, v in value.items()}
    typed.value = value
    return typed


def pack(attrs: dict[str, Any], previous: Packed | None = None) -> Packed | None:
    """An item's attributes packed; `previous` itself when they are unchanged since it was packed;
    None when one of them is not a plain DynamoType (the item then stays as moto keeps it)."""
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.utilities import bytesize

    if any(type(value) is not DynamoType for value in attrs.values()):
        return None
    data = pickle.dumps({name: _plain(value) for name, value in attrs.items()}, protocol=5)
    checksum = zlib.crc32(data)
    if previous is not None and previous.checksum == checksum:
        return previous
    size = sum(bytesize(name) + value.size() for name, value in attrs.items())
    names = frozenset(attrs)
    dictionary = _dictionaries.get(names)
    if dictionary is None and len(_dictionaries) < MAX_DICTIONARIES:
        dictionary = _dictionaries.setdefault(names, data[-32768:])
    if dictionary is None:
        return Packed(zlib.compress(data), None, size, checksum)
    compressor = zlib.compressobj(zdict=dictionary)
    return Packed(compressor.compress(data) + compressor.flush(), dictionary, size, checksum)


def unpack(packed: Packed, names: frozenset[str] | None = None) -> Any:
    """The LimitedSizeDict of DynamoType values `pack` packed (new objects on every call); only
    the attributes in `names` when given."""
    from moto.dynamodb.models.dynamo_type import DynamoType, LimitedSizeDict

    if packed.dictionary is None:
        data = zlib.decompress(packed.body)
    else:
        decompressor = zlib.decompressobj(zdict=packed.dictionary)
        data = decompressor.decompress(packed.body) + decompressor.flush()
    attrs = LimitedSizeDict.__new__(LimitedSizeDict)
    dict.__init__(attrs)
    for name, plain in pickle.loads(data).items():
        if names is None or name in names:
            # the stored item passed moto's size check when it was written
            dict.__setitem__(attrs, sys.intern(name), _typed(plain, DynamoType))
    return attrs


def _use(item: Any, packing: _Packing) -> None:
    """Count the current request as a user of `item` (once per request)."""
    touched = getattr(_request, "touched", None)
    if touched is None or id(item) in touched:
        return
    with _lock:
        packing.users += 1
        packing.touches += 1
    touched[id(item)] = item


class PackedAttributes:
    """Item.attrs: unpacked when read, packed again when the last request using it ends."""

    def __get__(self, item: Any, owner: type | None = None) -> Any:
        if item is None:
            return self
        state = item.__dict__
        packing = state.get("_packing")
        if packing is not None:
            _use(item, packing)
            if state.get("_attrs") is None:
                with _lock:
                    if state.get("_attrs") is None:
                        state["_attrs"] = unpack(packing.packed)
        try:
            return state["_attrs"]
        except KeyError:
            raise AttributeError("attrs") from None

    def __set__(self, item: Any, value: Any) -> None:
        state = item.__dict__
        packing = state.get("_packing")
        if packing is not None:
            _use(item, packing)
        state["_attrs"] = value


def store(item: Any) -> None:
    """Keep `item` (just stored in a table) packed once the current request is done with it."""
    state = item.__dict__
    if "_packing" not in state:
        state["_packing"] = _Packing()
    _use(item, state["_packing"])


def request_started() -> None:
    _request.touched = {}


def request_ended() -> None:
    """Pack the items the request used that no other request uses now."""
    touched = getattr(_request, "touched", None)
    _request.touched = None
    if not touched:
        return
    candidates = []
    with _lock:
        for item in touched.values():
            packing = item.__dict__["_packing"]
            packing.users -= 1
            attrs = item.__dict__.get("_attrs")
            if packing.users == 0 and attrs is not None:
                candidates.append((item, packing, packing.touches, attrs))
    for item, packing, touches, attrs in candidates:
        packed = pack(attrs, packing.packed)
        if packed is None:
            continue
        with _lock:
            # Nobody touched the item since its attributes were read: they are what was packed.
            if packing.users == 0 and packing.touches == touches:
                packing.packed = packed
                item.__dict__["_attrs"] = None


def size_of(item: Any) -> int:
    """Item.size() of a stored item, without unpacking it when it is packed."""
    packing = item.__dict__.get("_packing")
    packed = packing.packed if packing is not None else None
    if packed is not None and item.__dict__.get("_attrs") is None:
        return packed.size
    return item.size()


def copy_of(item: Any, names: frozenset[str] | None = None) -> Any:
    """A deep copy of a stored item (as copy.deepcopy makes it), unpacked from its packed form
    when it is packed: the stored item is not unpacked, so it has nothing to pack again. With
    `names`, the copy may hold only those attributes (a projection on them follows)."""
    from moto.dynamodb.models.dynamo_type import Item

    packing = item.__dict__.get("_packing")
    packed = packing.packed if packing is not None else None
    if packed is None or item.__dict__.get("_attrs") is not None:
        return copy.deepcopy(item)
    copied = Item.__new__(Item)
    copied.hash_key = copy.deepcopy(item.hash_key)
    copied.range_key = copy.deepcopy(item.range_key)
    copied.attrs = unpack(packed, names)
    return copied


def install() -> None:
    """Keep the items moto's DynamoDB tables store packed between the requests that use them."""
    from moto.dynamodb.models.dynamo_type import Item
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.responses import DynamoHandler

    if isinstance(Item.__dict__.get("attrs"), PackedAttributes):
        return
    original_put = Table.put_item
    original_call = DynamoHandler.call_action

    def put_item(self: Table, *args: Any, **kwargs: Any) -> Any:
        item = original_put(self, *args, **kwargs)
        store(item)
        return item

    def call_action(self: DynamoHandler) -> Any:
        request_started()
        try:
            return original_call(self)
        finally:
            request_ended()

    Item.attrs = PackedAttributes()  # type: ignore[assignment,method-assign]
    Table.put_item = put_item  # type: ignore[method-assign]
    DynamoHandler.call_action = call_action  # type: ignore[method-assign]
