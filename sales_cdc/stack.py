"""The declared stack (infra/stack.yaml + infra/policies/) resolved for one deployment."""

from __future__ import annotations

import copy
import json
import os
import string
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from sales_cdc.settings import Settings, SettingsError

REPO_ROOT = Path(__file__).resolve().parents[1]


def infra_dir() -> Path:
    """The folder that declares the stack (SALES_CDC_INFRA_DIR overrides it)."""
    return Path(os.environ.get("SALES_CDC_INFRA_DIR", REPO_ROOT / "infra"))


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_declaration(env: str, path: Path | None = None) -> dict[str, Any]:
    """stack.yaml with the overrides of `env` applied."""
    path = path or infra_dir() / "stack.yaml"
    if not path.exists():
        raise SettingsError(
            f"SALES_CDC_INFRA_DIR={str(path.parent)!r} has no stack.yaml. "
            "Unset SALES_CDC_INFRA_DIR to use the repository's infra/ folder."
        )
    declared = yaml.safe_load(path.read_text())
    environments = declared.pop("environments", {}) or {}
    return _merge(declared, environments.get(env) or {})


@dataclass(frozen=True)
class Stack:
    """Names, ARNs and settings of every resource of one deployment."""

    settings: Settings
    account: str
    declared: dict[str, Any]

    @classmethod
    def load(cls, settings: Settings, account: str) -> Stack:
        return cls(settings=settings, account=account, declared=load_declaration(settings.env))

    # -- helpers ---------------------------------------------------------------------------
    def _name(self, template: str) -> str:
        return template.format(
            prefix=self.settings.prefix,
            prefix_=self.settings.prefix.replace("-", "_"),
            region=self.settings.region,
            account=self.account,
        )

    def section(self, name: str) -> dict[str, Any]:
        return self.declared[name]

    @property
    def partition(self) -> str:
        region = self.settings.region
        if region.startswith("cn-"):
            return "aws-cn"
        return "aws-us-gov" if region.startswith("us-gov-") else "aws"

    def _arn(self, service: str, resource: str, region: bool = True) -> str:
        reg = self.settings.region if region else ""
        return f"arn:{self.partition}:{service}:{reg}:{self.account}:{resource}"

    # -- names -----------------------------------------------------------------------------
    @cached_property
    def table_name(self) -> str:
        return self._name(self.declared["table"]["name"])

    @cached_property
    def stream_name(self) -> str:
        return self._name(self.declared["stream"]["name"])

    @cached_property
    def pipe_name(self) -> str:
        return self._name(self.declared["pipe"]["name"])

    @cached_property
    def function_name(self) -> str:
        return self._name(self.declared["transform"]["function_name"])

    @cached_property
    def delivery_name(self) -> str:
        return self._name(self.declared["delivery"]["name"])

    @cached_property
    def bucket(self) -> str:
        return self._name(self.declared["lake"]["bucket"])

    @cached_property
    def database(self) -> str:
        return self._name(self.declared["catalog"]["database"])

    @cached_property
    def raw_table(self) -> str:
        return self.declared["catalog"]["raw_table"]

    @cached_property
    def crawler_name(self) -> str:
        return self._name(self.declared["catalog"]["crawler"])

    @cached_property
    def workgroup(self) -> str:
        return self._name(self.declared["athena"]["workgroup"])

    def role_name(self, service: str) -> str:
        return self._name(self.declared["roles"][service])

    @property
    def raw_prefix(self) -> str:
        return self.declared["lake"]["raw_prefix"]

    @property
    def errors_prefix(self) -> str:
        return self.declared["lake"]["errors_prefix"]

    @property
    def curated_prefix(self) -> str:
        return self.declared["lake"]["curated_prefix"]

    @property
    def athena_results_location(self) -> str:
        return f"s3://{self.bucket}/{self.declared['lake']['athena_results_prefix']}"

    @property
    def artifact_prefix(self) -> str:
        return self.declared["transform"]["artifact_prefix"]

    # -- ARNs ------------------------------------------------------------------------------
    @property
    def table_arn(self) -> str:
        return self._arn("dynamodb", f"table/{self.table_name}")

    @property
    def stream_arn(self) -> str:
        return self._arn("kinesis", f"stream/{self.stream_name}")

    @property
    def function_arn(self) -> str:
        return self._arn("lambda", f"function:{self.function_name}")

    @property
    def delivery_arn(self) -> str:
        return self._arn("firehose", f"deliverystream/{self.delivery_name}")

    @property
    def bucket_arn(self) -> str:
        return f"arn:{self.partition}:s3:::{self.bucket}"

    def role_arn(self, service: str) -> str:
        return f"arn:{self.partition}:iam::{self.account}:role/{self.role_name(service)}"

    # -- documents -------------------------------------------------------------------------
    def _policy_values(self) -> dict[str, str]:
        return {
            "partition": self.partition,
            "region": self.settings.region,
            "account": self.account,
            "table_arn": self.table_arn,
            "stream_arn": self.stream_arn,
            "function_arn": self.function_arn,
            "function_name": self.function_name,
            "delivery_name": self.delivery_name,
            "bucket_arn": self.bucket_arn,
            "raw_prefix": self.raw_prefix,
            "errors_prefix": self.errors_prefix,
            "database": self.database,
        }

    def _render(self, filename: str) -> dict[str, Any]:
        text = (infra_dir() / "policies" / filename).read_text()
        return json.loads(string.Template(text).substitute(self._policy_values()))

    def role_services(self) -> list[str]:
        return list(self.declared["roles"])

    def trust_policy(self, service: str) -> dict[str, Any]:
        """The assume-role policy of a service role, limited to this account."""
        principal = self._render(f"{service}.json")["trust"]
        return {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": principal},
                    "Action": "sts:AssumeRole",
                    "Condition": {"StringEquals": {"aws:SourceAccount": self.account}},
                }
            ],
        }

    def role_policy(self, service: str) -> dict[str, Any]:
        return self._render(f"{service}.json")["policy"]

    def bucket_policy(self) -> dict[str, Any]:
        return self._render("bucket.json")


def checkpoint_table_name(stack: Stack) -> str:
    """The local runtime's lease/checkpoint table."""
    return stack._name(stack.declared["runtime"]["checkpoint_table"])
