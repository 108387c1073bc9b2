"""Idempotent create-or-update of every resource declared in infra/, through the AWS APIs only.

Each `ensure_*` function compares what exists with what infra/ declares and makes the smallest
change: it returns an Outcome saying created, updated (and what) or unchanged.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from botocore.exceptions import ClientError

from sales_cdc.defs.infrastructure.artifact import build_transform_zip
from sales_cdc.resources.aws import AwsResource
from sales_cdc.stack import Stack

Action = Literal["created", "updated", "unchanged", "deleted", "absent"]
T = TypeVar("T")


class ProvisioningError(RuntimeError):
    """A resource could not be brought to its declared state."""


@dataclass
class Outcome:
    """What provisioning (or teardown) did to one resource."""

    resource: str
    name: str
    action: Action
    changes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        return {
            "resource": self.resource,
            "name": self.name,
            "action": self.action,
            "changes": ", ".join(self.changes) or "none",
            **self.details,
        }


def _code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def _exists(call: Callable[[], T], *missing_codes: str) -> T | None:
    try:
        return call()
    except ClientError as exc:
        if _code(exc) in missing_codes:
            return None
        raise


def _wait_for(description: str, check: Callable[[], bool], timeout: float = 300, every: float = 1):
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise ProvisioningError(f"Timed out after {timeout:.0f}s waiting for {description}")
        time.sleep(every)


def _after_role_propagation(call: Callable[[], T], timeout: float = 90) -> T:
    """Retry a call that fails only because a just-created IAM role is not visible yet."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except ClientError as exc:
            message = str(exc).lower()
            propagating = _code(exc) in (
                "InvalidParameterValueException",
                "ValidationException",
                "InvalidArgumentException",
            ) and ("role" in message or "assume" in message)
            if not propagating or time.monotonic() > deadline:
                raise
            time.sleep(5)


def _as_json(value: Any) -> Any:
    if isinstance(value, str) and value.lstrip()[:1] in ("{", "["):
        return json.loads(value)
    return value


def _json_equal(a: Any, b: Any) -> bool:
    """Equal as JSON documents (policy documents may come back as strings)."""
    return json.dumps(_as_json(a), sort_keys=True) == json.dumps(_as_json(b), sort_keys=True)


# -- S3 -------------------------------------------------------------------------------------


def ensure_bucket(aws: AwsResource, stack: Stack) -> Outcome:
    """The lake bucket: private, encrypted, HTTPS only."""
    s3 = aws.client("s3")
    bucket = stack.bucket
    outcome = Outcome("s3_bucket", bucket, "unchanged")
    exists = _exists(lambda: s3.head_bucket(Bucket=bucket), "404", "NoSuchBucket", "NotFound")
    if exists is None:
        kwargs: dict[str, Any] = {"Bucket": bucket}
        if stack.settings.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": stack.settings.region}
        try:
            s3.create_bucket(**kwargs)
        except ClientError as exc:
            if _code(exc) == "BucketAlreadyExists":
                raise ProvisioningError(
                    f"S3 bucket name {bucket!r} belongs to another AWS account. "
                    "Set SALES_CDC_PREFIX to a prefix unique to you and provision again."
                ) from exc
            raise
        s3.get_waiter("bucket_exists").wait(Bucket=bucket)
        outcome.action = "created"

    block = {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    current = _exists(
        lambda: s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"],
        "NoSuchPublicAccessBlockConfiguration",
    )
    if current != block:
        s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=block)
        outcome.changes.append("public access block")

    encryption = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}
    current_rules = _exists(
        lambda: s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"],
        "ServerSideEncryptionConfigurationNotFoundError",
    )
    algorithms = [
        r.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm")
        for r in (current_rules or {}).get("Rules", [])
    ]
    if algorithms != ["AES256"]:
        s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration=encryption)
        outcome.changes.append("default encryption")

    policy = stack.bucket_policy()
    current_policy = _exists(
        lambda: s3.get_bucket_policy(Bucket=bucket)["Policy"], "NoSuchBucketPolicy"
    )
    if current_policy is None or not _json_equal(current_policy, policy):
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
        outcome.changes.append("bucket policy")

    if outcome.action == "unchanged" and outcome.changes:
        outcome.action = "updated"
    return outcome


# -- IAM ------------------------------------------------------------------------------------


def ensure_role(aws: AwsResource, stack: Stack, service: str) -> Outcome:
    """One service role with its trust policy and one least-privilege inline policy."""
    iam = aws.client("iam")
    name = stack.role_name(service)
    trust = stack.trust_policy(service)
    policy = stack.role_policy(service)
    policy_name = f"{name}-policy"
    outcome = Outcome("iam_role", name, "unchanged")
    role = _exists(lambda: iam.get_role(RoleName=name)["Role"], "NoSuchEntity")
    if role is None:
        iam.create_role(
            RoleName=name,
            AssumeRolePolicyDocument=json.dumps(trust),
            Description=f"sales-cdc {service} role ({stack.settings.prefix})",
            Tags=[{"Key": "project", "Value": stack.settings.prefix}],
        )
        outcome.action = "created"
    elif not _json_equal(role["AssumeRolePolicyDocument"], trust):
        iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(trust))
        outcome.changes.append("trust policy")

    current = _exists(
        lambda: iam.get_role_policy(RoleName=name, PolicyName=policy_name)["PolicyDocument"],
        "NoSuchEntity",
    )
    if current is None or not _json_equal(current, policy):
        iam.put_role_policy(
            RoleName=name, PolicyName=policy_name, PolicyDocument=json.dumps(policy)
        )
        if outcome.action != "created":
            outcome.changes.append("permissions")
    if outcome.action == "unchanged" and outcome.changes:
        outcome.action = "updated"
    return outcome


# -- DynamoDB -------------------------------------------------------------------------------


def ensure_order_table(aws: AwsResource, stack: Stack) -> Outcome:
    """OrderTable: key orderId, on-demand, stream NEW_AND_OLD_IMAGES, PITR as declared."""
    ddb = aws.client("dynamodb")
    declared = stack.section("table")
    name = stack.table_name
    key = declared["key"]
    view_type = declared["stream_view_type"]
    outcome = Outcome("dynamodb_table", name, "unchanged")
    table = _exists(
        lambda: ddb.describe_table(TableName=name)["Table"], "ResourceNotFoundException"
    )
    if table is None:
        ddb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
            BillingMode=declared["billing_mode"],
            StreamSpecification={"StreamEnabled": True, "StreamViewType": view_type},
            Tags=[{"Key": "project", "Value": stack.settings.prefix}],
        )
        ddb.get_waiter("table_exists").wait(TableName=name)
        outcome.action = "created"
    else:
        key_schema = table["KeySchema"]
        if key_schema != [{"AttributeName": key, "KeyType": "HASH"}]:
            raise ProvisioningError(
                f"DynamoDB table {name!r} exists with key {key_schema}, but infra/ declares "
                f"{key!r}. A key cannot be changed in place: run teardown_infrastructure first."
            )
        billing = table.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED")
        if billing != declared["billing_mode"]:
            ddb.update_table(TableName=name, BillingMode=declared["billing_mode"])
            outcome.changes.append(f"billing mode {billing} -> {declared['billing_mode']}")
        stream = table.get("StreamSpecification") or {}
        if not stream.get("StreamEnabled"):
            ddb.update_table(
                TableName=name,
                StreamSpecification={"StreamEnabled": True, "StreamViewType": view_type},
            )
            outcome.changes.append("stream enabled")
        elif stream.get("StreamViewType") != view_type:
            raise ProvisioningError(
                f"DynamoDB table {name!r} streams {stream.get('StreamViewType')}, infra/ declares "
                f"{view_type}. Changing it replaces the stream (and the pipe reading it): "
                "run teardown_infrastructure first."
            )
        _wait_for(
            f"table {name} to be ACTIVE",
            lambda: ddb.describe_table(TableName=name)["Table"]["TableStatus"] == "ACTIVE",
        )

    pitr = bool(declared["point_in_time_recovery"])
    status = ddb.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
    enabled = (
        status.get("PointInTimeRecoveryDescription", {}).get("PointInTimeRecoveryStatus")
        == "ENABLED"
    )
    if enabled != pitr:
        ddb.update_continuous_backups(
            TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": pitr}
        )
        if outcome.action != "created":
            outcome.changes.append(f"point-in-time recovery {'on' if pitr else 'off'}")
    if outcome.action == "unchanged" and outcome.changes:
        outcome.action = "updated"
    outcome.details["stream_arn"] = ddb.describe_table(TableName=name)["Table"]["LatestStreamArn"]
    return outcome


def order_table_stream_arn(aws: AwsResource, stack: Stack) -> str:
    return aws.client("dynamodb").describe_table(TableName=stack.table_name)["Table"][
        "LatestStreamArn"
    ]


# -- Kinesis --------------------------------------------------------------------------------


def ensure_cdc_stream(aws: AwsResource, stack: Stack) -> Outcome:
    """The Kinesis stream between the pipe and Firehose."""
    kinesis = aws.client("kinesis")
    declared = stack.section("stream")
    name = stack.stream_name
    shards = int(declared["shard_count"])
    retention = int(declared["retention_hours"])
    outcome = Outcome("kinesis_stream", name, "unchanged")
    summary = _exists(
        lambda: kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"],
        "ResourceNotFoundException",
    )
    if summary is None:
        kinesis.create_stream(
            StreamName=name,
            ShardCount=shards,
            StreamModeDetails={"StreamMode": "PROVISIONED"},
        )
        kinesis.get_waiter("stream_exists").wait(StreamName=name)
        outcome.action = "created"
        summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    else:
        if summary["OpenShardCount"] != shards:
            kinesis.update_shard_count(
                StreamName=name, TargetShardCount=shards, ScalingType="UNIFORM_SCALING"
            )
            outcome.changes.append(f"shards {summary['OpenShardCount']} -> {shards}")
            _wait_for(
                f"stream {name} to be ACTIVE",
                lambda: (
                    kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"][
                        "StreamStatus"
                    ]
                    == "ACTIVE"
                ),
            )
    current_retention = summary.get("RetentionPeriodHours", 24)
    if current_retention < retention:
        kinesis.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=retention)
        outcome.changes.append(f"retention {current_retention}h -> {retention}h")
    elif current_retention > retention:
        kinesis.decrease_stream_retention_period(StreamName=name, RetentionPeriodHours=retention)
        outcome.changes.append(f"retention {current_retention}h -> {retention}h")
    if outcome.action == "unchanged" and outcome.changes:
        outcome.action = "updated"
    outcome.details["shards"] = shards
    return outcome


# -- Lambda ---------------------------------------------------------------------------------


def ensure_transform_artifact(aws: AwsResource, stack: Stack) -> Outcome:
    """The transform zip, uploaded to the artifacts prefix under its sha256."""
    s3 = aws.client("s3")
    artifact = build_transform_zip(stack.section("transform")["source_dir"])
    key = f"{stack.artifact_prefix}{artifact.sha256_hex}.zip"
    outcome = Outcome("lambda_artifact", f"s3://{stack.bucket}/{key}", "unchanged")
    present = _exists(
        lambda: s3.head_object(Bucket=stack.bucket, Key=key), "404", "NoSuchKey", "NotFound"
    )
    if present is None:
        s3.put_object(
            Bucket=stack.bucket,
            Key=key,
            Body=artifact.body,
            ContentType="application/zip",
            Metadata={"code-sha256": artifact.code_sha256},
        )
        outcome.action = "created"
    outcome.details.update(
        {"s3_key": key, "code_sha256": artifact.code_sha256, "bytes": len(artifact.body)}
    )
    return outcome


def ensure_transform_function(
    aws: AwsResource, stack: Stack, artifact_key: str, code_sha256: str
) -> Outcome:
    """The transform Lambda, deployed from the artifact in S3."""
    lam = aws.client("lambda")
    declared = stack.section("transform")
    name = stack.function_name
    wanted = {
        "Runtime": declared["runtime"],
        "Handler": declared["handler"],
        "MemorySize": int(declared["memory_mb"]),
        "Timeout": int(declared["timeout_seconds"]),
        "Role": stack.role_arn("transform"),
    }
    outcome = Outcome("lambda_function", name, "unchanged")
    current = _exists(
        lambda: lam.get_function_configuration(FunctionName=name), "ResourceNotFoundException"
    )
    if current is None:
        _after_role_propagation(
            lambda: lam.create_function(
                FunctionName=name,
                Code={"S3Bucket": stack.bucket, "S3Key": artifact_key},
                Description="sales-cdc Firehose transform: DynamoDB stream records to landing rows",
                Publish=True,
                Tags={"project": stack.settings.prefix},
                **wanted,
            )
        )
        outcome.action = "created"
    else:
        if current.get("CodeSha256") != code_sha256:
            lam.update_function_code(
                FunctionName=name, S3Bucket=stack.bucket, S3Key=artifact_key, Publish=True
            )
            outcome.changes.append("code")
            _wait_for_function(lam, name)
        drift = {k: v for k, v in wanted.items() if current.get(k) != v}
        if drift:
            _after_role_propagation(
                lambda: lam.update_function_configuration(FunctionName=name, **drift)
            )
            outcome.changes.append("configuration: " + ", ".join(sorted(drift)))
        if outcome.changes:
            outcome.action = "updated"
    _wait_for_function(lam, name)
    outcome.details["code_sha256"] = code_sha256
    return outcome


def _wait_for_function(lam: Any, name: str) -> None:
    def ready() -> bool:
        config = lam.get_function_configuration(FunctionName=name)
        if config.get("State") == "Failed" or config.get("LastUpdateStatus") == "Failed":
            raise ProvisioningError(
                f"Lambda {name} failed to deploy: {config.get('StateReason') or config.get('LastUpdateStatusReason')}"
            )
        return config.get("State", "Active") == "Active" and config.get(
            "LastUpdateStatus", "Successful"
        ) in ("Successful",)

    _wait_for(f"Lambda {name} to be active", ready)


# -- EventBridge Pipe -----------------------------------------------------------------------


def _pipe_parameters(stack: Stack, source_arn: str) -> dict[str, Any]:
    declared = stack.section("pipe")
    return {
        "Source": source_arn,
        "Target": stack.stream_arn,
        "RoleArn": stack.role_arn("pipe"),
        "SourceParameters": {
            "DynamoDBStreamParameters": {
                "StartingPosition": declared["starting_position"],
                "BatchSize": int(declared["batch_size"]),
                "MaximumBatchingWindowInSeconds": int(declared["maximum_batching_window_seconds"]),
            }
        },
        "TargetParameters": {
            "KinesisStreamParameters": {"PartitionKey": declared["partition_key"]}
        },
    }


def ensure_cdc_pipe(aws: AwsResource, stack: Stack) -> Outcome:
    """The EventBridge Pipe from OrderTable's stream to the Kinesis stream."""
    pipes = aws.client("pipes")
    name = stack.pipe_name
    wanted = _pipe_parameters(stack, order_table_stream_arn(aws, stack))
    outcome = Outcome("eventbridge_pipe", name, "unchanged")
    current = _exists(lambda: pipes.describe_pipe(Name=name), "NotFoundException")
    if current is not None and current.get("Source") != wanted["Source"]:
        # The table (and so its stream) was replaced: a pipe's source cannot be changed in place.
        pipes.delete_pipe(Name=name)
        _wait_for(
            f"pipe {name} to be deleted",
            lambda: _exists(lambda: pipes.describe_pipe(Name=name), "NotFoundException") is None,
        )
        current = None
        outcome.changes.append("source stream replaced")
    if current is None:
        _after_role_propagation(
            lambda: pipes.create_pipe(
                Name=name,
                DesiredState="RUNNING",
                Description="OrderTable stream to the CDC Kinesis stream",
                Tags={"project": stack.settings.prefix},
                **wanted,
            )
        )
        outcome.action = "created" if not outcome.changes else "updated"
    else:
        drift = [
            key
            for key in ("Target", "RoleArn", "TargetParameters")
            if not _json_equal(current.get(key), wanted[key])
        ]
        # StartingPosition only applies when a pipe is created; the batch settings can change.
        have = current.get("SourceParameters", {}).get("DynamoDBStreamParameters", {})
        want = wanted["SourceParameters"]["DynamoDBStreamParameters"]
        if any(have.get(k) != want[k] for k in ("BatchSize", "MaximumBatchingWindowInSeconds")):
            drift.append("SourceParameters")
        if current.get("DesiredState") != "RUNNING":
            drift.append("DesiredState")
        if drift:
            source_params = wanted["SourceParameters"]["DynamoDBStreamParameters"]
            pipes.update_pipe(
                Name=name,
                RoleArn=wanted["RoleArn"],
                Target=wanted["Target"],
                DesiredState="RUNNING",
                SourceParameters={
                    "DynamoDBStreamParameters": {
                        "BatchSize": source_params["BatchSize"],
                        "MaximumBatchingWindowInSeconds": source_params[
                            "MaximumBatchingWindowInSeconds"
                        ],
                    }
                },
                TargetParameters=wanted["TargetParameters"],
            )
            outcome.action = "updated"
            outcome.changes.extend(drift)
    _wait_for(
        f"pipe {name} to be RUNNING",
        lambda: _pipe_state(pipes, name) == "RUNNING",
    )
    return outcome


def _pipe_state(pipes: Any, name: str) -> str:
    state = pipes.describe_pipe(Name=name).get("CurrentState", "")
    if state.endswith("FAILED"):
        reason = pipes.describe_pipe(Name=name).get("StateReason", "no reason given")
        raise ProvisioningError(f"Pipe {name} is {state}: {reason}")
    return state


# -- Firehose -------------------------------------------------------------------------------


def _delivery_destination(stack: Stack) -> dict[str, Any]:
    declared = stack.section("delivery")
    return {
        "RoleARN": stack.role_arn("firehose"),
        "BucketARN": stack.bucket_arn,
        "Prefix": declared["prefix"],
        "ErrorOutputPrefix": declared["error_output_prefix"],
        "BufferingHints": {
            "SizeInMBs": int(declared["buffering_size_mb"]),
            "IntervalInSeconds": int(declared["buffering_interval_seconds"]),
        },
        "CompressionFormat": declared["compression"],
        "ProcessingConfiguration": {
            "Enabled": True,
            "Processors": [
                {
                    "Type": "Lambda",
                    "Parameters": [
                        {"ParameterName": "LambdaArn", "ParameterValue": stack.function_arn},
                        {
                            "ParameterName": "NumberOfRetries",
                            "ParameterValue": str(declared["processor_retries"]),
                        },
                        {
                            "ParameterName": "BufferSizeInMBs",
                            "ParameterValue": str(declared["processor_buffer_size_mb"]),
                        },
                        {
                            "ParameterName": "BufferIntervalInSeconds",
                            "ParameterValue": str(declared["processor_buffer_interval_seconds"]),
                        },
                    ],
                }
            ],
        },
        "DynamicPartitioningConfiguration": {
            "Enabled": True,
            "RetryOptions": {
                "DurationInSeconds": int(declared["dynamic_partitioning_retry_seconds"])
            },
        },
    }


_COMPARED_DESTINATION_KEYS = (
    "RoleARN",
    "BucketARN",
    "Prefix",
    "ErrorOutputPrefix",
    "BufferingHints",
    "CompressionFormat",
    "ProcessingConfiguration",
    "DynamicPartitioningConfiguration",
)


def ensure_delivery_stream(aws: AwsResource, stack: Stack) -> Outcome:
    """The Firehose delivery stream: Kinesis source, Lambda processor, dynamic partitions, GZIP."""
    firehose = aws.client("firehose")
    name = stack.delivery_name
    wanted = _delivery_destination(stack)
    outcome = Outcome("firehose_delivery_stream", name, "unchanged")
    current = _exists(
        lambda: firehose.describe_delivery_stream(DeliveryStreamName=name)[
            "DeliveryStreamDescription"
        ],
        "ResourceNotFoundException",
    )
    if current is None:
        _after_role_propagation(
            lambda: firehose.create_delivery_stream(
                DeliveryStreamName=name,
                DeliveryStreamType="KinesisStreamAsSource",
                KinesisStreamSourceConfiguration={
                    "KinesisStreamARN": stack.stream_arn,
                    "RoleARN": stack.role_arn("firehose"),
                },
                ExtendedS3DestinationConfiguration=wanted,
                Tags=[{"Key": "project", "Value": stack.settings.prefix}],
            )
        )
        outcome.action = "created"
    else:
        source = current.get("Source", {}).get("KinesisStreamSourceDescription", {})
        if source.get("KinesisStreamARN") != stack.stream_arn:
            raise ProvisioningError(
                f"Delivery stream {name!r} reads {source.get('KinesisStreamARN')}, infra/ declares "
                f"{stack.stream_arn}. A source cannot be changed in place: run teardown first."
            )
        destination = current["Destinations"][0]
        existing = destination.get("ExtendedS3DestinationDescription", {})
        drift = [
            k for k in _COMPARED_DESTINATION_KEYS if not _json_equal(existing.get(k), wanted[k])
        ]
        if drift:
            firehose.update_destination(
                DeliveryStreamName=name,
                CurrentDeliveryStreamVersionId=current["VersionId"],
                DestinationId=destination["DestinationId"],
                ExtendedS3DestinationUpdate=wanted,
            )
            outcome.action = "updated"
            outcome.changes.extend(drift)

    def active() -> bool:
        status = firehose.describe_delivery_stream(DeliveryStreamName=name)[
            "DeliveryStreamDescription"
        ]
        if status["DeliveryStreamStatus"].endswith("FAILED"):
            raise ProvisioningError(
                f"Delivery stream {name} is {status['DeliveryStreamStatus']}: {status.get('FailureDescription')}"
            )
        return status["DeliveryStreamStatus"] == "ACTIVE"

    _wait_for(f"delivery stream {name} to be ACTIVE", active)
    return outcome


# -- Glue and Athena ------------------------------------------------------------------------


def ensure_glue_database(aws: AwsResource, stack: Stack) -> Outcome:
    """The Glue database of the lake."""
    glue = aws.client("glue")
    name = stack.database
    outcome = Outcome("glue_database", name, "unchanged")
    if _exists(lambda: glue.get_database(Name=name), "EntityNotFoundException") is None:
        glue.create_database(
            DatabaseInput={
                "Name": name,
                "Description": "sales-cdc lake: raw CDC log and curated tables",
                "LocationUri": f"s3://{stack.bucket}/",
            }
        )
        outcome.action = "created"
    return outcome


def crawler_configuration() -> str:
    """Crawler settings: partitions inherit the table schema, compatible schemas combine."""
    return json.dumps(
        {
            "Version": 1.0,
            "CrawlerOutput": {
                "Partitions": {"AddOrUpdateBehavior": "InheritFromTable"},
                "Tables": {"AddOrUpdateBehavior": "MergeNewColumns"},
            },
            "Grouping": {"TableGroupingPolicy": "CombineCompatibleSchemas"},
        },
        sort_keys=True,
    )


def ensure_crawler(aws: AwsResource, stack: Stack) -> Outcome:
    """The Glue crawler over raw/orders_cdc/."""
    glue = aws.client("glue")
    declared = stack.section("catalog")
    name = stack.crawler_name
    wanted = {
        "Role": stack.role_arn("crawler"),
        "DatabaseName": stack.database,
        "Targets": {"S3Targets": [{"Path": f"s3://{stack.bucket}/{stack.raw_prefix}"}]},
        "SchemaChangePolicy": {
            "UpdateBehavior": declared["update_behavior"],
            "DeleteBehavior": declared["delete_behavior"],
        },
        "RecrawlPolicy": {"RecrawlBehavior": "CRAWL_EVERYTHING"},
        "Configuration": crawler_configuration(),
    }
    outcome = Outcome("glue_crawler", name, "unchanged")
    current = _exists(lambda: glue.get_crawler(Name=name)["Crawler"], "EntityNotFoundException")
    if current is None:
        _after_role_propagation(
            lambda: glue.create_crawler(
                Name=name,
                Description="Catalogs the landed CDC log (raw/orders_cdc/)",
                Tags={"project": stack.settings.prefix},
                **wanted,
            )
        )
        outcome.action = "created"
    else:
        drift = []
        for key, value in wanted.items():
            have = current.get(key)
            if key == "Role" and have and not have.startswith("arn:"):
                have = stack.role_arn("crawler") if have == stack.role_name("crawler") else have
            if key == "Targets":
                have = {
                    "S3Targets": [{"Path": t["Path"]} for t in (have or {}).get("S3Targets", [])]
                }
            if key == "RecrawlPolicy" and have is None:
                have = {"RecrawlBehavior": "CRAWL_EVERYTHING"}
            if key == "Configuration":
                equal = have is not None and _json_equal(have, value)
            else:
                equal = _json_equal(have, value) if have is not None else False
            if not equal:
                drift.append(key)
        if drift:
            glue.update_crawler(Name=name, **wanted)
            outcome.action = "updated"
            outcome.changes.extend(drift)
    return outcome


def ensure_workgroup(aws: AwsResource, stack: Stack) -> Outcome:
    """The Athena workgroup with its result location."""
    athena = aws.client("athena")
    name = stack.workgroup
    declared = stack.section("athena")
    result = {
        "OutputLocation": stack.athena_results_location,
        "EncryptionConfiguration": {"EncryptionOption": "SSE_S3"},
    }
    outcome = Outcome("athena_workgroup", name, "unchanged")
    current = _exists(
        lambda: athena.get_work_group(WorkGroup=name).get("WorkGroup"), "InvalidRequestException"
    )
    if current is None:
        athena.create_work_group(
            Name=name,
            Description="sales-cdc queries",
            Configuration={
                "ResultConfiguration": result,
                "EnforceWorkGroupConfiguration": True,
                "PublishCloudWatchMetricsEnabled": True,
                "BytesScannedCutoffPerQuery": int(declared["bytes_scanned_cutoff_per_query"]),
            },
            Tags=[{"Key": "project", "Value": stack.settings.prefix}],
        )
        outcome.action = "created"
    else:
        config = current.get("Configuration", {})
        have = config.get("ResultConfiguration", {})
        if have.get("OutputLocation") != result["OutputLocation"] or not config.get(
            "EnforceWorkGroupConfiguration", False
        ):
            athena.update_work_group(
                WorkGroup=name,
                ConfigurationUpdates={
                    "ResultConfigurationUpdates": result,
                    "EnforceWorkGroupConfiguration": True,
                },
            )
            outcome.action = "updated"
            outcome.changes.append("result location")
    outcome.details["result_location"] = stack.athena_results_location
    return outcome


def _ensure_raw_table(aws: AwsResource, stack: Stack) -> Outcome:
    from sales_cdc.defs.infrastructure.raw_table import ensure_raw_table  # imports this module

    return ensure_raw_table(aws, stack)


def provision_all(aws: AwsResource) -> list[Outcome]:
    """Every ensure_* in dependency order, outside Dagster (for scripts and test fixtures)."""
    stack = aws.stack()
    outcomes = [ensure_bucket(aws, stack)]
    outcomes += [ensure_role(aws, stack, service) for service in stack.role_services()]
    artifact = ensure_transform_artifact(aws, stack)
    outcomes.append(artifact)
    outcomes.append(
        ensure_transform_function(
            aws, stack, artifact.details["s3_key"], artifact.details["code_sha256"]
        )
    )
    outcomes += [ensure_order_table(aws, stack), ensure_cdc_stream(aws, stack)]
    outcomes += [ensure_cdc_pipe(aws, stack), ensure_delivery_stream(aws, stack)]
    outcomes += [ensure_glue_database(aws, stack), ensure_crawler(aws, stack)]
    outcomes.append(_ensure_raw_table(aws, stack))
    outcomes.append(ensure_workgroup(aws, stack))
    return outcomes
