"""The dead-letter check reads the real queue the stack provisions."""

import json

import dagster as dg

from sales_cdc.defs.landing.dead_letters import (
    DEAD_LETTER_QUEUE_EMPTY,
    dead_letter_check_job,
    dead_letter_check_schedule,
    dead_letter_queue_empty,
    orders_cdc_dead_letters,
)
from sales_cdc.resources.aws import AwsResource


def _run(aws: AwsResource) -> dg.AssetCheckEvaluation:
    """The scheduled job, as the landing stage's Definitions would run it."""
    defs = dg.Definitions(
        assets=[orders_cdc_dead_letters],
        asset_checks=[dead_letter_queue_empty],
        schedules=[dead_letter_check_schedule],
        resources={"aws": aws},
    )
    assert defs.resolve_schedule_def("dead_letter_check_schedule").job_name == "dead_letter_check"
    result = defs.resolve_job_def(dead_letter_check_job.name).execute_in_process()
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.check_name == DEAD_LETTER_QUEUE_EMPTY
    return evaluation


def test_check_passes_on_an_empty_queue_and_fails_naming_the_batch(provisioned: AwsResource):
    assert _run(provisioned).passed
    stack = provisioned.stack()
    sqs = provisioned.client("sqs")
    url = sqs.get_queue_url(QueueName=stack.dead_letter_queue_name)["QueueUrl"]
    body = {
        "requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": 3},
        "DDBStreamBatchInfo": {"shardId": "shard-1", "startSequenceNumber": "5", "batchSize": 2},
    }
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body))
    evaluation = _run(provisioned)
    assert not evaluation.passed
    assert evaluation.metadata["dead_letter_messages"].value == 1
    assert evaluation.metadata["sample_batch"].value["shardId"] == "shard-1"
    # Peeking leaves the message for whoever re-drives it.
    assert _run(provisioned).metadata["visible_messages"].value == 1
