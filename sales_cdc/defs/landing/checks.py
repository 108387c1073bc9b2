"""Checks on the landing data: no new error records, error rate under its threshold."""

import dagster as dg

from sales_cdc.defs.landing.assets import ERRORS_ORDERS_CDC, RAW_ORDERS_CDC
from sales_cdc.defs.landing.objects import (
    BatchSummary,
    add_error_object,
    add_landing_object,
    error_rate,
)
from sales_cdc.resources.aws import AwsResource

NO_ERROR_RECORDS = "no_error_records"
ERROR_RATE = "error_rate"


def no_error_records_evaluation(errors: BatchSummary) -> dg.AssetCheckEvaluation:
    """Fails when error records appeared, showing a sample reason."""
    return dg.AssetCheckEvaluation(
        asset_key=ERRORS_ORDERS_CDC,
        check_name=NO_ERROR_RECORDS,
        passed=errors.records == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"{errors.records} error records: {errors.sample_errors[0]}"
            if errors.records
            else "no error records"
        ),
        metadata={
            "error_records": errors.records,
            "error_objects": errors.objects,
            "error_codes": dg.MetadataValue.json(dict(errors.error_codes)),
            "sample_reasons": dg.MetadataValue.md(
                "\n".join(f"- `{s}`" for s in errors.sample_errors) or "none"
            ),
        },
    )


def error_rate_evaluation(landed: int, errors: int, threshold: float) -> dg.AssetCheckEvaluation:
    """Fails when the share of records sent to the error prefix exceeds `threshold`."""
    rate = error_rate(landed, errors)
    return dg.AssetCheckEvaluation(
        asset_key=RAW_ORDERS_CDC,
        check_name=ERROR_RATE,
        passed=rate <= threshold,
        description=f"error rate {rate:.4%} (threshold {threshold:.2%})",
        metadata={
            "error_rate": dg.MetadataValue.float(round(rate, 6)),
            "threshold": dg.MetadataValue.float(threshold),
            "landed_records": landed,
            "error_records": errors,
        },
    )


def _scan(aws: AwsResource, prefix: str, reader) -> BatchSummary:
    stack = aws.stack()
    s3 = aws.client("s3")
    summary = BatchSummary()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=stack.bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=stack.bucket, Key=obj["Key"])["Body"].read()
            reader(summary, obj["Key"], prefix, body)
    return summary


@dg.asset_check(
    asset=ERRORS_ORDERS_CDC,
    name=NO_ERROR_RECORDS,
    description="No record failed the transform (the sensor evaluates it on every new batch).",
)
def no_error_records(aws: AwsResource) -> dg.AssetCheckResult:
    """Scan the whole error prefix: fails if it holds any record."""
    evaluation = no_error_records_evaluation(
        _scan(aws, aws.stack().errors_prefix, add_error_object)
    )
    return dg.AssetCheckResult(
        passed=evaluation.passed,
        description=evaluation.description,
        metadata=evaluation.metadata,
    )


@dg.asset_check(
    asset=RAW_ORDERS_CDC,
    name=ERROR_RATE,
    description="Error records relative to landed records stay under the threshold in infra/.",
)
def error_rate_check(aws: AwsResource) -> dg.AssetCheckResult:
    """Scan both prefixes and compare the error rate with its threshold."""
    stack = aws.stack()
    landed = _scan(aws, stack.raw_prefix, add_landing_object)
    errors = _scan(aws, stack.errors_prefix, add_error_object)
    threshold = float(stack.section("landing")["error_rate_threshold"])
    evaluation = error_rate_evaluation(landed.records, errors.records, threshold)
    return dg.AssetCheckResult(
        passed=evaluation.passed, description=evaluation.description, metadata=evaluation.metadata
    )
