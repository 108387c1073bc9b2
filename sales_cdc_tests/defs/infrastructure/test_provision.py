"""Every resource of infra/ is created with its declared settings, idempotently, and torn down."""

import json
import shutil
import zipfile
from io import BytesIO

import dagster as dg
import pytest

from sales_cdc.defs.infrastructure import provision, teardown
from sales_cdc.defs.infrastructure.artifact import build_transform_zip
from sales_cdc.defs.infrastructure.jobs import provision_infrastructure, teardown_infrastructure
from sales_cdc.resources.aws import AwsResource
from sales_cdc.settings import load_settings
from sales_cdc.stack import REPO_ROOT


def test_every_resource_has_its_declared_settings(provisioned: AwsResource):
    aws, stack = provisioned, provisioned.stack()

    table = aws.client("dynamodb").describe_table(TableName=stack.table_name)["Table"]
    assert table["KeySchema"] == [{"AttributeName": "orderId", "KeyType": "HASH"}]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["StreamSpecification"] == {
        "StreamEnabled": True,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }

    stream = aws.client("kinesis").describe_stream_summary(StreamName=stack.stream_name)
    assert stream["StreamDescriptionSummary"]["OpenShardCount"] == 2  # local declaration

    pipe = aws.client("pipes").describe_pipe(Name=stack.pipe_name)
    assert pipe["Source"] == table["LatestStreamArn"]
    assert pipe["Target"] == stack.stream_arn
    assert pipe["CurrentState"] == "RUNNING"
    source = pipe["SourceParameters"]["DynamoDBStreamParameters"]
    assert source["StartingPosition"] == "TRIM_HORIZON"
    assert source["BatchSize"] == 100
    assert source["MaximumBatchingWindowInSeconds"] == 0  # local declaration
    assert pipe["TargetParameters"]["KinesisStreamParameters"]["PartitionKey"] == (
        "$.dynamodb.Keys.orderId.S"
    )
    assert pipe["RoleArn"] == stack.role_arn("pipe")

    function = aws.client("lambda").get_function_configuration(FunctionName=stack.function_name)
    assert (function["Runtime"], function["Handler"]) == ("python3.12", "handler.lambda_handler")
    artifact = build_transform_zip("sales_cdc/transform")
    assert function["CodeSha256"] == artifact.code_sha256
    key = f"artifacts/transform/{artifact.sha256_hex}.zip"
    body = aws.client("s3").get_object(Bucket=stack.bucket, Key=key)["Body"].read()
    assert body == artifact.body
    assert "handler.py" in zipfile.ZipFile(BytesIO(body)).namelist()

    delivery = aws.client("firehose").describe_delivery_stream(
        DeliveryStreamName=stack.delivery_name
    )["DeliveryStreamDescription"]
    assert delivery["DeliveryStreamType"] == "KinesisStreamAsSource"
    assert (
        delivery["Source"]["KinesisStreamSourceDescription"]["KinesisStreamARN"] == stack.stream_arn
    )
    destination = delivery["Destinations"][0]["ExtendedS3DestinationDescription"]
    assert destination["BucketARN"] == stack.bucket_arn
    assert destination["Prefix"].startswith("raw/orders_cdc/year=!{partitionKeyFromLambda:year}/")
    assert "hour=!{partitionKeyFromLambda:hour}/" in destination["Prefix"]
    assert destination["ErrorOutputPrefix"].startswith(
        "errors/orders_cdc/!{firehose:error-output-type}/"
    )
    assert destination["CompressionFormat"] == "GZIP"
    assert destination["DynamicPartitioningConfiguration"]["Enabled"] is True
    processor = destination["ProcessingConfiguration"]["Processors"][0]
    assert processor["Type"] == "Lambda"
    assert {"ParameterName": "LambdaArn", "ParameterValue": stack.function_arn} in processor[
        "Parameters"
    ]
    assert destination["BufferingHints"] == {"SizeInMBs": 1, "IntervalInSeconds": 1}

    s3 = aws.client("s3")
    block = s3.get_public_access_block(Bucket=stack.bucket)["PublicAccessBlockConfiguration"]
    assert all(block.values()) and len(block) == 4
    rules = s3.get_bucket_encryption(Bucket=stack.bucket)["ServerSideEncryptionConfiguration"][
        "Rules"
    ]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    policy = json.loads(s3.get_bucket_policy(Bucket=stack.bucket)["Policy"])
    deny = policy["Statement"][0]
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}

    glue = aws.client("glue")
    assert glue.get_database(Name=stack.database)["Database"]["Name"] == stack.database
    crawler = glue.get_crawler(Name=stack.crawler_name)["Crawler"]
    assert crawler["Targets"]["S3Targets"][0]["Path"] == f"s3://{stack.bucket}/raw/orders_cdc/"
    assert crawler["DatabaseName"] == stack.database
    assert crawler["SchemaChangePolicy"]["UpdateBehavior"] == "UPDATE_IN_DATABASE"

    workgroup = aws.client("athena").get_work_group(WorkGroup=stack.workgroup)["WorkGroup"]
    assert workgroup["Configuration"]["ResultConfiguration"]["OutputLocation"] == (
        f"s3://{stack.bucket}/athena-results/"
    )

    iam = aws.client("iam")
    for service, principal in (
        ("pipe", "pipes.amazonaws.com"),
        ("firehose", "firehose.amazonaws.com"),
        ("transform", "lambda.amazonaws.com"),
        ("crawler", "glue.amazonaws.com"),
    ):
        role = iam.get_role(RoleName=stack.role_name(service))["Role"]
        trust = role["AssumeRolePolicyDocument"]["Statement"][0]
        assert trust["Principal"] == {"Service": principal}
        names = iam.list_role_policies(RoleName=stack.role_name(service))["PolicyNames"]
        assert len(names) == 1


def test_role_policies_are_least_privilege(provisioned: AwsResource):
    stack = provisioned.stack()
    own = (stack.account, stack.bucket_arn)
    for service in stack.role_services():
        document = provisioned.client("iam").get_role_policy(
            RoleName=stack.role_name(service), PolicyName=f"{stack.role_name(service)}-policy"
        )["PolicyDocument"]
        for statement in document["Statement"]:
            assert statement["Effect"] == "Allow"
            for action in statement["Action"]:
                assert "*" not in action, (service, action)
            if statement["Resource"] == ["*"]:
                # dynamodb:ListStreams supports no resource-level permissions (Service
                # Authorization Reference, Amazon DynamoDB): the one action allowed on "*".
                assert statement["Action"] == ["dynamodb:ListStreams"], (service, statement)
                continue
            for resource in statement["Resource"]:
                assert resource != "*" and any(o in resource for o in own), (service, resource)
                scoped = (stack.settings.prefix, stack.database, "/aws-glue/crawlers")
                # Glue's own catalog ARN is required alongside the database and table ARNs.
                assert any(s in resource for s in scoped) or resource.endswith(":catalog")


def test_second_run_changes_nothing(provisioned: AwsResource):
    outcomes = provision.provision_all(provisioned)
    assert {o.action for o in outcomes} == {"unchanged"}, [
        (o.name, o.action, o.changes) for o in outcomes
    ]


def test_changed_settings_in_infra_are_applied(provisioned: AwsResource, tmp_path, monkeypatch):
    infra = tmp_path / "infra"
    shutil.copytree(REPO_ROOT / "infra", infra)
    declared = (infra / "stack.yaml").read_text()
    declared = declared.replace(
        "      buffering_interval_seconds: 1", "      buffering_interval_seconds: 7"
    )
    declared = declared.replace("  batch_size: 100", "  batch_size: 50")
    declared = declared.replace("      shard_count: 2", "      shard_count: 4")
    (infra / "stack.yaml").write_text(declared)
    monkeypatch.setenv("SALES_CDC_INFRA_DIR", str(infra))
    aws = AwsResource.from_settings(load_settings())

    outcomes = {o.resource: o for o in provision.provision_all(aws)}
    assert outcomes["firehose_delivery_stream"].action == "updated"
    assert outcomes["eventbridge_pipe"].action == "updated"
    assert outcomes["kinesis_stream"].action == "updated"
    stack = aws.stack()
    hints = aws.client("firehose").describe_delivery_stream(DeliveryStreamName=stack.delivery_name)[
        "DeliveryStreamDescription"
    ]["Destinations"][0]["ExtendedS3DestinationDescription"]["BufferingHints"]
    assert hints["IntervalInSeconds"] == 7
    pipe = aws.client("pipes").describe_pipe(Name=stack.pipe_name)
    assert pipe["SourceParameters"]["DynamoDBStreamParameters"]["BatchSize"] == 50
    again = provision.provision_all(aws)
    assert {o.action for o in again} == {"unchanged"}, [
        (o.name, o.changes) for o in again if o.action != "unchanged"
    ]


def _leftovers(aws: AwsResource) -> list[str]:
    stack = aws.stack()
    prefix = stack.settings.prefix
    found = []
    found += [t for t in aws.client("dynamodb").list_tables()["TableNames"] if t.startswith(prefix)]
    found += [
        s for s in aws.client("kinesis").list_streams()["StreamNames"] if s.startswith(prefix)
    ]
    found += [
        p["Name"] for p in aws.client("pipes").list_pipes()["Pipes"] if p["Name"].startswith(prefix)
    ]
    found += [
        f["FunctionName"]
        for f in aws.client("lambda").list_functions()["Functions"]
        if f["FunctionName"].startswith(prefix)
    ]
    found += [
        d
        for d in aws.client("firehose").list_delivery_streams()["DeliveryStreamNames"]
        if d.startswith(prefix)
    ]
    found += [
        b["Name"]
        for b in aws.client("s3").list_buckets()["Buckets"]
        if b["Name"].startswith(prefix)
    ]
    found += [
        d["Name"]
        for d in aws.client("glue").get_databases()["DatabaseList"]
        if d["Name"] == stack.database
    ]
    found += [c for c in aws.client("glue").list_crawlers()["CrawlerNames"] if c.startswith(prefix)]
    found += [
        w["Name"]
        for w in aws.client("athena").list_work_groups()["WorkGroups"]
        if w["Name"].startswith(prefix)
    ]
    found += [
        r["RoleName"]
        for r in aws.client("iam").list_roles()["Roles"]
        if r["RoleName"].startswith(prefix)
    ]
    found += aws.client("sqs").list_queues(QueueNamePrefix=prefix).get("QueueUrls", [])
    found += [
        g["logGroupName"]
        for g in aws.client("logs").describe_log_groups()["logGroups"]
        if g["logGroupName"] == stack.delivery_log_group
    ]
    return found


def test_teardown_leaves_nothing_behind(provisioned: AwsResource):
    stack = provisioned.stack()
    provisioned.client("s3").put_object(Bucket=stack.bucket, Key="raw/orders_cdc/x.gz", Body=b"x")
    provisioned.client("dynamodb").create_table(
        TableName=f"{stack.settings.prefix}-runtime-checkpoints",
        KeySchema=[{"AttributeName": "leaseKey", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "leaseKey", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    assert len(_leftovers(provisioned)) >= 12
    result = teardown_infrastructure.execute_in_process(resources={"aws": provisioned})
    assert result.success
    assert _leftovers(provisioned) == []
    # A second teardown finds everything absent and still succeeds.
    again = teardown_infrastructure.execute_in_process(resources={"aws": provisioned})
    summary = again.output_for_node("teardown_summary")
    assert {row["action"] for row in summary} == {"absent"}


def test_provisioning_job_is_idempotent_and_reports_each_op(aws: AwsResource):
    first = provision_infrastructure.execute_in_process(resources={"aws": aws})
    assert first.success
    actions = {row["action"] for row in first.output_for_node("provisioning_summary")}
    assert actions == {"created"}
    second = provision_infrastructure.execute_in_process(resources={"aws": aws})
    rows = second.output_for_node("provisioning_summary")
    assert {row["action"] for row in rows} == {"unchanged"} and len(rows) == 17
    materializations = [
        e
        for e in second.all_events
        if e.event_type_value == "STEP_OUTPUT" and e.step_key == "order_table"
    ]
    metadata = materializations[0].event_specific_data.metadata
    assert metadata["action"].value == "unchanged"


def test_teardown_in_aws_refuses_without_the_confirmed_prefix(emulator, monkeypatch):
    monkeypatch.setenv("SALES_CDC_ENV", "aws")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("SALES_CDC_PREFIX", "guarded-stack")
    monkeypatch.setenv("AWS_ENDPOINT_URL", emulator.endpoint)
    aws = AwsResource.from_settings(load_settings())
    with pytest.raises(dg.Failure, match="confirm_prefix"):
        teardown_infrastructure.execute_in_process(resources={"aws": aws})
    result = teardown_infrastructure.execute_in_process(
        resources={"aws": aws},
        run_config={"ops": {"confirm_teardown": {"config": {"confirm_prefix": "guarded-stack"}}}},
    )
    assert result.success


def test_teardown_functions_skip_absent_resources(aws: AwsResource):
    stack = aws.stack()
    assert teardown.delete_bucket(aws, stack).action == "absent"
    assert teardown.delete_pipe(aws, stack).action == "absent"


def test_nothing_is_created_before_the_declaration_passes(aws: AwsResource, tmp_path, monkeypatch):
    infra = tmp_path / "infra"
    shutil.copytree(REPO_ROOT / "infra", infra)
    declared = (infra / "stack.yaml").read_text().replace("  raw_prefix: raw/orders_cdc/\n", "")
    (infra / "stack.yaml").write_text(declared)
    monkeypatch.setenv("SALES_CDC_INFRA_DIR", str(infra))
    result = provision_infrastructure.execute_in_process(
        resources={"aws": aws}, raise_on_error=False
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert failure.step_key == "stack_declaration"
    assert "lake.raw_prefix: missing" in str(failure.event_specific_data.error)
    monkeypatch.delenv("SALES_CDC_INFRA_DIR")
    assert _leftovers(AwsResource.from_settings(load_settings())) == []
