"""Drive the whole pipeline in the deployment the environment names, as the aws tests need it.

Run in a process of its own (the code location reads SALES_CDC_ENV and SALES_CDC_PREFIX when it
loads): `python -m sales_cdc_tests.aws.pipeline run` provisions, generates, waits for Firehose to
land every change, crawls, builds orders_current and the aggregates with their checks, and prints
one JSON report as its last line; `... teardown` deletes the deployment and reports leftovers.
It also runs against the embedded stack (SALES_CDC_ENV=local with `sales-cdc runtime` running),
which is how it is checked without an AWS account.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

import dagster as dg

LANDING_TIMEOUT_SECONDS = 15 * 60  # Firehose buffers up to buffering_interval_seconds (60 in aws)
GENERATOR_RUNS = 3


def _job(defs: dg.Definitions, name: str, keys: list[dg.AssetKey]) -> Any:
    """An asset job over `keys` (with their checks), resolved against the code location."""
    job = dg.define_asset_job(name, selection=dg.AssetSelection.assets(*keys))
    return dg.Definitions.merge(defs, dg.Definitions(jobs=[job])).resolve_job_def(name)


def _checks(result: Any) -> dict[str, bool]:
    return {
        f"{e.asset_key.to_user_string()}:{e.check_name}": e.passed
        for e in result.get_asset_check_evaluations()
    }


def _failures(result: Any) -> list[str]:
    """The failed steps of a run, with the first line of their error."""
    return [
        f"{e.step_key}: {(e.event_specific_data.error.message or '').strip().splitlines()[0]}"
        for e in result.all_events
        if e.is_step_failure and e.event_specific_data and e.event_specific_data.error
    ]


def _metadata(result: Any, key: dg.AssetKey) -> dict[str, Any]:
    (materialization,) = [
        m for m in result.get_asset_materialization_events() if m.asset_key == key
    ]
    return {
        k: getattr(v, "value", v)
        for k, v in materialization.materialization.metadata.items()
        if isinstance(getattr(v, "value", v), int | float | str)
    }


def _landed_rows(aws: Any) -> int:
    stack = aws.stack()
    s3 = aws.client("s3")
    rows = 0
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=stack.bucket, Prefix=stack.raw_prefix
    ):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=stack.bucket, Key=obj["Key"])["Body"].read()
            if body[:2] == b"\x1f\x8b":
                body = gzip.decompress(body)
            rows += sum(1 for line in body.splitlines() if line.strip())
    return rows


def _raw_table_columns(aws: Any) -> dict[str, str] | None:
    stack = aws.stack()
    try:
        table = aws.client("glue").get_table(DatabaseName=stack.database, Name=stack.raw_table)
    except aws.client("glue").exceptions.EntityNotFoundException:
        return None
    return {c["Name"]: c["Type"] for c in table["Table"]["StorageDescriptor"]["Columns"]}


def _order_days(aws: Any) -> list[str]:
    stack = aws.stack()
    days: set[str] = set()
    paginator = aws.client("dynamodb").get_paginator("scan")
    for page in paginator.paginate(TableName=stack.table_name, ProjectionExpression="createdAt"):
        days.update(item["createdAt"]["S"][:10] for item in page["Items"] if "createdAt" in item)
    return sorted(days)


def run() -> dict[str, Any]:
    from sales_cdc.definitions import defs
    from sales_cdc.defs.infrastructure.jobs import provision_infrastructure
    from sales_cdc.defs.landing.dead_letters import (
        dead_letter_queue_empty,
        orders_cdc_dead_letters,
    )

    report: dict[str, Any] = {"steps": []}
    instance = dg.DagsterInstance.ephemeral()
    resources = defs.resources
    aws = resources["aws"]

    def step(name: str, **facts: Any) -> None:
        report["steps"].append(name)
        report[name] = facts
        print(json.dumps({"step": name, **facts}, default=str), file=sys.stderr, flush=True)

    first = provision_infrastructure.execute_in_process(resources=resources, instance=instance)
    rows = first.output_for_node("provisioning_summary")
    step("provision", actions=sorted({r["action"] for r in rows}), resources=len(rows))
    again = provision_infrastructure.execute_in_process(resources=resources, instance=instance)
    rows = again.output_for_node("provisioning_summary")
    step("provision_again", actions=sorted({r["action"] for r in rows}))

    raw_table_declared = importlib.util.find_spec("sales_cdc.defs.infrastructure.raw_table")
    step(
        "raw_table_before_crawl",
        declared_by_provisioning=raw_table_declared is not None,
        columns=_raw_table_columns(aws),
    )

    orders_key = dg.AssetKey(["dynamodb", "orders"])
    generator = _job(defs, "aws_test_generate", [orders_key])
    writes = 0
    for _ in range(GENERATOR_RUNS):
        result = generator.execute_in_process(instance=instance)
        facts = _metadata(result, orders_key)
        writes += int(facts["inserted"]) + int(facts["updated"]) + int(facts["deleted"])
    step("generate", writes=writes)

    started = time.monotonic()
    landed = 0
    while time.monotonic() - started < LANDING_TIMEOUT_SECONDS:
        landed = _landed_rows(aws)
        if landed >= writes:
            break
        time.sleep(15)
    step("land", rows=landed, expected_at_least=writes, seconds=round(time.monotonic() - started))
    if landed < writes:
        report["failed"] = "land"
        return report

    crawl = _job(defs, "aws_test_crawl", [dg.AssetKey(["glue", "orders_cdc"])])
    result = crawl.execute_in_process(instance=instance, raise_on_error=False)
    step(
        "crawl",
        success=result.success,
        checks=_checks(result),
        failures=_failures(result),
        columns=_raw_table_columns(aws),
    )

    current = _job(defs, "aws_test_orders_current", [dg.AssetKey(["athena", "orders_current"])])
    result = current.execute_in_process(instance=instance, raise_on_error=False)
    step(
        "orders_current",
        success=result.success,
        checks=_checks(result),
        failures=_failures(result),
    )

    aggregates = [
        key
        for key in defs.resolve_asset_graph().get_all_asset_keys()
        if key.path[0] == "athena" and key.path[-1] != "orders_current"
    ]
    aggregate_job = _job(defs, "aws_test_aggregates", aggregates)
    days = _order_days(aws)
    results = []
    for day in days:
        partitions = defs.resolve_assets_def(aggregates[0]).partitions_def
        if isinstance(partitions, dg.DynamicPartitionsDefinition) and partitions.name:
            instance.add_dynamic_partitions(partitions.name, [day])
        result = aggregate_job.execute_in_process(
            instance=instance, partition_key=day, raise_on_error=False
        )
        results.append((day, result.success, _checks(result), _failures(result)))
    step(
        "aggregates",
        days=days,
        success=all(ok for _, ok, _, _ in results),
        checks={
            f"{day}/{name}": ok for day, _, checks, _ in results for name, ok in checks.items()
        },
        failures=[f"{day}: {failure}" for day, _, _, failures in results for failure in failures],
    )

    dead_letters = dg.Definitions(
        assets=[orders_cdc_dead_letters],
        asset_checks=[dead_letter_queue_empty],
        resources=resources,
        jobs=[
            dg.define_asset_job(
                "aws_test_dead_letters", selection=dg.AssetSelection.all_asset_checks()
            )
        ],
    ).resolve_job_def("aws_test_dead_letters")
    result = dead_letters.execute_in_process(instance=instance, raise_on_error=False)
    step("dead_letters", checks=_checks(result))

    stack = aws.stack()
    groups = aws.client("logs").describe_log_groups(logGroupNamePrefix=stack.delivery_log_group)
    step(
        "firehose_error_logging",
        log_group=stack.delivery_log_group,
        exists=any(g["logGroupName"] == stack.delivery_log_group for g in groups["logGroups"]),
    )
    return report


def leftovers(aws: Any) -> list[str]:
    """Every resource of the deployment's prefix still there."""
    stack = aws.stack()
    prefix = stack.settings.prefix
    client = aws.client
    found = [t for t in client("dynamodb").list_tables()["TableNames"] if t.startswith(prefix)]
    found += [s for s in client("kinesis").list_streams()["StreamNames"] if s.startswith(prefix)]
    found += [p["Name"] for p in client("pipes").list_pipes(NamePrefix=prefix)["Pipes"]]
    found += [
        f["FunctionName"]
        for page in client("lambda").get_paginator("list_functions").paginate()
        for f in page["Functions"]
        if f["FunctionName"].startswith(prefix)
    ]
    found += [
        d
        for d in client("firehose").list_delivery_streams()["DeliveryStreamNames"]
        if d.startswith(prefix)
    ]
    found += [
        b["Name"] for b in client("s3").list_buckets()["Buckets"] if b["Name"] == stack.bucket
    ]
    found += [c for c in client("glue").list_crawlers()["CrawlerNames"] if c.startswith(prefix)]
    found += [
        w["Name"]
        for w in client("athena").list_work_groups()["WorkGroups"]
        if w["Name"].startswith(prefix)
    ]
    found += [
        stack.role_name(s)
        for s in stack.role_services()
        if _present(lambda s=s: client("iam").get_role(RoleName=stack.role_name(s)))
    ]
    found += client("sqs").list_queues(QueueNamePrefix=prefix).get("QueueUrls", [])
    found += [
        g["logGroupName"]
        for g in client("logs").describe_log_groups(logGroupNamePrefix=stack.delivery_log_group)[
            "logGroups"
        ]
    ]
    if _present(lambda: client("glue").get_database(Name=stack.database)):
        found.append(stack.database)
    return found


def _present(call: Any) -> bool:
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - any "not found" error means absent
        if "NotFound" in type(exc).__name__ or "NoSuchEntity" in type(exc).__name__:
            return False
        raise
    return True


def teardown() -> dict[str, Any]:
    from sales_cdc.definitions import defs
    from sales_cdc.defs.infrastructure.jobs import teardown_infrastructure

    aws = defs.resources["aws"]
    prefix = aws.stack().settings.prefix
    result = teardown_infrastructure.execute_in_process(
        resources=defs.resources,
        run_config={"ops": {"confirm_teardown": {"config": {"confirm_prefix": prefix}}}},
        raise_on_error=False,
    )
    return {"success": result.success, "leftovers": leftovers(aws)}


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "run"
    started = datetime.now(UTC).isoformat()
    report = run() if command == "run" else teardown()
    report["started"] = started
    print(json.dumps(report, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
