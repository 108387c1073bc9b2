"""Shared fixtures: one embedded emulator per test session, a fresh prefix per test."""

import os
import uuid
from collections.abc import Iterator

import pytest

from sales_cdc.emulator.server import Emulator, free_port
from sales_cdc.resources.aws import AwsResource
from sales_cdc.settings import Settings, load_settings

# The environment as the user started pytest: only the opt-in aws tests (sales_cdc_tests/aws/)
# hand it to the processes they start.
USER_ENVIRON = dict(os.environ)

# Tests never reach real AWS: dummy credentials unless a test opts in explicitly.
for _name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
    os.environ.pop(_name, None)
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
os.environ.pop("AWS_REGION", None)
os.environ.setdefault("DAGSTER_HOME", "")
if not os.environ["DAGSTER_HOME"]:
    os.environ.pop("DAGSTER_HOME")


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    """The embedded AWS emulator on a free 127.0.0.1 port, stopped after the session."""
    with Emulator(free_port()) as running:
        yield running


@pytest.fixture
def local_env(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Environment of a local deployment with a prefix of its own (tests share one emulator)."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("SALES_CDC_ENV", "local")
    monkeypatch.setenv("SALES_CDC_PREFIX", prefix)
    monkeypatch.setenv("AWS_ENDPOINT_URL", emulator.endpoint)
    return load_settings()


@pytest.fixture
def aws(local_env: Settings) -> Iterator[AwsResource]:
    """AwsResource for the test's own deployment (nothing provisioned yet), torn down after it.

    Tests share one emulator, and Firehose (as modelled by moto) allows 50 delivery streams per
    region: a deployment a test leaves behind would make the 51st provisioning fail.
    """
    resource = AwsResource.from_settings(local_env)
    yield resource
    if _deployed(resource):
        from sales_cdc.defs.infrastructure.jobs import teardown_infrastructure

        teardown_infrastructure.execute_in_process(resources={"aws": resource})


def _deployed(aws: AwsResource) -> bool:
    """Whether any part of the test's deployment exists (its bucket or its delivery stream)."""
    from botocore.exceptions import ClientError

    stack = aws.stack()
    for exists in (
        lambda: aws.client("firehose").describe_delivery_stream(
            DeliveryStreamName=stack.delivery_name
        ),
        lambda: aws.client("s3").head_bucket(Bucket=stack.bucket),
    ):
        try:
            exists()
            return True
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("ResourceNotFoundException", "404"):
                raise
    return False


@pytest.fixture
def provisioned(aws: AwsResource) -> AwsResource:
    """A fully provisioned deployment in the emulator."""
    from sales_cdc.defs.infrastructure.provision import provision_all

    provision_all(aws)
    return aws
