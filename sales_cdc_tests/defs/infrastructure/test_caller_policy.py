"""infra/policies/caller.json allows every AWS call that provisioning, teardown and checks make."""

from typing import Any

import pytest
from botocore.client import BaseClient

from sales_cdc.defs.infrastructure import provision
from sales_cdc.defs.infrastructure.jobs import teardown_infrastructure
from sales_cdc.defs.landing.dead_letters import dead_letter_queue_empty
from sales_cdc.resources.aws import AwsResource

# Operations whose IAM action is not "<prefix>:<OperationName>" (Service Authorization Reference).
ACTION_OF = {
    "s3:HeadBucket": "s3:ListBucket",
    "s3:HeadObject": "s3:GetObject",
    "s3:ListObjectsV2": "s3:ListBucket",
    "s3:ListObjectVersions": "s3:ListBucketVersions",
    "s3:DeleteObjects": "s3:DeleteObject",
    "s3:GetPublicAccessBlock": "s3:GetBucketPublicAccessBlock",
    "s3:PutPublicAccessBlock": "s3:PutBucketPublicAccessBlock",
    "s3:GetBucketEncryption": "s3:GetEncryptionConfiguration",
    "s3:PutBucketEncryption": "s3:PutEncryptionConfiguration",
    "firehose:DescribeDeliveryStream": "firehose:DescribeDeliveryStream",
    "lambda:GetFunctionConfiguration": "lambda:GetFunctionConfiguration",
}
# Needs no permission (STS documents GetCallerIdentity as always allowed).
FREE = {"sts:GetCallerIdentity"}


def _recording(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Every IAM action boto3 clients in this process call from now on."""
    called: set[str] = set()
    original = BaseClient._make_api_call

    def record(client: BaseClient, operation_name: str, api_params: Any) -> Any:
        prefix = client.meta.service_model.signing_name
        action = f"{prefix}:{operation_name}"
        called.add(ACTION_OF.get(action, action))
        return original(client, operation_name, api_params)

    monkeypatch.setattr(BaseClient, "_make_api_call", record)
    return called


def _allowed(aws: AwsResource) -> set[str]:
    return {
        action
        for statement in aws.stack().caller_policy()["Statement"]
        if statement["Effect"] == "Allow"
        for action in statement["Action"]
    }


def test_the_caller_policy_covers_provisioning_teardown_and_checks(aws: AwsResource, monkeypatch):
    called = _recording(monkeypatch)
    provision.provision_all(aws)
    provision.provision_all(aws)  # the update paths read what they compare
    result = dead_letter_queue_empty(aws=aws)
    assert result.passed
    assert teardown_infrastructure.execute_in_process(resources={"aws": aws}).success
    assert len(called) > 40, called  # the recorder saw the calls
    missing = sorted(called - _allowed(aws) - FREE)
    assert missing == [], f"infra/policies/caller.json lacks {missing}"


def test_the_caller_policy_is_scoped_to_this_deployment(aws: AwsResource):
    stack = aws.stack()
    for statement in stack.caller_policy()["Statement"]:
        for resource in statement["Resource"]:
            assert resource != "*"
            assert stack.account in resource or resource.startswith(stack.bucket_arn), resource
        if "iam:PassRole" in statement["Action"]:
            assert statement["Action"] == ["iam:PassRole"]
            assert len(statement["Resource"]) == 1
            assert statement["Resource"][0] in {stack.role_arn(s) for s in stack.role_services()}
            assert "iam:PassedToService" in statement["Condition"]["StringEquals"]
