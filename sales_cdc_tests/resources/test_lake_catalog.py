"""The Glue catalog reader: behaviour moto does not model, pinned with botocore's Stubber."""

import boto3
from botocore.stub import Stubber

from sales_cdc.resources.lake_catalog import LakeCatalog


def test_partitions_of_named_values_ask_again_for_unprocessed_keys() -> None:
    # AWS Glue API "BatchGetPartition": up to 1,000 PartitionsToGet; keys Glue did not process
    # come back as UnprocessedKeys, to be asked for again.
    glue = boto3.client("glue", region_name="us-east-1")
    wanted = [{"Values": ["2026", "03", "01", "10"]}, {"Values": ["2026", "03", "01", "11"]}]
    partition = {"Values": ["2026", "03", "01", "10"], "DatabaseName": "lake", "TableName": "raw"}
    later = {**partition, "Values": ["2026", "03", "01", "11"]}
    with Stubber(glue) as stub:
        stub.add_response(
            "batch_get_partition",
            {"Partitions": [partition], "UnprocessedKeys": [wanted[1]]},
            {"DatabaseName": "lake", "TableName": "raw", "PartitionsToGet": wanted},
        )
        stub.add_response(
            "batch_get_partition",
            {"Partitions": [later], "UnprocessedKeys": []},
            {"DatabaseName": "lake", "TableName": "raw", "PartitionsToGet": [wanted[1]]},
        )
        catalog = LakeCatalog(glue, s3=None, database="lake")
        found = catalog.get_partitions_of("raw", [w["Values"] for w in wanted] * 2)  # deduplicated
        stub.assert_no_pending_responses()
    assert [p["Values"][-1] for p in found] == ["10", "11"]
