"""provision_infrastructure and teardown_infrastructure: ops jobs whose graphs show the order."""

from typing import Any

import dagster as dg

from sales_cdc.defs.infrastructure import provision, teardown
from sales_cdc.defs.infrastructure.provision import Outcome
from sales_cdc.defs.infrastructure.raw_table import ensure_raw_table
from sales_cdc.resources.aws import AwsResource


def _report(context: dg.OpExecutionContext, outcomes: Outcome | list[Outcome]) -> dg.Output:
    outcomes = outcomes if isinstance(outcomes, list) else [outcomes]
    metadata: dict[str, Any] = {}
    for outcome in outcomes:
        changes = f" ({', '.join(outcome.changes)})" if outcome.changes else ""
        context.log.info(f"{outcome.resource} {outcome.name}: {outcome.action}{changes}")
        prefix = "" if len(outcomes) == 1 else f"{outcome.name}."
        metadata.update({f"{prefix}{k}": v for k, v in outcome.metadata().items()})
    summary = [
        {"resource": o.resource, "name": o.name, "action": o.action, "changes": list(o.changes)}
        for o in outcomes
    ]
    return dg.Output(summary, metadata=metadata)


AFTER = {"after": dg.In(dg.Nothing)}


# -- provisioning ----------------------------------------------------------------------------


@dg.op(description="Validate infra/stack.yaml and every AWS name before anything is created.")
def stack_declaration(context: dg.OpExecutionContext, aws: AwsResource) -> None:
    stack = aws.stack()  # raises SettingsError naming every problem
    context.log.info(
        f"Stack {stack.settings.prefix!r} valid for {stack.settings.env} "
        f"(account {stack.account}, region {stack.settings.region})"
    )


@dg.op(
    ins=AFTER,
    description="S3 lake bucket: public access blocked, default encryption, HTTPS-only policy.",
)
def lake_bucket(context: dg.OpExecutionContext, aws: AwsResource) -> dg.Output:
    return _report(context, provision.ensure_bucket(aws, aws.stack()))


def _role_op(service: str) -> dg.OpDefinition:
    @dg.op(
        name=f"{service}_role",
        ins=AFTER,
        description=f"IAM role of the {service}, least privilege.",
    )
    def _op(context: dg.OpExecutionContext, aws: AwsResource) -> dg.Output:
        return _report(context, provision.ensure_role(aws, aws.stack(), service))

    return _op


pipe_role = _role_op("pipe")
firehose_role = _role_op("firehose")
transform_role = _role_op("transform")
crawler_role = _role_op("crawler")


@dg.op(
    ins=AFTER,
    description="Transform Lambda zip built from sales_cdc/transform/, stored under its sha256.",
)
def transform_artifact(context: dg.OpExecutionContext, aws: AwsResource) -> dg.Output:
    outcome = provision.ensure_transform_artifact(aws, aws.stack())
    output = _report(context, outcome)
    output.value[0].update(outcome.details)
    return output


@dg.op(
    ins={"artifact": dg.In(list), "after": dg.In(dg.Nothing)},
    description="Transform Lambda (python3.12), deployed from the artifact in S3.",
)
def transform_function(
    context: dg.OpExecutionContext, aws: AwsResource, artifact: list
) -> dg.Output:
    details = artifact[0]
    outcome = provision.ensure_transform_function(
        aws, aws.stack(), details["s3_key"], details["code_sha256"]
    )
    return _report(context, outcome)


@dg.op(ins=AFTER, description="DynamoDB OrderTable with its NEW_AND_OLD_IMAGES stream.")
def order_table(context: dg.OpExecutionContext, aws: AwsResource) -> dg.Output:
    return _report(context, provision.ensure_order_table(aws, aws.stack()))


@dg.op(ins=AFTER, description="Kinesis stream between the pipe and Firehose.")
def cdc_stream(context: dg.OpExecutionContext, aws: AwsResource) -> dg.Output:
    return _report(context, provision.ensure_cdc_stream(aws, aws.stack()))


@dg.op(ins=AFTER, description="SQS dead-letter queue of the pipe.")
def dead_letter_queue(context: dg.OpExecutionContext, aws: AwsResource) -> dg.Output:
    return _report(context, provision.ensure_dead_letter_queue(aws, aws.stack()))


@dg.op(ins=AFTER, description="CloudWatch log group and stream for Firehose errors.")
def delivery_log_group(context: dg.OpExecutionContext, aws: AwsResource) -> dg.Output:
    return _report(context, provision.ensure_delivery_log_group(aws, aws.stack()))


@dg.op(
    ins=AFTER,
    description="EventBridge Pipe: OrderTable stream -> Kinesis, partition key orderId, bounded retries, DLQ.",
)
def cdc_pipe(context: dg.OpExecutionContext, aws: AwsResource) -> dg.Output:
    return _report(context, provision.ensure_cdc_pipe(aws, aws.stack()))


@dg.op(
    ins=AFTER,
    description="Firehose: Kinesis -> transform Lambda -> S3 raw/orders_cdc/, GZIP, dynamic partitions, error logs.",
)
def delivery_stream(context: dg.OpExecutionContext, aws: AwsResource) -> dg.Output:
    return _report(context, provision.ensure_delivery_stream(aws, aws.stack()))


@dg.op(ins=AFTER, description="Glue database of the lake.")
def glue_database(context: dg.OpExecutionContext, aws: AwsResource) -> dg.Output:
    return _report(context, provision.ensure_glue_database(aws, aws.stack()))


@dg.op(ins=AFTER, description="Glue crawler over raw/orders_cdc/.")
def glue_crawler(context: dg.OpExecutionContext, aws: AwsResource) -> dg.Output:
    return _report(context, provision.ensure_crawler(aws, aws.stack()))


@dg.op(
    ins=AFTER,
    description="Glue table orders_cdc declared from the landing contract (types never left to a crawl).",
)
def raw_table(context: dg.OpExecutionContext, aws: AwsResource) -> dg.Output:
    return _report(context, ensure_raw_table(aws, aws.stack()))


@dg.op(ins=AFTER, description="Athena workgroup with its result location in the lake bucket.")
def athena_workgroup(context: dg.OpExecutionContext, aws: AwsResource) -> dg.Output:
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
    ins={"results": dg.In(list)},
    description="What this run created, updated or left unchanged.",
)
def provisioning_summary(context: dg.OpExecutionContext, results: list) -> dg.Output:
    return _summarize(context, results, "provisioning")


@dg.job(description="Create or update the whole stack declared in infra/ (idempotent).")
def provision_infrastructure() -> None:
    # The one resource ordering of the stack: provision_all() runs this graph too.
    valid = stack_declaration()
    bucket = lake_bucket(after=valid)
    roles = {
        "pipe": pipe_role(after=valid),
        "firehose": firehose_role(after=valid),
        "transform": transform_role(after=valid),
        "crawler": crawler_role(after=valid),
    }
    queue = dead_letter_queue(after=valid)
    log_group = delivery_log_group(after=valid)
    artifact = transform_artifact(after=bucket)
    function = transform_function(artifact=artifact, after=roles["transform"])
    table = order_table(after=valid)
    stream = cdc_stream(after=valid)
    pipe = cdc_pipe(after=[table, stream, roles["pipe"], queue])
    delivery = delivery_stream(after=[stream, function, bucket, roles["firehose"], log_group])
    database = glue_database(after=bucket)
    crawler = glue_crawler(after=[database, roles["crawler"]])
    declared_raw_table = raw_table(after=database)
    workgroup = athena_workgroup(after=bucket)
    provisioning_summary(
        results=[
            bucket,
            *roles.values(),
            queue,
            log_group,
            artifact,
            function,
            table,
            stream,
            pipe,
            delivery,
            database,
            crawler,
            declared_raw_table,
            workgroup,
        ]
    )


# -- teardown --------------------------------------------------------------------------------


class TeardownConfig(dg.Config):
    """Safety catch: in aws, repeat the prefix of the deployment to delete."""

    confirm_prefix: str = ""


@dg.op(description="Refuse to delete an AWS deployment unless its prefix is confirmed.")
def confirm_teardown(
    context: dg.OpExecutionContext, config: TeardownConfig, aws: AwsResource
) -> None:
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


def _teardown_op(name: str, fn: Any, description: str) -> dg.OpDefinition:
    @dg.op(name=name, ins=AFTER, description=description)
    def _op(context: dg.OpExecutionContext, aws: AwsResource) -> dg.Output:
        return _report(context, fn(aws, aws.stack()))

    return _op


remove_crawler = _teardown_op("remove_crawler", teardown.delete_crawler, "Delete the crawler.")
remove_workgroup = _teardown_op(
    "remove_workgroup", teardown.delete_workgroup, "Delete the Athena workgroup."
)
remove_glue_database = _teardown_op(
    "remove_glue_database", teardown.delete_glue_database, "Delete the database and its tables."
)
remove_delivery_stream = _teardown_op(
    "remove_delivery_stream", teardown.delete_delivery_stream, "Delete the Firehose stream."
)
remove_delivery_log_group = _teardown_op(
    "remove_delivery_log_group",
    teardown.delete_delivery_log_group,
    "Delete Firehose's error log group.",
)
remove_pipe = _teardown_op("remove_pipe", teardown.delete_pipe, "Delete the pipe.")
remove_dead_letter_queue = _teardown_op(
    "remove_dead_letter_queue", teardown.delete_dead_letter_queue, "Delete the pipe's DLQ."
)
remove_transform_function = _teardown_op(
    "remove_transform_function", teardown.delete_transform_function, "Delete the Lambda."
)
remove_cdc_stream = _teardown_op(
    "remove_cdc_stream", teardown.delete_cdc_stream, "Delete the Kinesis stream."
)
remove_tables = _teardown_op(
    "remove_tables", teardown.delete_tables, "Delete OrderTable and the runtime checkpoints."
)
remove_roles = _teardown_op("remove_roles", teardown.delete_roles, "Delete the service roles.")
remove_bucket = _teardown_op(
    "remove_bucket", teardown.delete_bucket, "Empty and delete the lake bucket."
)


@dg.op(ins={"results": dg.In(list)}, description="What this run deleted.")
def teardown_summary(context: dg.OpExecutionContext, results: list) -> dg.Output:
    return _summarize(context, results, "teardown")


@dg.job(description="Delete every resource of the stack, in reverse order.")
def teardown_infrastructure() -> None:
    go = confirm_teardown()
    crawler = remove_crawler(after=go)
    workgroup = remove_workgroup(after=go)
    database = remove_glue_database(after=crawler)
    delivery = remove_delivery_stream(after=go)
    log_group = remove_delivery_log_group(after=delivery)
    pipe = remove_pipe(after=go)
    queue = remove_dead_letter_queue(after=pipe)
    function = remove_transform_function(after=delivery)
    stream = remove_cdc_stream(after=[pipe, delivery])
    tables = remove_tables(after=pipe)
    roles = remove_roles(after=[pipe, delivery, function, crawler])
    bucket = remove_bucket(after=[delivery, function, database, workgroup])
    teardown_summary(
        results=[
            crawler,
            workgroup,
            database,
            delivery,
            log_group,
            pipe,
            queue,
            function,
            stream,
            tables,
            roles,
            bucket,
        ]
    )
