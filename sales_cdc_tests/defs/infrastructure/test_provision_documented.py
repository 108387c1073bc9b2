"""AWS behaviour moto does not model, pinned with botocore Stubber as the AWS docs describe it."""

from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from sales_cdc.defs.infrastructure import provision
from sales_cdc.defs.infrastructure.provision import ProvisioningError
from sales_cdc.settings import load_settings
from sales_cdc.stack import Stack

ACCOUNT = "123456789012"
STREAM_ARN = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/stub-OrderTable/stream/2026-01-01T00:00"


class _StubbedAws:
    """Hands out the stubbed clients in place of AwsResource.client()."""

    def __init__(self, **clients: Any) -> None:
        self.clients = clients

    def client(self, service: str) -> Any:
        return self.clients[service]


@pytest.fixture
def stack() -> Stack:
    settings = load_settings(
        {"SALES_CDC_ENV": "aws", "AWS_REGION": "us-east-1", "SALES_CDC_PREFIX": "stub"}
    )
    return Stack.load(settings, ACCOUNT)


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(provision, "_sleep", slept.append)
    return slept


def _client(service: str) -> tuple[Any, Stubber]:
    client = boto3.client(service, region_name="us-east-1")
    return client, Stubber(client)


def _table(stack: Stack) -> dict[str, Any]:
    return {
        "Table": {
            "TableName": stack.table_name,
            "TableStatus": "ACTIVE",
            "KeySchema": [{"AttributeName": "orderId", "KeyType": "HASH"}],
            "BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"},
            "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
            "LatestStreamArn": STREAM_ARN,
        }
    }


def _pitr_stubs(ddb: Stubber, stack: Stack, unavailable: int) -> None:
    name = {"TableName": stack.table_name}
    ddb.add_response("describe_table", _table(stack), name)
    ddb.add_response("describe_table", _table(stack), name)  # the table_exists waiter
    ddb.add_response(
        "describe_continuous_backups",
        {"ContinuousBackupsDescription": {"ContinuousBackupsStatus": "DISABLED"}},
        name,
    )
    for _ in range(unavailable):
        ddb.add_client_error(
            "update_continuous_backups",
            "ContinuousBackupsUnavailableException",
            "Backups are being enabled for the table",
        )


# https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_UpdateContinuousBackups.html
def test_point_in_time_recovery_is_retried_while_backups_are_unavailable(stack, no_sleep):
    """ContinuousBackupsUnavailableException: backups not yet enabled for a new table; retry."""
    ddb, stub = _client("dynamodb")
    _pitr_stubs(stub, stack, unavailable=2)
    stub.add_response(
        "update_continuous_backups",
        {"ContinuousBackupsDescription": {"ContinuousBackupsStatus": "ENABLED"}},
        {
            "TableName": stack.table_name,
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        },
    )
    stub.add_response("describe_table", _table(stack), {"TableName": stack.table_name})
    with stub:
        outcome = provision.ensure_order_table(_StubbedAws(dynamodb=ddb), stack)
        stub.assert_no_pending_responses()
    assert outcome.action == "updated"
    assert outcome.changes == ["point-in-time recovery on"]
    assert len(no_sleep) == 2 and no_sleep[1] > no_sleep[0]  # backoff between attempts


def test_point_in_time_recovery_retries_are_bounded(stack):
    ddb, stub = _client("dynamodb")
    _pitr_stubs(stub, stack, unavailable=provision.PITR_ATTEMPTS)
    with stub, pytest.raises(ProvisioningError, match="continuous backups still unavailable"):
        provision.ensure_order_table(_StubbedAws(dynamodb=ddb), stack)


def _pipe(stack: Stack, state: str, reason: str | None = None) -> dict[str, Any]:
    described = {
        "Name": stack.pipe_name,
        "Arn": stack.pipe_arn,
        "Source": STREAM_ARN,
        "Target": stack.stream_arn,
        "RoleArn": stack.role_arn("pipe"),
        "DesiredState": "RUNNING",
        "CurrentState": state,
    }
    if reason:
        described["StateReason"] = reason
    return described


def _pipe_stubs(stack: Stack) -> tuple[Any, Stubber, Any, Stubber]:
    ddb, ddb_stub = _client("dynamodb")
    ddb_stub.add_response("describe_table", _table(stack), {"TableName": stack.table_name})
    pipes, pipes_stub = _client("pipes")
    return ddb, ddb_stub, pipes, pipes_stub


def _create_pipe_params(stack: Stack) -> dict[str, Any]:
    return {
        "Name": stack.pipe_name,
        "DesiredState": "RUNNING",
        "Description": ANY,
        "Tags": {"project": "stub"},
        **provision._pipe_parameters(stack, STREAM_ARN),
    }


ROLE_NOT_READY = "Pipes cannot assume the role: the role does not exist or is not yet usable"


# https://docs.aws.amazon.com/eventbridge/latest/pipes-reference/API_DescribePipe.html
def test_a_pipe_that_failed_to_create_is_deleted_and_created_again(stack):
    """CREATE_FAILED is final (e.g. a role created seconds ago not usable yet): delete, create."""
    ddb, ddb_stub, pipes, stub = _pipe_stubs(stack)
    name = {"Name": stack.pipe_name}
    stub.add_client_error("describe_pipe", "NotFoundException", "no pipe", 404, name)
    stub.add_response("create_pipe", {"Name": stack.pipe_name}, _create_pipe_params(stack))
    stub.add_response("describe_pipe", _pipe(stack, "CREATING"), name)
    stub.add_response("describe_pipe", _pipe(stack, "CREATE_FAILED", ROLE_NOT_READY), name)
    stub.add_response("delete_pipe", {"Name": stack.pipe_name}, name)
    stub.add_client_error("describe_pipe", "NotFoundException", "no pipe", 404, name)
    stub.add_response("create_pipe", {"Name": stack.pipe_name}, _create_pipe_params(stack))
    stub.add_response("describe_pipe", _pipe(stack, "RUNNING"), name)
    with ddb_stub, stub:
        outcome = provision.ensure_cdc_pipe(_StubbedAws(dynamodb=ddb, pipes=pipes), stack)
        stub.assert_no_pending_responses()
    assert outcome.action == "created"
    assert outcome.changes == ["repaired CREATE_FAILED"]


@pytest.mark.parametrize("state", ["UPDATE_FAILED", "START_FAILED"])
def test_a_pipe_that_failed_to_update_or_start_gets_its_declared_configuration_again(stack, state):
    ddb, ddb_stub, pipes, stub = _pipe_stubs(stack)
    name = {"Name": stack.pipe_name}
    stub.add_response("describe_pipe", _pipe(stack, state, ROLE_NOT_READY), name)
    stub.add_response("describe_pipe", _pipe(stack, state, ROLE_NOT_READY), name)
    wanted = provision._pipe_parameters(stack, STREAM_ARN)
    source = dict(wanted["SourceParameters"]["DynamoDBStreamParameters"])
    source.pop("StartingPosition")  # UpdatePipe cannot change it
    assert source["DeadLetterConfig"] == {"Arn": stack.dead_letter_queue_arn}
    assert source["MaximumRetryAttempts"] == 10 and source["MaximumRecordAgeInSeconds"] == 3600
    stub.add_response(
        "update_pipe",
        {"Name": stack.pipe_name},
        {
            "Name": stack.pipe_name,
            "RoleArn": stack.role_arn("pipe"),
            "Target": stack.stream_arn,
            "DesiredState": "RUNNING",
            "SourceParameters": {"DynamoDBStreamParameters": source},
            "TargetParameters": wanted["TargetParameters"],
        },
    )
    stub.add_response("describe_pipe", _pipe(stack, "UPDATING"), name)
    stub.add_response("describe_pipe", _pipe(stack, "RUNNING"), name)
    with ddb_stub, stub:
        outcome = provision.ensure_cdc_pipe(_StubbedAws(dynamodb=ddb, pipes=pipes), stack)
        stub.assert_no_pending_responses()
    assert (outcome.action, outcome.changes) == ("updated", [f"repaired {state}"])


def test_pipe_repairs_are_bounded_and_the_reason_is_shown(stack):
    ddb, ddb_stub, pipes, stub = _pipe_stubs(stack)
    name = {"Name": stack.pipe_name}
    stub.add_response("describe_pipe", _pipe(stack, "START_FAILED", ROLE_NOT_READY), name)
    for _ in range(provision.PIPE_REPAIR_ATTEMPTS):
        stub.add_response("describe_pipe", _pipe(stack, "START_FAILED", ROLE_NOT_READY), name)
        stub.add_response("update_pipe", {"Name": stack.pipe_name})
    stub.add_response("describe_pipe", _pipe(stack, "START_FAILED", ROLE_NOT_READY), name)
    with ddb_stub, stub, pytest.raises(ProvisioningError) as raised:
        provision.ensure_cdc_pipe(_StubbedAws(dynamodb=ddb, pipes=pipes), stack)
    assert "START_FAILED after 4 repair(s)" in str(raised.value)
    assert ROLE_NOT_READY in str(raised.value) and stack.role_name("pipe") in str(raised.value)


def _delivery(stack: Stack, status: str) -> dict[str, Any]:
    return {
        "DeliveryStreamDescription": {
            "DeliveryStreamName": stack.delivery_name,
            "DeliveryStreamARN": stack.delivery_arn,
            "DeliveryStreamStatus": status,
            "DeliveryStreamType": "KinesisStreamAsSource",
            "VersionId": "1",
            "Destinations": [],
            "HasMoreDestinations": False,
            "FailureDescription": {"Type": "RETIRE_KMS_GRANT_FAILED", "Details": "role"},
        }
    }


# https://docs.aws.amazon.com/firehose/latest/APIReference/API_DescribeDeliveryStream.html
def test_a_delivery_stream_that_failed_to_create_is_deleted_and_created_again(stack):
    """CREATING_FAILED never changes and cannot be created again; DeleteDeliveryStream can."""
    firehose, stub = _client("firehose")
    name = {"DeliveryStreamName": stack.delivery_name}
    stub.add_response("describe_delivery_stream", _delivery(stack, "CREATING_FAILED"), name)
    stub.add_response("describe_delivery_stream", _delivery(stack, "CREATING_FAILED"), name)
    stub.add_response("delete_delivery_stream", {}, {**name, "AllowForceDelete": True})
    stub.add_client_error("describe_delivery_stream", "ResourceNotFoundException", "gone", 400)
    stub.add_response(
        "create_delivery_stream",
        {"DeliveryStreamARN": stack.delivery_arn},
        {
            **name,
            "DeliveryStreamType": "KinesisStreamAsSource",
            "KinesisStreamSourceConfiguration": {
                "KinesisStreamARN": stack.stream_arn,
                "RoleARN": stack.role_arn("firehose"),
            },
            "ExtendedS3DestinationConfiguration": provision._delivery_destination(stack),
            "Tags": [{"Key": "project", "Value": "stub"}],
        },
    )
    stub.add_response("describe_delivery_stream", _delivery(stack, "CREATING"), name)
    stub.add_response("describe_delivery_stream", _delivery(stack, "ACTIVE"), name)
    with stub:
        outcome = provision.ensure_delivery_stream(_StubbedAws(firehose=firehose), stack)
        stub.assert_no_pending_responses()
    assert (outcome.action, outcome.changes) == ("updated", ["repaired CREATING_FAILED"])
    logging = provision._delivery_destination(stack)["CloudWatchLoggingOptions"]
    assert logging == {
        "Enabled": True,
        "LogGroupName": "/aws/kinesisfirehose/stub-orders-cdc-delivery",
        "LogStreamName": "DestinationDelivery",
    }


# https://docs.aws.amazon.com/firehose/latest/dev/controlling-access.html (+ eb-pipes-permissions)
def test_trust_policies_use_the_conditions_each_service_documents(stack):
    """Firehose: sts:ExternalId; Pipes: aws:SourceAccount + SourceArn; Lambda, Glue: none."""

    def condition(service: str) -> Any:
        return stack.trust_policy(service)["Statement"][0].get("Condition")

    assert condition("firehose") == {"StringEquals": {"sts:ExternalId": ACCOUNT}}
    assert condition("pipe") == {
        "StringEquals": {"aws:SourceAccount": ACCOUNT},
        "ArnLike": {
            "aws:SourceArn": f"arn:aws:pipes:us-east-1:{ACCOUNT}:pipe/stub-orders-cdc-pipe"
        },
    }
    assert condition("transform") is None and condition("crawler") is None


def test_crawler_and_pipe_permissions_match_the_documented_resources(stack):
    crawler = {s["Sid"]: s for s in stack.role_policy("crawler")["Statement"]}
    assert crawler["LocateBucket"]["Action"] == ["s3:GetBucketLocation"]
    # logs:CreateLogGroup is authorized on the log group ARN itself (no ":*" suffix).
    assert crawler["CrawlerLogGroup"]["Resource"] == [
        f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/aws-glue/crawlers"
    ]
    pipe = {s["Sid"]: s for s in stack.role_policy("pipe")["Statement"]}
    assert pipe["ListStreams"] == {
        "Sid": "ListStreams",
        "Effect": "Allow",
        "Action": ["dynamodb:ListStreams"],
        "Resource": ["*"],
    }
    assert "dynamodb:ListStreams" not in pipe["ReadOrderTableStream"]["Action"]
    assert pipe["DeadLetters"]["Resource"] == [stack.dead_letter_queue_arn]
    firehose = {s["Sid"]: s for s in stack.role_policy("firehose")["Statement"]}
    assert firehose["DeliveryLogs"]["Resource"] == [f"{stack.delivery_log_group_arn}:*"]
