"""The aws tests: opt-in (SALES_CDC_TEST_AWS=1), real credentials, a deployment of their own."""

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from sales_cdc.stack import REPO_ROOT
from sales_cdc_tests.conftest import USER_ENVIRON

OPT_IN = "SALES_CDC_TEST_AWS"


def _skip_reason() -> str | None:
    if USER_ENVIRON.get(OPT_IN) != "1":
        return (
            f"{OPT_IN}=1 not set: these tests create (and delete) a whole stack in a real AWS "
            f"account and cost money; run them with `{OPT_IN}=1 make test-aws`"
        )
    if not (USER_ENVIRON.get("AWS_REGION") or USER_ENVIRON.get("AWS_DEFAULT_REGION")):
        return "AWS_REGION is not set: export AWS_REGION=<region> for the aws tests"
    # The credential chain as the user's environment resolves it (this process has dummy keys).
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import boto3; c = boto3.session.Session().get_credentials(); "
            "print(bool(c and c.access_key))",
        ],
        env=USER_ENVIRON,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if probe.stdout.strip() != "True":
        return "no AWS credentials found (environment, profile or instance role) for the aws tests"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test here `aws` and skip it, with the reason, unless the user opted in."""
    here = [item for item in items if "sales_cdc_tests/aws/" in str(item.path)]
    if not here:
        return
    reason = _skip_reason()
    for item in here:
        item.add_marker(pytest.mark.aws)
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))


def aws_environ(prefix: str) -> dict[str, str]:
    """The user's environment (real credentials) pointed at the deployment `prefix`."""
    environ = {k: v for k, v in USER_ENVIRON.items() if k != "AWS_ENDPOINT_URL"}
    environ.update(SALES_CDC_ENV="aws", SALES_CDC_PREFIX=prefix)
    environ.setdefault("AWS_REGION", environ.get("AWS_DEFAULT_REGION", ""))
    return environ


def drive(command: str, environ: dict[str, str], timeout: float) -> dict[str, Any]:
    """Run sales_cdc_tests.aws.pipeline `command` in its own process; its JSON report."""
    done = subprocess.run(
        [sys.executable, "-m", "sales_cdc_tests.aws.pipeline", command],
        cwd=REPO_ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    sys.stderr.write(done.stderr[-20000:])
    assert done.returncode == 0, f"pipeline {command} failed:\n{done.stderr[-5000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def deployment() -> Iterator[dict[str, str]]:
    """A fresh prefix in the real account, torn down afterwards whatever happened."""
    prefix = f"sct-{uuid.uuid4().hex[:8]}"
    environ = aws_environ(prefix)
    try:
        yield environ
    finally:
        report = drive("teardown", environ, timeout=1800)
        assert report["success"] and report["leftovers"] == [], (
            f"teardown of {prefix} left {report['leftovers']}: delete them by hand "
            f"(SALES_CDC_PREFIX={prefix} dagster job execute -j teardown_infrastructure)"
        )
