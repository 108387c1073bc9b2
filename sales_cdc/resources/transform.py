"""The deployed transform Lambda, invoked the way Firehose does: AWS Lambda, or the local runtime's loader."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import Any

import dagster as dg
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import Field, PrivateAttr

from sales_cdc.resources.aws import AwsResource


class TransformUnavailableError(RuntimeError):
    """The deployed function could not be invoked at all (missing, not loadable, throttled)."""


class TransformFunctionError(RuntimeError):
    """The function ran and failed (it raised, timed out, ran out of memory)."""


class TransformInvoker(dg.ConfigurableResource, ABC):
    """Invokes the deployed transform synchronously with a Firehose data-transformation event."""

    aws: AwsResource = Field(description="AWS clients and the stack (function, artifact bucket).")

    @abstractmethod
    def invoke(self, function_arn: str, event: dict[str, Any]) -> Any:
        """The function's response to `event`.

        TransformFunctionError when the function itself failed (its records count as failed),
        TransformUnavailableError when it could not run (nothing can be decided yet).
        """


class LambdaTransformInvoker(TransformInvoker):
    """AWS Lambda's Invoke API, RequestResponse, as Firehose calls the transform."""

    def invoke(self, function_arn: str, event: dict[str, Any]) -> Any:
        # https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html: a function error is a
        # 200 response with FunctionError (Handled / Unhandled) and the error object as payload.
        try:
            response = self.aws.client("lambda").invoke(
                FunctionName=function_arn,
                InvocationType="RequestResponse",
                Payload=json.dumps(event).encode(),
            )
        except (ClientError, BotoCoreError) as exc:
            raise TransformUnavailableError(
                f"Lambda {function_arn} could not be invoked: {exc}. Check that "
                "provision_infrastructure deployed it and that your credentials may invoke it."
            ) from exc
        payload = response["Payload"].read()
        if response.get("FunctionError"):
            raise TransformFunctionError(
                f"Lambda {function_arn} failed ({response['FunctionError']}): "
                f"{payload.decode(errors='replace')[:500]}"
            )
        try:
            return json.loads(payload)
        except ValueError as exc:
            raise TransformFunctionError(
                f"Lambda {function_arn} returned a payload that is not JSON: {payload[:200]!r}"
            ) from exc


class EmbeddedTransformInvoker(TransformInvoker):
    """The artifact provisioning deployed to the emulator, loaded as the local runtime loads it."""

    lambda_cache_dir: str | None = Field(
        default=None,
        description="Where deployed artifacts are extracted (default: the local runtime's cache).",
    )
    _loader: Any = PrivateAttr(default=None)

    def _functions(self) -> Any:
        from pathlib import Path

        from sales_cdc.emulator.lambda_runtime import FunctionLoader

        if self._loader is None:
            stack = self.aws.stack()
            self._loader = FunctionLoader(
                self.aws.client("lambda"),
                self.aws.client("s3"),
                artifact_bucket=stack.bucket,
                artifact_prefix=stack.artifact_prefix,
                cache_dir=Path(self.lambda_cache_dir) if self.lambda_cache_dir else None,
                recheck_seconds=0,  # always the code deployed now
            )
        return self._loader

    def invoke(self, function_arn: str, event: dict[str, Any]) -> Any:
        from sales_cdc.emulator.lambda_runtime import FunctionLoadError

        try:
            function = self._functions().get(function_arn)
        except FunctionLoadError as exc:
            raise TransformUnavailableError(str(exc)) from exc
        try:
            return function.invoke(event)
        except Exception as exc:  # noqa: BLE001 - a raising handler is a function error
            raise TransformFunctionError(
                f"Lambda {function_arn} failed (Unhandled): {type(exc).__name__}: {exc}"
            ) from exc
