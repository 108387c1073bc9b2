"""The pipe's dead-letter queue: an external asset and a check on its depth."""

import json

import dagster as dg

from sales_cdc.defs.asset_keys import DEAD_LETTERS, ORDERS
from sales_cdc.resources.aws import AwsResource

DEAD_LETTER_QUEUE_EMPTY = "dead_letter_queue_empty"

orders_cdc_dead_letters = dg.AssetSpec(
    key=DEAD_LETTERS,
    deps=[ORDERS],
    kinds={"sqs"},
    group_name="landing",
    description=(
        "Batches the pipe gave up on after its bounded retries (SQS): each message names the "
        "stream shard and sequence range that never reached Kinesis."
    ),
)


@dg.asset_check(
    asset=DEAD_LETTERS,
    name=DEAD_LETTER_QUEUE_EMPTY,
    description="Fails while the pipe's dead-letter queue holds batches (changes not landed).",
)
def dead_letter_queue_empty(aws: AwsResource) -> dg.AssetCheckResult:
    """Depth of the dead-letter queue, with the shard and sequence range of a sample batch."""
    stack = aws.stack()
    sqs = aws.client("sqs")
    url = sqs.get_queue_url(QueueName=stack.dead_letter_queue_name)["QueueUrl"]
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    visible = int(attributes.get("ApproximateNumberOfMessages", 0))
    in_flight = int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0))
    depth = visible + in_flight
    sample: dict = {}
    if visible:
        # Peek: VisibilityTimeout=0 leaves the message visible for whoever re-drives it.
        messages = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=0, WaitTimeSeconds=0
        ).get("Messages", [])
        if messages:
            body = json.loads(messages[0]["Body"])
            sample = {**body.get("DDBStreamBatchInfo", {}), **body.get("requestContext", {})}
    return dg.AssetCheckResult(
        passed=depth == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"{depth} dead-lettered batch(es) in {stack.dead_letter_queue_name}"
            if depth
            else "dead-letter queue empty"
        ),
        metadata={
            "dead_letter_messages": depth,
            "visible_messages": visible,
            "in_flight_messages": in_flight,
            "queue": stack.dead_letter_queue_name,
            "sample_batch": dg.MetadataValue.json(sample),
        },
    )


# The queue is outside Dagster: nothing materializes it, so a schedule runs its check.
dead_letter_check_job = dg.define_asset_job(
    "dead_letter_check",
    selection=dg.AssetSelection.checks(dead_letter_queue_empty),
    description="Check the depth of the pipe's dead-letter queue.",
)
dead_letter_check_schedule = dg.ScheduleDefinition(
    job=dead_letter_check_job,
    cron_schedule="*/10 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
