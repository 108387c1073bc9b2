"""Loading the deployed transform artifact (not the working tree) the way Lambda runs it."""

import base64
import hashlib
import io
import sys
import zipfile
from pathlib import Path

import pytest

from sales_cdc.emulator.lambda_runtime import FunctionLoader, FunctionLoadError, code_sha256_hex
from sales_cdc.resources.aws import AwsResource


def _loader(aws: AwsResource, cache: Path) -> FunctionLoader:
    stack = aws.stack()
    return FunctionLoader(
        aws.client("lambda"),
        aws.client("s3"),
        artifact_bucket=stack.bucket,
        artifact_prefix=stack.artifact_prefix,
        cache_dir=cache,
        recheck_seconds=0,
    )


def test_deployed_artifact_is_verified_extracted_and_invoked(
    provisioned: AwsResource, tmp_path: Path
) -> None:
    stack = provisioned.stack()
    function = _loader(provisioned, tmp_path).get(stack.function_arn)
    config = provisioned.client("lambda").get_function_configuration(
        FunctionName=stack.function_arn
    )
    assert function.code_sha256 == config["CodeSha256"]
    digest_hex = code_sha256_hex(config["CodeSha256"])
    assert (tmp_path / digest_hex / "handler.py").is_file()
    module = sys.modules[function.handler.__module__]
    assert module.__file__.startswith(str(tmp_path))  # the artifact, not sales_cdc/transform
    response = function.invoke({"records": []})
    assert response == {"records": []}


def test_replaced_artifact_is_refused(provisioned: AwsResource, tmp_path: Path) -> None:
    stack = provisioned.stack()
    config = provisioned.client("lambda").get_function_configuration(
        FunctionName=stack.function_arn
    )
    key = f"{stack.artifact_prefix}{code_sha256_hex(config['CodeSha256'])}.zip"
    provisioned.client("s3").put_object(Bucket=stack.bucket, Key=key, Body=b"tampered")
    with pytest.raises(FunctionLoadError, match="CodeSha256"):
        _loader(provisioned, tmp_path).get(stack.function_arn)


def test_code_sha256_hex_is_the_same_digest() -> None:
    digest = hashlib.sha256(b"zip").digest()
    assert code_sha256_hex(base64.b64encode(digest).decode()) == digest.hex()


def test_new_code_sha256_loads_the_new_code(provisioned: AwsResource, tmp_path: Path) -> None:
    stack = provisioned.stack()
    loader = _loader(provisioned, tmp_path)
    first = loader.get(stack.function_arn)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("helper.py", "ANSWER = 'v2'\n")
        archive.writestr(
            "handler.py",
            "import helper\n\ndef lambda_handler(event, context):\n"
            "    return {'records': [], 'code': helper.ANSWER}\n",
        )
    body = buffer.getvalue()
    key = f"{stack.artifact_prefix}{hashlib.sha256(body).hexdigest()}.zip"
    provisioned.client("s3").put_object(Bucket=stack.bucket, Key=key, Body=body)
    provisioned.client("lambda").update_function_code(
        FunctionName=stack.function_name, S3Bucket=stack.bucket, S3Key=key
    )
    second = loader.get(stack.function_arn)
    assert second.code_sha256 == base64.b64encode(hashlib.sha256(body).digest()).decode()
    assert second.code_sha256 != first.code_sha256
    assert second.invoke({"records": []}) == {"records": [], "code": "v2"}
    assert "helper" not in sys.modules  # the zip's modules do not leak into the runtime
    assert first.invoke({"records": []}) == {"records": []}  # the old version is untouched
