"""Runs the Lambda function that provisioning deployed: its artifact, not the working tree.

The function's CodeSha256 names the artifact zip in S3 (hex of the same digest); the zip is
verified against it, extracted once into a cache folder keyed by the digest and its handler
module imported in a namespace of its own. A new CodeSha256 loads the new code.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError


class FunctionLoadError(RuntimeError):
    """The deployed function cannot be loaded (missing artifact, digest mismatch, bad handler)."""


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(tempfile.gettempdir(), "sales-cdc")
    return Path(base) / "lambda-artifacts"


class LambdaContext:
    """The context object a Python Lambda handler receives."""

    def __init__(self, function_name: str, function_arn: str, memory_mb: int, timeout_s: int):
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = function_arn
        self.memory_limit_in_mb = memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local-runtime"
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass
class DeployedFunction:
    """A loaded handler of one deployed code version."""

    arn: str
    name: str
    code_sha256: str
    handler: Callable[[dict[str, Any], Any], Any]
    memory_mb: int
    timeout_s: int

    def invoke(self, event: dict[str, Any]) -> Any:
        context = LambdaContext(self.name, self.arn, self.memory_mb, self.timeout_s)
        return self.handler(event, context)


def code_sha256_hex(code_sha256: str) -> str:
    """Lambda's base64 CodeSha256 as the hex digest that names the artifact."""
    return base64.b64decode(code_sha256).hex()


class FunctionLoader:
    """Loads (and re-loads on a new CodeSha256) the deployed code of Lambda functions."""

    def __init__(
        self,
        lambda_client: Any,
        s3_client: Any,
        artifact_bucket: str,
        artifact_prefix: str,
        cache_dir: Path | None = None,
        recheck_seconds: float = 2.0,
    ) -> None:
        self.lambda_client = lambda_client
        self.s3 = s3_client
        self.bucket = artifact_bucket
        self.prefix = artifact_prefix
        self.cache_dir = cache_dir or default_cache_dir()
        self.recheck_seconds = recheck_seconds
        self._loaded: dict[tuple[str, str, str], DeployedFunction] = {}
        self._checked: dict[str, tuple[float, DeployedFunction]] = {}
        self._lock = threading.Lock()

    def get(self, function_arn: str) -> DeployedFunction:
        """The function's current deployed code (configuration re-read every few seconds)."""
        with self._lock:
            checked = self._checked.get(function_arn)
            if checked and time.monotonic() - checked[0] < self.recheck_seconds:
                return checked[1]
            try:
                config = self.lambda_client.get_function_configuration(FunctionName=function_arn)
            except ClientError as exc:
                raise FunctionLoadError(
                    f"Lambda {function_arn} cannot be read: {exc}. Run provision_infrastructure."
                ) from exc
            key = (function_arn, config["CodeSha256"], config["Handler"])
            function = self._loaded.get(key)
            if function is None:
                function = DeployedFunction(
                    arn=function_arn,
                    name=config["FunctionName"],
                    code_sha256=config["CodeSha256"],
                    handler=self._import_handler(config["CodeSha256"], config["Handler"]),
                    memory_mb=int(config.get("MemorySize", 128)),
                    timeout_s=int(config.get("Timeout", 3)),
                )
                self._loaded[key] = function
            self._checked[function_arn] = (time.monotonic(), function)
            return function

    def _artifact_dir(self, code_sha256: str) -> Path:
        digest_hex = code_sha256_hex(code_sha256)
        target = self.cache_dir / digest_hex
        if target.is_dir():
            return target
        key = f"{self.prefix}{digest_hex}.zip"
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            raise FunctionLoadError(
                f"The deployed artifact s3://{self.bucket}/{key} cannot be read: {exc}"
            ) from exc
        actual = base64.b64encode(hashlib.sha256(body).digest()).decode()
        if actual != code_sha256:
            raise FunctionLoadError(
                f"s3://{self.bucket}/{key} has CodeSha256 {actual}, the function says "
                f"{code_sha256}: the artifact was replaced; run provision_infrastructure again"
            )
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{digest_hex}-", dir=self.cache_dir))
        try:
            with zipfile.ZipFile(io.BytesIO(body)) as archive:
                for member in archive.namelist():
                    if member.startswith("/") or ".." in Path(member).parts:
                        raise FunctionLoadError(f"{key} holds an unsafe path {member!r}")
                archive.extractall(staging)
            try:
                staging.rename(target)
            except OSError:
                if not target.is_dir():  # another runtime extracted it first otherwise
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target

    def _import_handler(self, code_sha256: str, handler: str) -> Callable[..., Any]:
        module_path, _, function_name = handler.rpartition(".")
        if not module_path or not function_name:
            raise FunctionLoadError(f"Handler {handler!r} is not <module>.<function>")
        root = self._artifact_dir(code_sha256)
        source = root.joinpath(*module_path.split(".")).with_suffix(".py")
        if not source.is_file():
            raise FunctionLoadError(f"Handler module {module_path} is not in the artifact")
        digest_hex = code_sha256_hex(code_sha256)
        name = f"_sales_cdc_lambda_{digest_hex[:16]}_{module_path.replace('.', '_')}"
        spec = importlib.util.spec_from_file_location(name, source)
        if spec is None or spec.loader is None:
            raise FunctionLoadError(f"Cannot import {source}")
        module = importlib.util.module_from_spec(spec)
        before = set(sys.modules)
        sys.modules[name] = module  # dataclasses and pickling look modules up by name
        sys.path.insert(0, str(root))  # sibling modules of the zip, as in Lambda's /var/task
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(name, None)
            raise FunctionLoadError(f"Importing {handler} failed: {exc!r}") from exc
        finally:
            sys.path.remove(str(root))
            # Sibling modules stay referenced by the handler, not by name for the next version.
            for added in set(sys.modules) - before:
                origin = getattr(sys.modules[added], "__file__", None) or ""
                if added != name and origin.startswith(str(root)):
                    del sys.modules[added]
        function = getattr(module, function_name, None)
        if not callable(function):
            raise FunctionLoadError(f"{module_path} has no function {function_name}")
        return function
