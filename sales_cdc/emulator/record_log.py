"""The records of one stream shard, oldest first, compressed in one growing buffer.

A shard holds a day of records under the demo's load (DynamoDB Streams and Kinesis both keep 24
hours). Kept as one Python object each (moto's way, or even a slotted object with a compressed
body), every record is a few small allocations that live for a day among the many short-lived ones
of each request, and they keep the allocator's pages from being given back. Here a record is its
compressed bytes appended to one bytearray, its end offset and its arrival time appended to two
arrays: no object per record until a reader asks for it.

Records leave only from the front, when they pass the retention period.
"""

from __future__ import annotations

import struct
import zlib
from array import array
from collections.abc import Callable, Iterator
from typing import Any

# Bytes a trim may leave unreleased at the buffer's front before it is compacted.
COMPACT_AFTER_BYTES = 1 << 20


class SharedDictionary:
    """zlib with a preset dictionary: the first record its shard stored.

    The records of one shard repeat most of their text (attribute names and types, the table's
    ARN, the pipe's envelope), so with the first record as a preset dictionary each record
    compresses to little more than what differs: less than half of compressing it alone.
    """

    __slots__ = ("zdict",)

    def __init__(self, sample: bytes) -> None:
        self.zdict = sample[-32768:]  # zlib's window: a longer dictionary is not used

    def compress(self, data: bytes) -> bytes:
        compressor = zlib.compressobj(zdict=self.zdict)
        return compressor.compress(data) + compressor.flush()

    def decompress(self, body: bytes) -> bytes:
        decompressor = zlib.decompressobj(zdict=self.zdict)
        return decompressor.decompress(body) + decompressor.flush()


class RecordLog:
    """Records appended with their arrival time (seconds since the epoch), read by index."""

    __slots__ = ("_created", "_data", "_dictionary", "_ends", "_start")

    def __init__(self) -> None:
        self._data = bytearray()
        self._ends = array("Q")  # each record's end offset in _data
        self._created = array("d")
        self._start = 0  # offset in _data of the first record (trimmed ones are before it)
        self._dictionary: SharedDictionary | None = None

    def __len__(self) -> int:
        return len(self._ends)

    def append(self, record: bytes, created: float) -> None:
        if self._dictionary is None:
            self._dictionary = SharedDictionary(record)
        self._data += self._dictionary.compress(record)
        self._ends.append(len(self._data))
        self._created.append(created)

    def stored(self, index: int) -> bytes:
        """The record at `index` as kept: compressed."""
        start = self._ends[index - 1] if index else self._start
        return bytes(self._data[start : self._ends[index]])

    def __getitem__(self, index: int) -> bytes:
        """The record at `index`, as appended."""
        assert self._dictionary is not None, "an empty log has no records"
        return self._dictionary.decompress(self.stored(index))

    def created(self, index: int) -> float:
        return self._created[index]

    def trim_before(self, horizon: float) -> int:
        """Drop the records that arrived before `horizon`, oldest first; how many were dropped."""
        drop = 0
        while drop < len(self._created) and self._created[drop] < horizon:
            drop += 1
        if drop:
            self.drop_first(drop)
        return drop

    def drop_first(self, count: int) -> None:
        """Drop the `count` oldest records."""
        self._start = self._ends[count - 1]
        del self._ends[:count]
        del self._created[:count]
        if self._start >= COMPACT_AFTER_BYTES or not self._ends:
            del self._data[: self._start]
            self._ends = array("Q", (end - self._start for end in self._ends))
            self._start = 0

    def nbytes(self) -> int:
        """Bytes the log holds: its buffer and its two arrays."""
        return (
            len(self._data)
            + self._ends.itemsize * len(self._ends)
            + self._created.itemsize * len(self._created)
        )


# A Kinesis record as its log keeps it: the lengths of its partition key and explicit hash key
# (0xFFFF: none), the two keys (UTF-8), then its data.
_KEYS = struct.Struct("<HH")
_NO_KEY = 0xFFFF


def kinesis_blob(partition_key: str, explicit_hash_key: str | None, data: bytes) -> bytes:
    key = partition_key.encode()
    hash_key = b"" if explicit_hash_key is None else explicit_hash_key.encode()
    hash_length = _NO_KEY if explicit_hash_key is None else len(hash_key)
    return _KEYS.pack(len(key), hash_length) + key + hash_key + data


def kinesis_fields(blob: bytes) -> tuple[str, str | None, bytes]:
    """The partition key, explicit hash key and data of a kinesis_blob."""
    key_length, hash_length = _KEYS.unpack_from(blob)
    at = _KEYS.size
    key = blob[at : at + key_length].decode()
    at += key_length
    if hash_length == _NO_KEY:
        return key, None, blob[at:]
    return key, blob[at : at + hash_length].decode(), blob[at + hash_length :]


# make_record(sequence number, partition key, explicit hash key, data, arrival time)
RecordFactory = Callable[[int, str, "str | None", bytes, float], Any]


class KinesisRecords:
    """A Kinesis shard's records by sequence number, read and written as moto reads and writes
    `Shard.records` (an OrderedDict of Record): in order, each new one after the last, old ones
    trimmed from the front. A record read is built on the spot by `make_record`."""

    __slots__ = ("_first", "_log", "_make_record")

    def __init__(self, make_record: RecordFactory) -> None:
        self._log = RecordLog()
        self._first = 1  # the sequence number of the oldest record kept
        self._make_record = make_record

    def __len__(self) -> int:
        return len(self._log)

    def keys(self) -> range:
        return range(self._first, self._first + len(self._log))

    def __iter__(self) -> Iterator[int]:
        return iter(self.keys())

    def __reversed__(self) -> Iterator[int]:
        return reversed(self.keys())

    def __getitem__(self, sequence_number: int) -> Any:
        index = sequence_number - self._first
        if not 0 <= index < len(self._log):
            raise KeyError(sequence_number)
        key, hash_key, data = kinesis_fields(self._log[index])
        return self._make_record(sequence_number, key, hash_key, data, self._log.created(index))

    def created(self, sequence_number: int) -> float:
        """The arrival time of the record `sequence_number` (seconds since the epoch)."""
        return self._log.created(sequence_number - self._first)

    def values(self) -> Iterator[Any]:
        return (self[n] for n in self.keys())

    def items(self) -> Iterator[tuple[int, Any]]:
        return ((n, self[n]) for n in self.keys())

    def append(
        self,
        sequence_number: int,
        partition_key: str,
        explicit_hash_key: str | None,
        data: bytes,
        created: float,
    ) -> None:
        """Keep a record after the last one: its sequence number must follow the last one's."""
        if not self._log:
            self._first = sequence_number
        elif sequence_number != self._first + len(self._log):
            raise ValueError(
                f"sequence number {sequence_number} does not follow "
                f"{self._first + len(self._log) - 1}"
            )
        self._log.append(kinesis_blob(partition_key, explicit_hash_key, data), created)

    def trim_before(self, horizon: float) -> int:
        """Drop the records that arrived before `horizon`; how many were dropped."""
        dropped = self._log.trim_before(horizon)
        self._first += dropped
        return dropped

    def nbytes(self) -> int:
        return self._log.nbytes()
