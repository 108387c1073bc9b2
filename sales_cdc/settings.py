"""Environment-driven settings: which environment, which prefix, which region, which endpoint."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlparse

ENVIRONMENTS = ("local", "aws")
DEFAULT_PREFIX = "sales-cdc"
DEFAULT_LOCAL_REGION = "us-east-1"
DEFAULT_EMULATOR_PORT = 5050
DEFAULT_EMULATOR_ENDPOINT = f"http://127.0.0.1:{DEFAULT_EMULATOR_PORT}"
# The prefix ends up in S3 bucket names, so it follows their rules (and leaves room for suffixes).
PREFIX_PATTERN = re.compile(r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$")
REGION_PATTERN = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d$")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class SettingsError(ValueError):
    """A setting is missing or wrong; the message names it, its value and the fix."""


@dataclass(frozen=True)
class Settings:
    """Where the pipeline runs and how its resources are named."""

    env: Literal["local", "aws"]
    prefix: str
    region: str
    endpoint_url: str | None

    @property
    def is_local(self) -> bool:
        return self.env == "local"


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the settings; raise SettingsError naming the bad setting."""
    environ = os.environ if environ is None else environ

    env = environ.get("SALES_CDC_ENV", "local").strip() or "local"
    if env not in ENVIRONMENTS:
        raise SettingsError(
            f"SALES_CDC_ENV={env!r} is not a known environment. "
            "Set SALES_CDC_ENV=local (embedded stack, the default) or SALES_CDC_ENV=aws."
        )

    prefix = environ.get("SALES_CDC_PREFIX", DEFAULT_PREFIX).strip()
    if not prefix:
        raise SettingsError(
            "SALES_CDC_PREFIX is set but empty. Unset it to use the default prefix "
            f"({DEFAULT_PREFIX!r}) or give one, for example SALES_CDC_PREFIX=my-sales-cdc."
        )
    if not PREFIX_PATTERN.match(prefix):
        raise SettingsError(
            f"SALES_CDC_PREFIX={prefix!r} cannot prefix AWS resource names. Use 3-32 characters: "
            "lowercase letters, digits and '-', starting with a letter and not ending with '-' "
            f"(for example {DEFAULT_PREFIX!r})."
        )

    region = (environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or "").strip()
    if not region:
        if env == "aws":
            raise SettingsError(
                "AWS_REGION is not set. SALES_CDC_ENV=aws needs a region: "
                "export AWS_REGION=<region> (for example eu-west-1)."
            )
        region = DEFAULT_LOCAL_REGION
    if not REGION_PATTERN.match(region):
        raise SettingsError(
            f"AWS_REGION={region!r} is not an AWS region name. "
            "Use a region code such as us-east-1 or eu-west-1."
        )

    endpoint_url = (environ.get("AWS_ENDPOINT_URL") or "").strip() or None
    if env == "local":
        endpoint_url = endpoint_url or DEFAULT_EMULATOR_ENDPOINT
        parsed = urlparse(endpoint_url)
        if parsed.scheme != "http" or parsed.hostname not in LOOPBACK_HOSTS or not parsed.port:
            raise SettingsError(
                f"AWS_ENDPOINT_URL={endpoint_url!r} does not point at the embedded emulator. "
                "SALES_CDC_ENV=local only talks to an emulator on this machine: use "
                f"http://127.0.0.1:<port> (default {DEFAULT_EMULATOR_ENDPOINT}), "
                "or set SALES_CDC_ENV=aws to use a real account."
            )
    elif endpoint_url:
        parsed = urlparse(endpoint_url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise SettingsError(
                f"AWS_ENDPOINT_URL={endpoint_url!r} is not a URL. "
                "Unset it to use the AWS endpoints, or give http(s)://host:port."
            )

    return Settings(env=env, prefix=prefix, region=region, endpoint_url=endpoint_url)  # type: ignore[arg-type]


def apply_local_credentials(settings: Settings) -> None:
    """Give boto3 dummy credentials for the emulator when none are configured."""
    if settings.is_local:
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", settings.region)
    if settings.endpoint_url:
        os.environ.setdefault("AWS_ENDPOINT_URL", settings.endpoint_url)
