"""The lease/checkpoint table in the emulator, and reading shards from it parents first."""

from typing import Any

import pytest

from sales_cdc.emulator.checkpoints import CheckpointStore, LeaseLost
from sales_cdc.emulator.shards import Shard, ShardedReader
from sales_cdc.resources.aws import AwsResource
from sales_cdc.stack import checkpoint_table_name


@pytest.fixture
def store(aws: AwsResource) -> CheckpointStore:
    store = CheckpointStore(
        aws.client("dynamodb"), checkpoint_table_name(aws.stack()), owner="runtime-a"
    )
    assert store.ensure_table() is True
    return store


def test_table_is_created_once_on_demand(store: CheckpointStore) -> None:
    assert store.ensure_table() is False
    table = store.dynamodb.describe_table(TableName=store.table_name)["Table"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["KeySchema"] == [{"AttributeName": "leaseKey", "KeyType": "HASH"}]


def test_checkpoints_advance_under_the_lease(store: CheckpointStore) -> None:
    assert store.get("pipe:p", "shard-1") is None
    assert store.take_lease("pipe:p", "shard-1").sequence_number is None
    store.advance("pipe:p", "shard-1", "100")
    store.advance("pipe:p", "shard-1", None, shard_end=True)
    checkpoint = store.get("pipe:p", "shard-1")
    assert checkpoint is not None
    assert (checkpoint.sequence_number, checkpoint.shard_end, checkpoint.owner) == (
        "100",
        True,
        "runtime-a",
    )
    item = store.dynamodb.get_item(
        TableName=store.table_name, Key={"leaseKey": {"S": "pipe:p|shard-1"}}
    )["Item"]
    assert {"leaseOwner", "checkpoint", "shardEnd", "updatedAt", "leaseCounter"} <= set(item)


def test_a_runtime_that_lost_its_lease_cannot_checkpoint(store: CheckpointStore) -> None:
    store.take_lease("firehose:d", "s")
    store.advance("firehose:d", "s", "5")
    other = CheckpointStore(store.dynamodb, store.table_name, owner="runtime-b")
    assert other.take_lease("firehose:d", "s").sequence_number == "5"
    with pytest.raises(LeaseLost):
        store.advance("firehose:d", "s", "9")
    assert store.get("firehose:d", "s").sequence_number == "5"


class _FakeSource:
    """Two closed parents and a child, records 1..n per shard."""

    def __init__(self) -> None:
        self.shards = [Shard("parent"), Shard("child", ("parent",))]
        self.records = {"parent": ["1", "2", "3"], "child": ["10", "11"]}
        self.open = {"parent": False, "child": True}
        self.iterators: list[tuple[str, str, str | None]] = []

    def list_shards(self) -> list[Shard]:
        return self.shards

    def shard_iterator(self, shard_id: str, iterator_type: str, sequence: str | None) -> str:
        self.iterators.append((shard_id, iterator_type, sequence))
        seqs = self.records[shard_id]
        start = 0 if sequence is None else seqs.index(sequence) + 1
        return f"{shard_id}:{start}"

    def get_records(self, iterator: str, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        shard_id, start = iterator.split(":")
        seqs = self.records[shard_id][int(start) : int(start) + limit]
        end = int(start) + len(seqs)
        closed = not self.open[shard_id] and end >= len(self.records[shard_id])
        return [{"seq": s} for s in seqs], None if closed else f"{shard_id}:{end}"

    def sequence_number(self, record: dict[str, Any]) -> str:
        return record["seq"]


def test_parent_is_delivered_before_child_and_restart_resumes(store: CheckpointStore) -> None:
    source = _FakeSource()
    reader = ShardedReader(source, store, "firehose:d")
    reader.refresh()
    assert [s.shard_id for s in reader.readable()] == ["parent"]
    parent = reader.states["parent"]
    assert [r["seq"] for r in reader.read(parent, 2)] == ["1", "2"]
    reader.commit("parent", "2")
    assert [r["seq"] for r in reader.read(parent, 5)] == ["3"]
    assert parent.reached_end and not parent.finished
    assert [s.shard_id for s in reader.readable()] == []  # child waits for the parent's delivery
    reader.commit("parent", "3", shard_end=True)
    assert [s.shard_id for s in reader.readable()] == ["child"]
    assert [r["seq"] for r in reader.read(reader.states["child"], 1)] == ["10"]
    reader.commit("child", "10")
    reader.commit("child", "2")  # never moves back
    assert store.get("firehose:d", "child").sequence_number == "10"

    # A new runtime resumes from the checkpoints; what was read but not committed is read again.
    restarted = ShardedReader(source, CheckpointStore(store.dynamodb, store.table_name, "b"), "firehose:d")  # fmt: skip
    restarted.refresh()
    assert restarted.states["parent"].finished
    assert [r["seq"] for r in restarted.read(restarted.states["child"], 5)] == ["11"]
    assert source.iterators[-1] == ("child", "AFTER_SEQUENCE_NUMBER", "10")
