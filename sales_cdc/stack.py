"""The declared stack (infra/stack.yaml + infra/policies/) resolved for one deployment."""

from __future__ import annotations

import json
import os
import string
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from sales_cdc import declaration
from sales_cdc.settings import Settings, SettingsError

REPO_ROOT = Path(__file__).resolve().parents[1]


def infra_dir() -> Path:
    """The folder that declares the stack (SALES_CDC_INFRA_DIR overrides it)."""
    return Path(os.environ.get("SALES_CDC_INFRA_DIR", REPO_ROOT / "infra"))


def load_declaration(env: str, path: Path | None = None) -> dict[str, Any]:
    """stack.yaml with the overrides of `env` applied, validated as a whole (SettingsError)."""
    return declaration.load_declaration(env, path or infra_dir() / "stack.yaml")


# AWS name limits (min, max), checked before any call: (setting in stack.yaml, Stack attribute).
# Sources: S3 bucket naming rules; IAM quotas (role name 64); Lambda CreateFunction FunctionName
# (64); DynamoDB table names 3-255; Kinesis CreateStream StreamName 128; Firehose
# CreateDeliveryStream 64; Pipes CreatePipe Name 64; SQS queue names 80; Glue database, table and
# crawler names 255; Athena work group names 128; CloudWatch Logs group 512, stream 512.
NAME_LIMITS: dict[str, tuple[str, int, int]] = {
    "bucket": ("lake.bucket", 3, 63),
    "table_name": ("table.name", 3, 255),
    "stream_name": ("stream.name", 1, 128),
    "pipe_name": ("pipe.name", 1, 64),
    "dead_letter_queue_name": ("pipe.dead_letter_queue", 1, 80),
    "function_name": ("transform.function_name", 1, 64),
    "delivery_name": ("delivery.name", 1, 64),
    "delivery_log_group": ("delivery.log_group", 1, 512),
    "database": ("catalog.database", 1, 255),
    "raw_table": ("catalog.raw_table", 1, 255),
    "crawler_name": ("catalog.crawler", 1, 255),
    "workgroup": ("athena.workgroup", 1, 128),
}
ROLE_NAME_MAX = 64


@dataclass(frozen=True)
class Stack:
    """Names, ARNs and settings of every resource of one deployment."""

    settings: Settings
    account: str
    declared: dict[str, Any]

    @classmethod
    def load(cls, settings: Settings, account: str) -> Stack:
        """The validated stack of `settings` in `account`; SettingsError names what is wrong."""
        stack = cls(settings=settings, account=account, declared=load_declaration(settings.env))
        stack.check_names()
        return stack

    def check_names(self) -> None:
        """Every resource name within its AWS length limit, all problems named at once."""
        problems = []
        for attribute, (setting, low, high) in NAME_LIMITS.items():
            name = getattr(self, attribute)
            if not low <= len(name) <= high:
                problems.append(
                    f"{setting} gives {name!r} ({len(name)} characters; AWS allows {low}-{high})"
                )
        for service in self.role_services():
            name = self.role_name(service)
            if len(name) > ROLE_NAME_MAX:
                problems.append(
                    f"roles.{service} gives {name!r} ({len(name)} characters; "
                    f"IAM allows {ROLE_NAME_MAX})"
                )
        if problems:
            raise SettingsError(
                f"With SALES_CDC_PREFIX={self.settings.prefix!r} and region "
                f"{self.settings.region} some AWS names are too long: "
                + "; ".join(problems)
                + ". Shorten SALES_CDC_PREFIX or the named setting in infra/stack.yaml."
            )

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
    def dead_letter_queue_name(self) -> str:
        return self._name(self.declared["pipe"]["dead_letter_queue"])

    @cached_property
    def delivery_log_group(self) -> str:
        return self._name(self.declared["delivery"]["log_group"])

    @cached_property
    def delivery_log_stream(self) -> str:
        return self._name(self.declared["delivery"]["log_stream"])

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
    def pipe_arn(self) -> str:
        return self._arn("pipes", f"pipe/{self.pipe_name}")

    @property
    def dead_letter_queue_arn(self) -> str:
        return self._arn("sqs", self.dead_letter_queue_name)

    @property
    def delivery_log_group_arn(self) -> str:
        return self._arn("logs", f"log-group:{self.delivery_log_group}")

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
            "pipe_arn": self.pipe_arn,
            "dead_letter_queue_arn": self.dead_letter_queue_arn,
            "delivery_log_group_arn": self.delivery_log_group_arn,
            "function_arn": self.function_arn,
            "function_name": self.function_name,
            "delivery_name": self.delivery_name,
            "bucket_arn": self.bucket_arn,
            "raw_prefix": self.raw_prefix,
            "errors_prefix": self.errors_prefix,
            "database": self.database,
            "curated_prefix": self.curated_prefix,
            "errors_archive_prefix": self.declared["lake"]["errors_archive_prefix"],
            "athena_results_prefix": self.declared["lake"]["athena_results_prefix"],
            "artifact_prefix": self.artifact_prefix,
            "checkpoint_table_arn": self._arn("dynamodb", f"table/{checkpoint_table_name(self)}"),
            "delivery_arn": self.delivery_arn,
            "crawler_name": self.crawler_name,
            "workgroup": self.workgroup,
            **{f"{service}_role_arn": self.role_arn(service) for service in self.role_services()},
        }

    def _render(self, filename: str) -> dict[str, Any]:
        text = (infra_dir() / "policies" / filename).read_text()
        return json.loads(string.Template(text).substitute(self._policy_values()))

    def role_services(self) -> list[str]:
        return list(self.declared["roles"])

    def trust_policy(self, service: str) -> dict[str, Any]:
        """The assume-role policy of a service role, with the conditions its service documents."""
        document = self._render(f"{service}.json")
        statement: dict[str, Any] = {
            "Effect": "Allow",
            "Principal": {"Service": document["trust"]},
            "Action": "sts:AssumeRole",
        }
        if document.get("trust_condition"):
            statement["Condition"] = document["trust_condition"]
        return {"Version": "2012-10-17", "Statement": [statement]}

    def role_policy(self, service: str) -> dict[str, Any]:
        return self._render(f"{service}.json")["policy"]

    def bucket_policy(self) -> dict[str, Any]:
        return self._render("bucket.json")

    def caller_policy(self) -> dict[str, Any]:
        """Least-privilege policy for the principal that runs Dagster (infra/policies/caller.json)."""
        return self._render("caller.json")


def checkpoint_table_name(stack: Stack) -> str:
    """The local runtime's lease/checkpoint table."""
    return stack._name(stack.declared["runtime"]["checkpoint_table"])


def main(argv: list[str] | None = None) -> None:
    """Print the caller policy of this deployment: python -m sales_cdc.stack --account ID."""
    import argparse

    from sales_cdc.settings import load_settings

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--account", required=True, help="12-digit AWS account id")
    args = parser.parse_args(argv)
    stack = Stack.load(load_settings(), args.account)
    print(json.dumps(stack.caller_policy(), indent=2))


if __name__ == "__main__":
    main()
