"""redrive_failed_records: records the transform rejected, run again through the deployed transform.

Firehose writes a record the transform failed to errors/orders_cdc/processing-failed/ as a JSON
document (attemptsMade, arrivalTimestamp, errorCode, errorMessage, attemptEndingTimestamp,
rawData, lambdaArn) and leaves re-processing to its user
(https://docs.aws.amazon.com/firehose/latest/dev/data-transformation-failure-handling.html).
This job does it: each error object's records go through the transform the delivery stream uses
now; what succeeds lands in raw/ as Firehose lands it (GZIP JSON lines, under the delivery
prefix filled with the transform's partitionKeys, Firehose-style object names); what still fails
goes to the archive prefix, dated by the day Firehose wrote the object. Only then is the error
object deleted. Target keys derive from the error object, so a re-run after a crash lands nothing
twice.
"""

import base64
import binascii
import gzip
import json
import re
import time
import uuid
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import dagster as dg
from pydantic import Field

from sales_cdc.defs.landing.checks import error_prefix_summary, no_error_records_evaluation
from sales_cdc.landing_format import GZIP_MAGIC
from sales_cdc.resources.aws import AwsResource
from sales_cdc.resources.transform import TransformFunctionError, TransformInvoker

PROCESSING_FAILED = "processing-failed/"
RESULTS = ("Ok", "Dropped", "ProcessingFailed")
# Firehose invokes the transform with at most its processor buffer (1 MB by default); stay below.
INVOCATION_BYTES = 1024 * 1024
_EXPRESSION = re.compile(r"!\{([A-Za-z]+):([^}]*)\}")
_JAVA_TIME = {"yyyy": "%Y", "MM": "%m", "dd": "%d", "HH": "%H", "mm": "%M", "ss": "%S"}
_FIREHOSE_NAME = re.compile(
    r"^(?P<name>.+)-(?P<version>\d+)-(?P<stamp>\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d)-[0-9a-f-]{36}(\.\w+)?$"
)
_NAMESPACE = uuid.UUID("5b0c7f0e-8d1f-4a43-9d55-7f6a1f0c2e11")


class RedriveConfig(dg.Config):
    max_objects: int = Field(
        default=200,
        description="Error objects re-driven per run; the rest wait for the next run (reported).",
    )


@dataclass(frozen=True)
class DeliveryTarget:
    """What the delivery stream says about landing: where, how compressed, which transform."""

    name: str
    version_id: str
    bucket: str
    prefix: str
    compression: str
    lambda_arn: str
    arn: str = ""


@dataclass
class ObjectOutcome:
    """What re-driving one error object did."""

    records: int = 0
    landed: int = 0
    dropped: int = 0
    failed: int = 0
    landed_keys: list[str] = field(default_factory=list)
    already_landed: int = 0
    archive_key: str | None = None
    unreadable_object: bool = False


def delivery_target(aws: AwsResource) -> DeliveryTarget:
    """The deployed delivery stream's S3 destination and its transform Lambda."""
    stack = aws.stack()
    description = aws.client("firehose").describe_delivery_stream(
        DeliveryStreamName=stack.delivery_name
    )["DeliveryStreamDescription"]
    destination = description["Destinations"][0]["ExtendedS3DestinationDescription"]
    lambda_arn = next(
        (
            parameter["ParameterValue"]
            for processor in (destination.get("ProcessingConfiguration") or {}).get(
                "Processors", []
            )
            if processor.get("Type") == "Lambda"
            for parameter in processor.get("Parameters", [])
            if parameter.get("ParameterName") == "LambdaArn"
        ),
        None,
    )
    if lambda_arn is None:
        raise dg.Failure(
            f"Delivery stream {stack.delivery_name} has no Lambda processor: nothing to re-drive "
            "through. Run provision_infrastructure."
        )
    return DeliveryTarget(
        name=description["DeliveryStreamName"],
        version_id=str(description["VersionId"]),
        bucket=destination["BucketARN"].split(":::", 1)[-1],
        prefix=destination.get("Prefix") or "",
        compression=destination.get("CompressionFormat", "UNCOMPRESSED"),
        lambda_arn=lambda_arn,
        arn=description["DeliveryStreamARN"],
    )


class PrefixError(ValueError):
    """The delivery prefix cannot be filled for a record (a partition key is missing)."""


def landing_prefix(template: str, partition_keys: dict[str, Any], arrival: datetime) -> str:
    """The delivery prefix for one record, as Firehose evaluates it (partition keys, timestamps)."""
    if "!{timestamp:" not in template and "!{partitionKeyFrom" not in template:
        template += "!{timestamp:yyyy/MM/dd/HH}/"

    def expression(match: re.Match[str]) -> str:
        namespace, argument = match.group(1), match.group(2)
        if namespace == "partitionKeyFromLambda":
            value = partition_keys.get(argument)
            if value is None or str(value) == "":
                raise PrefixError(f"the transform returned no partition key {argument!r}")
            return str(value)
        if namespace == "timestamp":
            pattern = argument
            for java, python in _JAVA_TIME.items():
                pattern = pattern.replace(java, python)
            return arrival.astimezone(UTC).strftime(pattern)
        raise PrefixError(f"prefix expression {match.group(0)} is not supported by the re-drive")

    return _EXPRESSION.sub(expression, template)


def landing_key(
    prefix: str, target: DeliveryTarget, source_key: str, source_modified: datetime
) -> str:
    """A Firehose-style object name, the same for the same error object and partition."""
    base = source_key.rsplit("/", 1)[-1]
    match = _FIREHOSE_NAME.match(base)
    version = match.group("version") if match else target.version_id
    stamp = (
        match.group("stamp")
        if match
        else source_modified.astimezone(UTC).strftime("%Y-%m-%d-%H-%M-%S")
    )
    name = uuid.uuid5(_NAMESPACE, f"{source_key}\n{prefix}")
    extension = ".gz" if target.compression == "GZIP" else ""
    return f"{prefix}{target.name}-{version}-{stamp}-{name}{extension}"


def archive_key(
    archive_prefix: str, errors_prefix: str, source_key: str, modified: datetime
) -> str:
    """Where still-failing records of `source_key` go: <archive>/<day written>/<key below errors/>."""
    rest = source_key[len(errors_prefix) :] if source_key.startswith(errors_prefix) else source_key
    return f"{archive_prefix}{modified.astimezone(UTC).date().isoformat()}/{rest}"


def error_documents(body: bytes) -> list[dict[str, Any]]:
    """The error documents of one object (GZIP or plain JSON lines); a bad line is kept as text."""
    if body[:2] == GZIP_MAGIC:
        body = gzip.decompress(body)
    documents: list[dict[str, Any]] = []
    for line in body.splitlines():
        if not line.strip():
            continue
        try:
            document = json.loads(line)
            base64.b64decode(document["rawData"], validate=True)
        except (ValueError, KeyError, TypeError, binascii.Error):
            document = {"unreadable": line.decode(errors="replace")}
        documents.append(document)
    return documents


def _chunks(documents: list[dict[str, Any]]) -> list[list[int]]:
    chunks: list[list[int]] = []
    size = 0
    for i, document in enumerate(documents):
        record_size = len(document["rawData"]) + 256
        if not chunks or size + record_size > INVOCATION_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(i)
        size += record_size
    return chunks


def _failure(document: dict[str, Any], code: str, message: str, lambda_arn: str) -> dict[str, Any]:
    """The Firehose error document of a record that failed again."""
    return {
        "attemptsMade": int(document.get("attemptsMade") or 0) + 1,
        "arrivalTimestamp": document.get("arrivalTimestamp"),
        "errorCode": code,
        "errorMessage": message,
        "attemptEndingTimestamp": int(time.time() * 1000),
        "rawData": document["rawData"],
        "lambdaArn": lambda_arn,
    }


def transform_results(
    transform: TransformInvoker,
    target: DeliveryTarget,
    documents: list[dict[str, Any]],
    region: str,
) -> list[dict[str, Any]]:
    """One outcome per document: {"result", "data", "partitionKeys"} or a failure document."""
    outcomes: list[dict[str, Any]] = [{} for _ in documents]
    for chunk in _chunks(documents):
        ids = [f"redrive-{i:08d}" for i in chunk]
        event = {
            "invocationId": str(uuid.uuid4()),
            "deliveryStreamArn": target.arn,
            "region": region,
            "records": [
                {
                    "recordId": record_id,
                    "approximateArrivalTimestamp": documents[i].get("arrivalTimestamp"),
                    "data": documents[i]["rawData"],
                }
                for record_id, i in zip(ids, chunk, strict=True)
            ],
        }
        try:
            answered = _validated(transform.invoke(target.lambda_arn, event), ids)
        except TransformFunctionError as exc:
            answered = {rid: ("Lambda.FunctionError", str(exc)) for rid in ids}
        except _InvalidResponse as exc:
            answered = {rid: (exc.code, str(exc)) for rid in ids}
        for record_id, i in zip(ids, chunk, strict=True):
            answer = answered[record_id]
            if isinstance(answer, tuple):
                outcomes[i] = _failure(documents[i], *answer, target.lambda_arn)
            elif answer["result"] == "ProcessingFailed":
                outcomes[i] = _failure(
                    documents[i],
                    "Lambda.ProcessingFailed",
                    "The Lambda function returned ProcessingFailed for this record.",
                    target.lambda_arn,
                )
            else:
                outcomes[i] = answer
    return outcomes


class _InvalidResponse(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _validated(response: Any, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The response checked as Firehose checks it (one answer per record id, known results)."""
    # https://docs.aws.amazon.com/firehose/latest/dev/data-transformation-status-model.html
    if not isinstance(response, dict) or not isinstance(response.get("records"), list):
        raise _InvalidResponse(
            "Lambda.JsonProcessingException", "no 'records' list in the response"
        )
    answers: dict[str, dict[str, Any]] = {}
    for item in response["records"]:
        record_id = item.get("recordId") if isinstance(item, dict) else None
        if record_id not in ids or record_id in answers:
            raise _InvalidResponse(
                "Lambda.JsonProcessingException", f"unexpected or repeated recordId {record_id!r}"
            )
        result = item.get("result")
        if result not in RESULTS:
            raise _InvalidResponse(
                "Lambda.JsonProcessingException", f"record {record_id} has result {result!r}"
            )
        data = b""
        if result == "Ok":
            try:
                data = base64.b64decode(item.get("data"), validate=True)
            except (TypeError, ValueError, binascii.Error):
                raise _InvalidResponse(
                    "Lambda.JsonProcessingException", f"record {record_id} data is not base64"
                ) from None
        metadata = item.get("metadata") if isinstance(item.get("metadata"), dict) else {}
        keys = metadata.get("partitionKeys")
        answers[record_id] = {
            "result": result,
            "data": data,
            "partitionKeys": keys if isinstance(keys, dict) else {},
        }
    if len(answers) != len(ids):
        raise _InvalidResponse(
            "Lambda.MissingRecordId", f"{len(ids) - len(answers)} record(s) not in the response"
        )
    return answers


def redrive_object(
    aws: AwsResource,
    transform: TransformInvoker,
    target: DeliveryTarget,
    source_key: str,
    source_modified: datetime,
) -> ObjectOutcome:
    """Re-drive one error object: land successes, archive failures, then delete it."""
    stack = aws.stack()
    s3 = aws.client("s3")
    body = s3.get_object(Bucket=stack.bucket, Key=source_key)["Body"].read()
    archive = archive_key(
        stack.section("lake")["errors_archive_prefix"],
        stack.errors_prefix,
        source_key,
        source_modified,
    )
    try:
        documents = error_documents(body)
    except (OSError, EOFError, zlib.error):
        # Not GZIP after all, or truncated: nothing to re-drive; archived as it is, for a person.
        s3.put_object(Bucket=stack.bucket, Key=archive, Body=body)
        s3.delete_object(Bucket=stack.bucket, Key=source_key)
        return ObjectOutcome(archive_key=archive, unreadable_object=True)
    outcome = ObjectOutcome(records=len(documents))
    readable = [d for d in documents if "unreadable" not in d]
    failures: list[dict[str, Any]] = [d for d in documents if "unreadable" in d]
    landing: OrderedDict[str, list[bytes]] = OrderedDict()
    results = transform_results(transform, target, readable, aws.settings.region)
    for document, result in zip(readable, results, strict=True):
        if "errorCode" in result:
            failures.append(result)
        elif result["result"] == "Dropped":
            outcome.dropped += 1
        else:
            arrival = datetime.fromtimestamp(
                int(document.get("arrivalTimestamp") or 0) / 1000, tz=UTC
            )
            try:
                prefix = landing_prefix(target.prefix, result["partitionKeys"], arrival)
            except PrefixError as exc:
                failures.append(
                    _failure(
                        document,
                        "DynamicPartitioning.MetadataExtractionFailed",
                        str(exc),
                        target.lambda_arn,
                    )
                )
                continue
            landing.setdefault(prefix, []).append(result["data"])
            outcome.landed += 1
    for prefix, rows in landing.items():
        key = landing_key(prefix, target, source_key, source_modified)
        outcome.landed_keys.append(key)
        if _exists(s3, target.bucket, key):
            outcome.already_landed += 1  # landed by a run that stopped before the delete
            continue
        data = b"".join(rows)
        if target.compression == "GZIP":
            data = gzip.compress(data, compresslevel=6, mtime=0)
        s3.put_object(Bucket=target.bucket, Key=key, Body=data)
    outcome.failed = len(failures)
    if failures:
        outcome.archive_key = archive
        lines = b"".join(
            (d["unreadable"].encode() if "unreadable" in d else json.dumps(d).encode()) + b"\n"
            for d in failures
        )
        s3.put_object(
            Bucket=stack.bucket, Key=outcome.archive_key, Body=gzip.compress(lines, mtime=0)
        )
    s3.delete_object(Bucket=stack.bucket, Key=source_key)
    return outcome


def _exists(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except s3.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True


def processing_failed_objects(aws: AwsResource) -> list[dict[str, Any]]:
    """Error objects of the processing-failed type, oldest first."""
    stack = aws.stack()
    paginator = aws.client("s3").get_paginator("list_objects_v2")
    objects = [
        obj
        for page in paginator.paginate(
            Bucket=stack.bucket, Prefix=f"{stack.errors_prefix}{PROCESSING_FAILED}"
        )
        for obj in page.get("Contents", [])
    ]
    return sorted(objects, key=lambda o: (o["LastModified"], o["Key"]))


@dg.op(
    name="redrive_processing_failed",
    description="Run processing-failed records through the deployed transform again; land or archive.",
)
def redrive_processing_failed(
    context: dg.OpExecutionContext,
    config: RedriveConfig,
    aws: AwsResource,
    transform: TransformInvoker,
) -> dg.Output[None]:
    """Re-drive up to max_objects error objects, then re-evaluate no_error_records."""
    target = delivery_target(aws)
    pending = processing_failed_objects(aws)
    batch = pending[: config.max_objects]
    totals = ObjectOutcome()
    partitions: set[str] = set()
    archived: list[str] = []
    unreadable = 0
    for obj in batch:
        outcome = redrive_object(aws, transform, target, obj["Key"], obj["LastModified"])
        context.log.info(
            f"{obj['Key']}: {outcome.records} records, {outcome.landed} landed, "
            f"{outcome.dropped} dropped, {outcome.failed} archived"
        )
        totals.records += outcome.records
        totals.landed += outcome.landed
        totals.dropped += outcome.dropped
        totals.failed += outcome.failed
        totals.already_landed += outcome.already_landed
        unreadable += outcome.unreadable_object
        totals.landed_keys += outcome.landed_keys
        partitions.update(k.rsplit("/", 1)[0] for k in outcome.landed_keys)
        if outcome.archive_key:
            archived.append(outcome.archive_key)
    summary = error_prefix_summary(aws)
    context.log_event(no_error_records_evaluation(summary))
    return dg.Output(
        None,
        metadata={
            "error_objects_redriven": len(batch),
            "error_objects_remaining": len(pending) - len(batch),
            "records_read": totals.records,
            "records_landed": totals.landed,
            "records_dropped": totals.dropped,
            "records_archived": totals.failed,
            "unreadable_objects_archived": unreadable,
            "landing_objects_written": len(totals.landed_keys) - totals.already_landed,
            "landing_objects_already_there": totals.already_landed,
            "error_records_left": summary.records,
            "transform": target.lambda_arn,
            "landing_partitions": dg.MetadataValue.json(sorted(partitions)),
            "archive_objects": dg.MetadataValue.json(archived),
        },
    )


@dg.job(
    name="redrive_failed_records",
    description=(
        "Re-drive errors/orders_cdc/processing-failed/ through the deployed transform: what "
        "succeeds lands in raw/orders_cdc/, what still fails moves to the dated archive prefix."
    ),
)
def redrive_failed_records() -> None:
    redrive_processing_failed()
