"""Invoking the deployed transform: AWS Lambda (Stubber) and the embedded loader (emulator)."""

import base64
import io
import json
from pathlib import Path

import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from sales_cdc.resources.aws import AwsResource
from sales_cdc.resources.transform import (
    EmbeddedTransformInvoker,
    LambdaTransformInvoker,
    TransformFunctionError,
    TransformUnavailableError,
)

ARN = "arn:aws:lambda:eu-west-1:123456789012:function:sales-cdc-cdc-transform"
EVENT = {"invocationId": "i-1", "records": [{"recordId": "r1", "data": "e30="}]}


def _body(payload: bytes) -> StreamingBody:
    return StreamingBody(io.BytesIO(payload), len(payload))


def _stubbed(monkeypatch: pytest.MonkeyPatch) -> tuple[LambdaTransformInvoker, Stubber]:
    aws = AwsResource(env="aws", prefix="sales-cdc", region_name="eu-west-1")
    client = aws.client("lambda")
    monkeypatch.setattr(AwsResource, "client", lambda self, service: client)
    return LambdaTransformInvoker(aws=aws), Stubber(client)


# https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html: RequestResponse returns the
# function's result as Payload; a function error is still HTTP 200, with FunctionError set.
def test_lambda_invoke_is_a_synchronous_request_response(monkeypatch):
    invoker, stubber = _stubbed(monkeypatch)
    answer = {"records": [{"recordId": "r1", "result": "Ok", "data": "e30="}]}
    stubber.add_response(
        "invoke",
        {"StatusCode": 200, "Payload": _body(json.dumps(answer).encode())},
        {
            "FunctionName": ARN,
            "InvocationType": "RequestResponse",
            "Payload": json.dumps(EVENT).encode(),
        },
    )
    with stubber:
        assert invoker.invoke(ARN, EVENT) == answer
    stubber.assert_no_pending_responses()


def test_lambda_function_error_is_a_function_failure(monkeypatch):
    invoker, stubber = _stubbed(monkeypatch)
    error = b'{"errorMessage": "boom", "errorType": "KeyError"}'
    stubber.add_response(
        "invoke", {"StatusCode": 200, "FunctionError": "Unhandled", "Payload": _body(error)}
    )
    with stubber, pytest.raises(TransformFunctionError, match="Unhandled.*boom"):
        invoker.invoke(ARN, EVENT)


def test_lambda_that_cannot_be_invoked_is_unavailable(monkeypatch):
    invoker, stubber = _stubbed(monkeypatch)
    stubber.add_client_error("invoke", "ResourceNotFoundException", "Function not found")
    with stubber, pytest.raises(TransformUnavailableError, match="provision_infrastructure"):
        invoker.invoke(ARN, EVENT)


def test_embedded_invoker_runs_the_deployed_artifact(provisioned: AwsResource, tmp_path: Path):
    invoker = EmbeddedTransformInvoker(aws=provisioned, lambda_cache_dir=str(tmp_path))
    data = base64.b64encode(b"not a stream record").decode()
    response = invoker.invoke(
        provisioned.stack().function_arn,
        {"records": [{"recordId": "r1", "approximateArrivalTimestamp": 0, "data": data}]},
    )
    assert [r["result"] for r in response["records"]] == ["ProcessingFailed"]
    assert any(tmp_path.iterdir())  # loaded from the artifact, extracted into the cache


def test_embedded_invoker_without_a_deployed_function_is_unavailable(
    provisioned: AwsResource, tmp_path: Path
):
    invoker = EmbeddedTransformInvoker(aws=provisioned, lambda_cache_dir=str(tmp_path))
    missing = provisioned.stack().function_arn + "-missing"
    with pytest.raises(TransformUnavailableError, match="cannot be read"):
        invoker.invoke(missing, {"records": []})


def test_build_resources_picks_the_invoker_of_the_environment():
    from sales_cdc.resources import build_resources
    from sales_cdc.settings import Settings

    aws = build_resources(Settings("aws", "sales-cdc", "eu-west-1", None))
    local = build_resources(Settings("local", "sales-cdc", "us-east-1", "http://127.0.0.1:5050"))
    assert type(aws["transform"]) is LambdaTransformInvoker
    assert type(local["transform"]) is EmbeddedTransformInvoker
