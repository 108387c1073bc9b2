"""Deletion of every resource of the stack, in reverse dependency order; absent ones are skipped."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from sales_cdc.defs.infrastructure.provision import Outcome, ProvisioningError, _code
from sales_cdc.resources.aws import AwsResource
from sales_cdc.stack import Stack, checkpoint_table_name


def _delete(resource: str, name: str, call: Callable[[], Any], *missing: str) -> Outcome:
    try:
        call()
    except ClientError as exc:
        if _code(exc) in missing:
            return Outcome(resource, name, "absent")
        raise
    return Outcome(resource, name, "deleted")


def _gone(description: str, check: Callable[[], bool], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise ProvisioningError(f"Timed out waiting for {description} to be deleted")
        time.sleep(1)


def _missing(call: Callable[[], Any], *codes: str) -> bool:
    try:
        call()
    except ClientError as exc:
        if _code(exc) in codes:
            return True
        raise
    return False


def delete_crawler(aws: AwsResource, stack: Stack) -> Outcome:
    glue = aws.client("glue")
    name = stack.crawler_name

    def call() -> None:
        crawler = glue.get_crawler(Name=name)["Crawler"]
        if crawler.get("State") == "RUNNING":
            try:
                glue.stop_crawler(Name=name)
            except ClientError as exc:
                if _code(exc) not in ("CrawlerNotRunningException", "CrawlerStoppingException"):
                    raise
            _gone(
                f"crawler {name} run",
                lambda: glue.get_crawler(Name=name)["Crawler"].get("State") == "READY",
            )
        glue.delete_crawler(Name=name)

    return _delete("glue_crawler", name, call, "EntityNotFoundException")


def delete_glue_database(aws: AwsResource, stack: Stack) -> Outcome:
    """The database and every table in it (raw CDC table and curated tables)."""
    glue = aws.client("glue")
    name = stack.database

    def call() -> None:
        paginator = glue.get_paginator("get_tables")
        for page in paginator.paginate(DatabaseName=name):
            for table in page["TableList"]:
                glue.delete_table(DatabaseName=name, Name=table["Name"])
        glue.delete_database(Name=name)

    return _delete("glue_database", name, call, "EntityNotFoundException")


def delete_workgroup(aws: AwsResource, stack: Stack) -> Outcome:
    athena = aws.client("athena")
    name = stack.workgroup

    def call() -> None:
        if not athena.get_work_group(WorkGroup=name).get("WorkGroup"):
            raise ClientError({"Error": {"Code": "InvalidRequestException"}}, "GetWorkGroup")
        athena.delete_work_group(WorkGroup=name, RecursiveDeleteOption=True)

    return _delete("athena_workgroup", name, call, "InvalidRequestException")


def delete_delivery_stream(aws: AwsResource, stack: Stack) -> Outcome:
    firehose = aws.client("firehose")
    name = stack.delivery_name
    outcome = _delete(
        "firehose_delivery_stream",
        name,
        lambda: firehose.delete_delivery_stream(DeliveryStreamName=name, AllowForceDelete=True),
        "ResourceNotFoundException",
    )
    _gone(
        f"delivery stream {name}",
        lambda: _missing(
            lambda: firehose.describe_delivery_stream(DeliveryStreamName=name),
            "ResourceNotFoundException",
        ),
    )
    return outcome


def delete_pipe(aws: AwsResource, stack: Stack) -> Outcome:
    pipes = aws.client("pipes")
    name = stack.pipe_name
    outcome = _delete(
        "eventbridge_pipe", name, lambda: pipes.delete_pipe(Name=name), "NotFoundException"
    )
    _gone(
        f"pipe {name}",
        lambda: _missing(lambda: pipes.describe_pipe(Name=name), "NotFoundException"),
    )
    return outcome


def delete_dead_letter_queue(aws: AwsResource, stack: Stack) -> Outcome:
    """The pipe's dead-letter queue (and the batch descriptions still in it)."""
    sqs = aws.client("sqs")
    name = stack.dead_letter_queue_name
    return _delete(
        "sqs_queue",
        name,
        lambda: sqs.delete_queue(QueueUrl=sqs.get_queue_url(QueueName=name)["QueueUrl"]),
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
    )


def delete_delivery_log_group(aws: AwsResource, stack: Stack) -> Outcome:
    """Firehose's error log group with its streams."""
    logs = aws.client("logs")
    name = stack.delivery_log_group
    return _delete(
        "cloudwatch_log_group",
        name,
        lambda: logs.delete_log_group(logGroupName=name),
        "ResourceNotFoundException",
    )


def delete_transform_function(aws: AwsResource, stack: Stack) -> Outcome:
    lam = aws.client("lambda")
    name = stack.function_name
    return _delete(
        "lambda_function",
        name,
        lambda: lam.delete_function(FunctionName=name),
        "ResourceNotFoundException",
    )


def delete_cdc_stream(aws: AwsResource, stack: Stack) -> Outcome:
    kinesis = aws.client("kinesis")
    name = stack.stream_name
    outcome = _delete(
        "kinesis_stream",
        name,
        lambda: kinesis.delete_stream(StreamName=name, EnforceConsumerDeletion=True),
        "ResourceNotFoundException",
    )
    if outcome.action == "deleted":
        kinesis.get_waiter("stream_not_exists").wait(StreamName=name)
    return outcome


def delete_tables(aws: AwsResource, stack: Stack) -> list[Outcome]:
    """OrderTable and the local runtime's checkpoint table."""
    ddb = aws.client("dynamodb")
    outcomes = []
    for name in (stack.table_name, checkpoint_table_name(stack)):
        outcome = _delete(
            "dynamodb_table",
            name,
            lambda n=name: ddb.delete_table(TableName=n),
            "ResourceNotFoundException",
        )
        if outcome.action == "deleted":
            ddb.get_waiter("table_not_exists").wait(TableName=name)
        outcomes.append(outcome)
    return outcomes


def delete_roles(aws: AwsResource, stack: Stack) -> list[Outcome]:
    iam = aws.client("iam")
    outcomes = []
    for service in stack.role_services():
        name = stack.role_name(service)

        def call(role: str = name) -> None:
            for policy in iam.list_role_policies(RoleName=role)["PolicyNames"]:
                iam.delete_role_policy(RoleName=role, PolicyName=policy)
            for attached in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]:
                iam.detach_role_policy(RoleName=role, PolicyArn=attached["PolicyArn"])
            iam.delete_role(RoleName=role)

        outcomes.append(_delete("iam_role", name, call, "NoSuchEntity"))
    return outcomes


def delete_bucket(aws: AwsResource, stack: Stack) -> Outcome:
    """Every object (all versions) of the lake bucket, then the bucket."""
    s3 = aws.client("s3")
    bucket = stack.bucket
    removed = 0

    def call() -> None:
        nonlocal removed
        s3.head_bucket(Bucket=bucket)
        paginator = s3.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=bucket):
            keys = [
                {"Key": v["Key"], "VersionId": v["VersionId"]}
                for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
            ]
            for start in range(0, len(keys), 1000):
                chunk = keys[start : start + 1000]
                s3.delete_objects(Bucket=bucket, Delete={"Objects": chunk, "Quiet": True})
                removed += len(chunk)
        s3.delete_bucket(Bucket=bucket)

    outcome = _delete("s3_bucket", bucket, call, "404", "NoSuchBucket", "NotFound")
    outcome.details["objects_deleted"] = removed
    return outcome
