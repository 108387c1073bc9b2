"""Checks on the landing data: no error records, error rate under its threshold.

Both read bodies, so they run in a run (landing_checks, requested by landing_objects_sensor when
error objects land), never in the sensor.
"""

import dagster as dg

from sales_cdc.defs.asset_keys import ERRORS_ORDERS_CDC, RAW_ORDERS_CDC
from sales_cdc.defs.landing.objects import BatchSummary, add_error_object, error_rate
from sales_cdc.resources.aws import AwsResource
from sales_cdc.resources.query import QueryEngine, read_sql

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


def error_rate_evaluation(merged: int, errors: int, threshold: float) -> dg.AssetCheckEvaluation:
    """Fails when the share of records sent to the error prefix exceeds `threshold`."""
    rate = error_rate(merged, errors)
    return dg.AssetCheckEvaluation(
        asset_key=RAW_ORDERS_CDC,
        check_name=ERROR_RATE,
        passed=rate <= threshold,
        description=f"error rate {rate:.4%} (threshold {threshold:.2%})",
        metadata={
            "error_rate": dg.MetadataValue.float(round(rate, 6)),
            "threshold": dg.MetadataValue.float(threshold),
            "merged_records": merged,
            "error_records": errors,
        },
    )


def error_prefix_summary(aws: AwsResource) -> BatchSummary:
    """Every error record still under the error prefix (what no_error_records looks at)."""
    stack = aws.stack()
    s3 = aws.client("s3")
    summary = BatchSummary()
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=stack.bucket, Prefix=stack.errors_prefix
    )
    for page in pages:
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=stack.bucket, Key=obj["Key"])["Body"].read()
            add_error_object(summary, obj["Key"], stack.errors_prefix, body)
    return summary


def merged_records(query_engine: QueryEngine) -> int:
    """Landing records merged into the lake so far (the ledger's count; 0 before the first run)."""
    from sales_cdc.defs.lake.merge import LEDGER_TABLE  # the lake imports the landing package

    if query_engine.catalog().get_table(LEDGER_TABLE) is None:
        return 0
    return int(query_engine.query(read_sql("landing_records_merged")).one()["records"] or 0)


@dg.asset_check(
    asset=ERRORS_ORDERS_CDC,
    name=NO_ERROR_RECORDS,
    description="No record failed the transform (run by landing_objects_sensor on new error "
    "objects, and by redrive_failed_records).",
)
def no_error_records(aws: AwsResource) -> dg.AssetCheckResult:
    """Read the whole error prefix: fails if it holds any record, naming a sample reason."""
    evaluation = no_error_records_evaluation(error_prefix_summary(aws))
    return dg.AssetCheckResult(
        passed=evaluation.passed,
        description=evaluation.description,
        metadata=evaluation.metadata,
    )


@dg.asset_check(
    asset=RAW_ORDERS_CDC,
    name=ERROR_RATE,
    description="Records waiting in errors/ relative to the records merged into the lake stay "
    "under the threshold in infra/.",
)
def error_rate_check(aws: AwsResource, query_engine: QueryEngine) -> dg.AssetCheckResult:
    """Error records (read from errors/) against the landing records merged (the ledger)."""
    stack = aws.stack()
    errors = error_prefix_summary(aws)
    threshold = float(stack.section("landing")["error_rate_threshold"])
    evaluation = error_rate_evaluation(merged_records(query_engine), errors.records, threshold)
    return dg.AssetCheckResult(
        passed=evaluation.passed, description=evaluation.description, metadata=evaluation.metadata
    )
