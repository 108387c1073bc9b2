"""Runs the Lambda function that provisioning deployed: its artifact, not the working tree.

The function's CodeSha256 names the artifact zip in S3 (hex of the same digest); the zip is
verified against it, extracted into a cache folder keyed by the digest and its handler module
imported in a namespace of its own. A new CodeSha256 loads the new code.

The cache is private: its directory is created 0700 and refused when another user owns it or
others may write it. Before any import, the cached zip is checked against CodeSha256 again and
the extracted folder against the zip, file by file; a planted or modified folder is rebuilt.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import importlib.util
import io
import logging
import os
import shutil
import stat
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

log = logging.getLogger(__name__)


class FunctionLoadError(RuntimeError):
    """The deployed function cannot be loaded (missing artifact, digest mismatch, bad handler)."""


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/sales-cdc/lambda-artifacts (~/.cache when unset): the user's own cache."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sales-cdc" / "lambda-artifacts"


def private_dir(path: Path) -> Path:
    """`path` as a directory only this user can write: created 0700, refused otherwise."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise FunctionLoadError(
            f"Lambda cache {path} is not a plain directory: remove it or pass "
            "--lambda-cache-dir <a directory of your own>"
        )
    if info.st_uid != os.getuid():
        raise FunctionLoadError(
            f"Lambda cache {path} belongs to uid {info.st_uid}, not to you (uid {os.getuid()}): "
            "its code could be anyone's. Pass --lambda-cache-dir <a directory of your own>."
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise FunctionLoadError(
            f"Lambda cache {path} is writable by group or others (mode "
            f"{stat.S_IMODE(info.st_mode):o}): run `chmod 700 {path}` or pass "
            "--lambda-cache-dir <a directory of your own>."
        )
    return path


def _sha256_b64(body: bytes) -> str:
    return base64.b64encode(hashlib.sha256(body).digest()).decode()


def _tree_matches(root: Path, archive: zipfile.ZipFile) -> bool:
    """True when `root` holds exactly the zip's files, byte for byte (and nothing else)."""
    expected = {info.filename.rstrip("/"): info for info in archive.infolist() if not info.is_dir()}
    found: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in [*dirnames, *filenames]:
            full = Path(dirpath) / name
            if full.is_symlink():
                return False
        for name in filenames:
            relative = (Path(dirpath) / name).relative_to(root).as_posix()
            info = expected.get(relative)
            if info is None or (Path(dirpath) / name).read_bytes() != archive.read(info):
                return False
            found.add(relative)
    return found == set(expected)


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
                # Only the current version of each function stays loaded (bounded over redeploys).
                for stale in [k for k in self._loaded if k[0] == function_arn]:
                    del self._loaded[stale]
                self._loaded[key] = function
            self._checked[function_arn] = (time.monotonic(), function)
            return function

    def _artifact_body(self, code_sha256: str) -> bytes:
        """The artifact zip, verified against CodeSha256 (from the cache, else from S3)."""
        digest_hex = code_sha256_hex(code_sha256)
        cached = self.cache_dir / f"{digest_hex}.zip"
        if cached.is_file() and _sha256_b64(cached.read_bytes()) == code_sha256:
            return cached.read_bytes()
        key = f"{self.prefix}{digest_hex}.zip"
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            raise FunctionLoadError(
                f"The deployed artifact s3://{self.bucket}/{key} cannot be read: {exc}"
            ) from exc
        actual = _sha256_b64(body)
        if actual != code_sha256:
            raise FunctionLoadError(
                f"s3://{self.bucket}/{key} has CodeSha256 {actual}, the function says "
                f"{code_sha256}: the artifact was replaced; run provision_infrastructure again"
            )
        staging = cached.with_name(f".{cached.name}.{uuid.uuid4().hex}")
        staging.write_bytes(body)
        staging.replace(cached)
        return body

    def _artifact_dir(self, code_sha256: str) -> Path:
        """The verified artifact extracted under the private cache; rebuilt when it differs."""
        private_dir(self.cache_dir)
        digest_hex = code_sha256_hex(code_sha256)
        target = self.cache_dir / digest_hex
        body = self._artifact_body(code_sha256)
        with zipfile.ZipFile(io.BytesIO(body)) as archive:
            for member in archive.namelist():
                if member.startswith("/") or ".." in Path(member).parts:
                    raise FunctionLoadError(f"{digest_hex}.zip holds an unsafe path {member!r}")
            if target.is_dir() and not target.is_symlink() and _tree_matches(target, archive):
                return target
            if target.exists() or target.is_symlink():
                log.warning("Lambda cache %s does not match its artifact: rebuilding it", target)
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target)
                else:
                    target.unlink()
            staging = Path(tempfile.mkdtemp(prefix=f".{digest_hex}-", dir=self.cache_dir))
            try:
                archive.extractall(staging)
                staging.rename(target)
            except OSError:
                if not (target.is_dir() and _tree_matches(target, archive)):
                    raise  # another runtime extracted the same artifact first otherwise
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
        write_bytecode = sys.dont_write_bytecode
        sys.dont_write_bytecode = True  # no __pycache__ in the verified tree
        sys.modules[name] = module  # dataclasses and pickling look modules up by name
        sys.path.insert(0, str(root))  # sibling modules of the zip, as in Lambda's /var/task
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(name, None)
            raise FunctionLoadError(f"Importing {handler} failed: {exc!r}") from exc
        finally:
            sys.dont_write_bytecode = write_bytecode
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
