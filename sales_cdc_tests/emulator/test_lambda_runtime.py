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


def _digest_hex(aws: AwsResource) -> str:
    stack = aws.stack()
    config = aws.client("lambda").get_function_configuration(FunctionName=stack.function_arn)
    return code_sha256_hex(config["CodeSha256"])


def test_planted_artifact_directory_is_rebuilt_before_import(
    provisioned: AwsResource, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    planted = cache / _digest_hex(provisioned)
    planted.mkdir()
    (planted / "handler.py").write_text(
        "def lambda_handler(event, context):\n    return {'planted': True}\n"
    )
    function = _loader(provisioned, cache).get(provisioned.stack().function_arn)
    assert function.invoke({"records": []}) == {"records": []}  # the deployed code ran
    assert "planted" not in (planted / "handler.py").read_text()


def test_modified_cached_zip_is_not_trusted(provisioned: AwsResource, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    digest_hex = _digest_hex(provisioned)
    forged = io.BytesIO()
    with zipfile.ZipFile(forged, "w") as archive:
        archive.writestr("handler.py", "def lambda_handler(event, context):\n    return 'forged'\n")
    (cache / f"{digest_hex}.zip").write_bytes(forged.getvalue())
    function = _loader(provisioned, cache).get(provisioned.stack().function_arn)
    assert function.invoke({"records": []}) == {"records": []}


@pytest.mark.parametrize("mode", [0o770, 0o707, 0o777])
def test_cache_writable_by_others_is_refused(
    provisioned: AwsResource, tmp_path: Path, mode: int
) -> None:
    cache = tmp_path / "shared"
    cache.mkdir()
    cache.chmod(mode)
    with pytest.raises(FunctionLoadError, match="writable by group or others"):
        _loader(provisioned, cache).get(provisioned.stack().function_arn)


def test_cache_owned_by_someone_else_is_refused(
    provisioned: AwsResource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    monkeypatch.setattr(os, "getuid", lambda: os.stat(cache).st_uid + 1)
    with pytest.raises(FunctionLoadError, match="not to you"):
        _loader(provisioned, cache).get(provisioned.stack().function_arn)


def test_cache_directory_is_created_private(provisioned: AwsResource, tmp_path: Path) -> None:
    cache = tmp_path / "new" / "lambda-artifacts"
    _loader(provisioned, cache).get(provisioned.stack().function_arn)
    assert cache.stat().st_mode & 0o777 == 0o700
    assert not any(p.name == "__pycache__" for p in cache.rglob("*"))
