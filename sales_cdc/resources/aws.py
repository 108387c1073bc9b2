"""AWS access for every asset and op: boto3 clients with botocore retries, and the stack's names."""

from __future__ import annotations

import functools
import threading
from typing import Any, Literal

import boto3
import botocore.loaders
import botocore.session
from botocore.config import Config
from dagster_aws.utils import ResourceWithBoto3Configuration
from pydantic import Field, PrivateAttr

from sales_cdc.settings import Settings
from sales_cdc.stack import Stack


@functools.cache
def _service_models() -> botocore.loaders.Loader:
    """botocore's loader of service models, shared by every session of the process.

    Each boto3 session has a loader of its own that parses the JSON models of the services it
    makes clients for (S3's model and endpoint rules alone are about 0.6 MB of JSON); a run builds
    a few sessions (one per resource), which parsed them again each time.
    """
    return botocore.loaders.create_loader()


_local = threading.local()


def _thread_session(credentials: tuple[str | None, ...]) -> boto3.session.Session:
    """This thread's boto3 session for these credentials (profile, key id, secret, token).

    Dagster builds a sensor's resources anew on every tick: a new session each time registered
    botocore's handlers and built its endpoint resolver again, on every tick. A session is not
    thread-safe, its clients are: one per thread.
    """
    sessions = _local.__dict__.setdefault("sessions", {})
    if credentials not in sessions:
        profile, key_id, secret, token = credentials
        core = botocore.session.get_session()
        core.register_component("data_loader", _service_models())
        sessions[credentials] = boto3.session.Session(
            botocore_session=core,
            profile_name=profile,
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            aws_session_token=token,
        )
    return sessions[credentials]


class AwsResource(ResourceWithBoto3Configuration):
    """boto3 clients for the deployment, and the resolved stack (names, ARNs, settings)."""

    env: Literal["local", "aws"] = Field(description="SALES_CDC_ENV: local (emulator) or aws.")
    prefix: str = Field(description="SALES_CDC_PREFIX: prefixes every AWS resource name.")
    retry_mode: Literal["standard", "adaptive"] = Field(
        default="standard", description="botocore retry mode for every client."
    )
    _stack: Stack | None = PrivateAttr(default=None)

    @classmethod
    def from_settings(cls, settings: Settings) -> AwsResource:
        return cls(
            env=settings.env,
            prefix=settings.prefix,
            region_name=settings.region,
            endpoint_url=settings.endpoint_url,
            max_attempts=10,
        )

    @property
    def settings(self) -> Settings:
        return Settings(
            env=self.env,
            prefix=self.prefix,
            region=self.region_name or "us-east-1",
            endpoint_url=self.endpoint_url,
        )

    def boto_config(self) -> Config:
        return Config(retries={"max_attempts": self.max_attempts, "mode": self.retry_mode})

    def client(self, service: str) -> Any:
        """A boto3 client for `service`, with the deployment's region, endpoint and retries."""
        credentials = (
            self.profile_name,
            self.aws_access_key_id,
            self.aws_secret_access_key,
            self.aws_session_token,
        )
        return _thread_session(credentials).client(
            service,
            region_name=self.region_name,
            endpoint_url=self.endpoint_url,
            use_ssl=self.use_ssl,
            verify=self.verify,
            config=self.boto_config(),
        )

    def stack(self) -> Stack:
        """The stack of this deployment (one STS call for the account id, then cached)."""
        if self._stack is None:
            account = self.client("sts").get_caller_identity()["Account"]
            self._stack = Stack.load(self.settings, account)
        return self._stack
