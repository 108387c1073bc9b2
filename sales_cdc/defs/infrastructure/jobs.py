"""provision_infrastructure and teardown_infrastructure: ops jobs whose graphs show the order."""

from typing import Any

import dagster as dg

from sales_cdc.defs.infrastructure import provision, teardown
from sales_cdc.defs.infrastructure.provision import Outcome
from sales_cdc.resources.aws import AwsResource


def _report(context: dg.OpExecutionContext, outcomes: Outcome | list[Outcome]) -> dg.Output:
    outcomes = outcomes if isinstance(outcomes, list) else [outcomes]
    metadata: dict[str, Any] = {}
    for outcome in outcomes:
        changes = f" ({', '.join(outcome.changes)})" if outcome.changes else ""
        context.log.info(f"{outcome.resource} {outcome.name}: {outcome.action}{changes}")
        prefix = "" if len(outcomes) == 1 else f"{outcome.name}."
        metadata.update({f"{prefix}{k}": v for k, v in outcome.metadata().items()})
    summary = [{"resource": o.resource, "name": o.name, "action": o.action} for o in outcomes]
    return dg.Output(summary, metadata=metadata)


# -- provisioning ----------------------------------------------------------------------------


@dg.op(description="S3 lake bucket: public access blocked, default encryption, HTTPS-only policy.")
def lake_bucket(context: dg.OpExecutionContext, aws: AwsResource) -> dg.Output:
    return _report(context, provision.ensure_bucket(aws, aws.stack()))


def _role_op(service: str) -> dg.OpDefinition:
    @dg.op(name=f"{service}_role", description=f"IAM role of the {service}, least privilege.")
    def _op(context: dg.OpExecutionContext, aws: AwsResource) -> dg.Output:
        return _report(context, provision.ensure_role(aws, aws.stack(), service))

    return _op


pipe_role = _role_op("pipe")
firehose_role = _role_op("firehose")
transform_role = _role_op("transform")
crawler_role = _role_op("crawler")


@dg.op(description="Transform Lambda zip built from sales_cdc/transform/, stored under its sha256.")
def transform_artifact(context: dg.OpExecutionContext, aws: AwsResource, bucket: list) -> dg.Output:
    outcome = provision.ensure_transform_artifact(aws, aws.stack())
    output = _report(context, outcome)
    output.value[0].update(outcome.details)
    return output


@dg.op(description="Transform Lambda (python3.12), deployed from the artifact in S3.")
def transform_function(
    context: dg.OpExecutionContext, aws: AwsResource, artifact: list, role: list
) -> dg.Output:
    details = artifact[0]
    outcome = provision.ensure_transform_function(
        aws, aws.stack(), details["s3_key"], details["code_sha256"]
    )
    return _report(context, outcome)


@dg.op(description="DynamoDB OrderTable with its NEW_AND_OLD_IMAGES stream.")
def order_table(context: dg.OpExecutionContext, aws: AwsResource) -> dg.Output:
    return _report(context, provision.ensure_order_table(aws, aws.stack()))


@dg.op(description="Kinesis stream between the pipe and Firehose.")
def cdc_stream(context: dg.OpExecutionContext, aws: AwsResource) -> dg.Output:
    return _report(context, provision.ensure_cdc_stream(aws, aws.stack()))


@dg.op(description="EventBridge Pipe: OrderTable stream -> Kinesis, partition key orderId.")
def cdc_pipe(
    context: dg.OpExecutionContext, aws: AwsResource, table: list, stream: list, role: list
) -> dg.Output:
    return _report(context, provision.ensure_cdc_pipe(aws, aws.stack()))


@dg.op(
    description="Firehose: Kinesis -> transform Lambda -> S3 raw/orders_cdc/, GZIP, dynamic partitions."
)
def delivery_stream(
    context: dg.OpExecutionContext,
    aws: AwsResource,
    stream: list,
    function: list,
    bucket: list,
    role: list,
) -> dg.Output:
    return _report(context, provision.ensure_delivery_stream(aws, aws.stack()))


@dg.op(description="Glue database of the lake.")
def glue_database(context: dg.OpExecutionContext, aws: AwsResource, bucket: list) -> dg.Output:
    return _report(context, provision.ensure_glue_database(aws, aws.stack()))


@dg.op(description="Glue crawler over raw/orders_cdc/.")
def glue_crawler(
    context: dg.OpExecutionContext, aws: AwsResource, database: list, role: list
) -> dg.Output:
    return _report(context, provision.ensure_crawler(aws, aws.stack()))


@dg.op(description="Athena workgroup with its result location in the lake bucket.")
def athena_workgroup(context: dg.OpExecutionContext, aws: AwsResource, bucket: list) -> dg.Output:
    return _report(context, provision.ensure_workgroup(aws, aws.stack()))


def _summarize(context: dg.OpExecutionContext, results: list[list[dict]], verb: str) -> dg.Output:
    rows = [row for result in results for row in result]
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["action"]] = counts.get(row["action"], 0) + 1
    if set(counts) <= {"unchanged", "absent"}:
        context.log.info(f"{verb}: nothing to do, every resource is already as declared in infra/.")
    else:
        context.log.info(f"{verb}: " + ", ".join(f"{n} {a}" for a, n in sorted(counts.items())))
    table = "\n".join(
        ["| resource | name | action |", "|---|---|---|"]
        + [f"| {r['resource']} | {r['name']} | {r['action']} |" for r in rows]
    )
    metadata: dict[str, Any] = {
        a: counts.get(a, 0) for a in ("created", "updated", "unchanged", "deleted", "absent")
    }
    metadata["changed_anything"] = not set(counts) <= {"unchanged", "absent"}
    metadata["resources"] = dg.MetadataValue.md(table)
    return dg.Output(rows, metadata=metadata)


@dg.op(
    ins={
        name: dg.In(list)
        for name in (
            "bucket",
            "roles_pipe",
            "roles_firehose",
            "roles_transform",
            "roles_crawler",
            "artifact",
            "function",
            "table",
            "stream",
            "pipe",
            "delivery",
            "database",
            "crawler",
            "workgroup",
        )
    },
    description="What this run created, updated or left unchanged.",
)
def provisioning_summary(context: dg.OpExecutionContext, **results: list) -> dg.Output:
    return _summarize(context, list(results.values()), "provisioning")


@dg.job(description="Create or update the whole stack declared in infra/ (idempotent).")
def provision_infrastructure() -> None:
    bucket = lake_bucket()
    roles = {
        "pipe": pipe_role(),
        "firehose": firehose_role(),
        "transform": transform_role(),
        "crawler": crawler_role(),
    }
    artifact = transform_artifact(bucket)
    function = transform_function(artifact, roles["transform"])
    table = order_table()
    stream = cdc_stream()
    pipe = cdc_pipe(table, stream, roles["pipe"])
    delivery = delivery_stream(stream, function, bucket, roles["firehose"])
    database = glue_database(bucket)
    crawler = glue_crawler(database, roles["crawler"])
    workgroup = athena_workgroup(bucket)
    provisioning_summary(
        bucket=bucket,
        roles_pipe=roles["pipe"],
        roles_firehose=roles["firehose"],
        roles_transform=roles["transform"],
        roles_crawler=roles["crawler"],
        artifact=artifact,
        function=function,
        table=table,
        stream=stream,
        pipe=pipe,
        delivery=delivery,
        database=database,
        crawler=crawler,
        workgroup=workgroup,
    )


# -- teardown --------------------------------------------------------------------------------


class TeardownConfig(dg.Config):
    """Safety catch: in aws, repeat the prefix of the deployment to delete."""

    confirm_prefix: str = ""


@dg.op(description="Refuse to delete an AWS deployment unless its prefix is confirmed.")
def confirm_teardown(
    context: dg.OpExecutionContext, config: TeardownConfig, aws: AwsResource
) -> list:
    stack = aws.stack()
    required = bool(stack.section("teardown")["require_confirmation"])
    if required and config.confirm_prefix != stack.settings.prefix:
        raise dg.Failure(
            description=(
                f"Refusing to delete the {stack.settings.env} deployment {stack.settings.prefix!r} "
                f"(account {stack.account}, region {stack.settings.region}): run config "
                f"confirm_prefix is {config.confirm_prefix!r}. To delete everything, launch "
                f"teardown_infrastructure with ops: {{confirm_teardown: {{config: "
                f"{{confirm_prefix: {stack.settings.prefix}}}}}}}."
            )
        )
    context.log.info(f"Tearing down {stack.settings.prefix!r} in {stack.settings.env}")
    return []


def _teardown_op(name: str, fn: Any, description: str, *inputs: str) -> dg.OpDefinition:
    @dg.op(name=name, ins={i: dg.In(list) for i in inputs}, description=description)
    def _op(context: dg.OpExecutionContext, aws: AwsResource, **_: list) -> dg.Output:
        return _report(context, fn(aws, aws.stack()))

    return _op


remove_crawler = _teardown_op(
    "remove_crawler", teardown.delete_crawler, "Delete the crawler.", "after"
)
remove_workgroup = _teardown_op(
    "remove_workgroup", teardown.delete_workgroup, "Delete the Athena workgroup.", "after"
)
remove_glue_database = _teardown_op(
    "remove_glue_database",
    teardown.delete_glue_database,
    "Delete the database and its tables.",
    "crawler",
)
remove_delivery_stream = _teardown_op(
    "remove_delivery_stream",
    teardown.delete_delivery_stream,
    "Delete the Firehose stream.",
    "after",
)
remove_pipe = _teardown_op("remove_pipe", teardown.delete_pipe, "Delete the pipe.", "after")
remove_transform_function = _teardown_op(
    "remove_transform_function",
    teardown.delete_transform_function,
    "Delete the Lambda.",
    "delivery",
)
remove_cdc_stream = _teardown_op(
    "remove_cdc_stream",
    teardown.delete_cdc_stream,
    "Delete the Kinesis stream.",
    "pipe",
    "delivery",
)
remove_tables = _teardown_op(
    "remove_tables",
    teardown.delete_tables,
    "Delete OrderTable and the runtime checkpoints.",
    "pipe",
)
remove_roles = _teardown_op(
    "remove_roles",
    teardown.delete_roles,
    "Delete the service roles.",
    "pipe",
    "delivery",
    "function",
    "crawler",
)
remove_bucket = _teardown_op(
    "remove_bucket",
    teardown.delete_bucket,
    "Empty and delete the lake bucket.",
    "delivery",
    "function",
    "database",
    "workgroup",
)


@dg.op(
    ins={
        n: dg.In(list)
        for n in (
            "crawler",
            "workgroup",
            "database",
            "delivery",
            "pipe",
            "function",
            "stream",
            "tables",
            "roles",
            "bucket",
        )
    },
    description="What this run deleted.",
)
def teardown_summary(context: dg.OpExecutionContext, **results: list) -> dg.Output:
    return _summarize(context, list(results.values()), "teardown")


@dg.job(description="Delete every resource of the stack, in reverse order.")
def teardown_infrastructure() -> None:
    go = confirm_teardown()
    crawler = remove_crawler(after=go)
    workgroup = remove_workgroup(after=go)
    database = remove_glue_database(crawler=crawler)
    delivery = remove_delivery_stream(after=go)
    pipe = remove_pipe(after=go)
    function = remove_transform_function(delivery=delivery)
    stream = remove_cdc_stream(pipe=pipe, delivery=delivery)
    tables = remove_tables(pipe=pipe)
    roles = remove_roles(pipe=pipe, delivery=delivery, function=function, crawler=crawler)
    bucket = remove_bucket(
        delivery=delivery, function=function, database=database, workgroup=workgroup
    )
    teardown_summary(
        crawler=crawler,
        workgroup=workgroup,
        database=database,
        delivery=delivery,
        pipe=pipe,
        function=function,
        stream=stream,
        tables=tables,
        roles=roles,
        bucket=bucket,
    )
