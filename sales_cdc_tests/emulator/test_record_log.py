import pytest

from sales_cdc.emulator import record_log
from sales_cdc.emulator.record_log import KinesisRecords, RecordLog


def test_records_read_back_as_appended_and_kept_compressed():
    log = RecordLog()
    envelope = b'"eventSource": "aws:dynamodb", "awsRegion": "us-east-1", "eventName": "INSERT"'
    records = [b'{"orderId": "o-%d", "status": "PLACED", %s}' % (n, envelope) for n in range(50)]
    for n, record in enumerate(records):
        log.append(record, 1000.0 + n)
    assert len(log) == 50
    assert [log[i] for i in range(50)] == records
    assert log.created(49) == 1049.0
    # the first record is every other one's preset dictionary: each keeps little more than its id
    assert log.nbytes() < sum(map(len, records)) // 3


def test_trimming_drops_the_oldest_records_only(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(record_log, "COMPACT_AFTER_BYTES", 64)
    log = RecordLog()
    for n in range(100):
        log.append(f"record {n} ".encode() * 3, float(n))
    assert log.trim_before(10.0) == 10
    assert log.trim_before(10.0) == 0
    assert log[0] == b"record 10 " * 3 and log[89] == b"record 99 " * 3
    assert log.trim_before(60.0) == 50  # past COMPACT_AFTER_BYTES: the buffer is compacted
    assert [log[i] for i in range(len(log))] == [
        f"record {n} ".encode() * 3 for n in range(60, 100)
    ]
    log.append(b"record 100 " * 3, 100.0)
    assert log[len(log) - 1] == b"record 100 " * 3
    assert log.trim_before(1000.0) == 41 and len(log) == 0 and log.nbytes() == 0


def _record(sequence_number, partition_key, explicit_hash_key, data, created):
    return (sequence_number, partition_key, explicit_hash_key, data, created)


def test_kinesis_records_are_read_as_moto_reads_its_ordered_dict():
    records = KinesisRecords(_record)
    assert not records and list(records) == []
    records.append(7, "order-1", None, b"a", 1.0)
    records.append(8, "order-2", "", b"\x00\xff", 2.0)
    records.append(9, "ordér-3", "340282366920938463463374607431768211455", b"c" * 300, 3.0)
    assert len(records) == 3
    assert list(records) == [7, 8, 9] and list(reversed(records)) == [9, 8, 7]
    assert records[8] == (8, "order-2", "", b"\x00\xff", 2.0)  # "" and None stay apart
    assert records[9][1:3] == ("ordér-3", "340282366920938463463374607431768211455")
    assert [r[0] for r in records.values()] == [7, 8, 9]
    assert records.created(9) == 3.0
    with pytest.raises(ValueError, match="does not follow 9"):
        records.append(11, "order-4", None, b"d", 4.0)
    with pytest.raises(KeyError):
        records[6]
    assert records.trim_before(2.5) == 2
    assert list(records.items()) == [(9, records[9])]
    records.append(10, "order-4", None, b"d", 4.0)
    assert list(records) == [9, 10]
