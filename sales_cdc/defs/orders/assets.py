"""The order generator: realistic orders written into DynamoDB OrderTable."""

import random
import time
from datetime import UTC, datetime

import dagster as dg
from faker import Faker
from pydantic import Field

from sales_cdc.defs.orders.generator import Mix, plan_changes
from sales_cdc.defs.orders.writer import apply_changes, sample_orders
from sales_cdc.resources.aws import AwsResource

ORDERS = dg.AssetKey(["dynamodb", "orders"])


class GeneratorConfig(dg.Config):
    """The mix of one generator run."""

    new_orders: int = Field(default=20, ge=0, le=10_000, description="Orders to place.")
    status_updates: int = Field(
        default=12, ge=0, le=10_000, description="Valid status transitions of existing orders."
    )
    deletes: int = Field(default=1, ge=0, le=10_000, description="Existing orders to delete.")
    seed: int | None = Field(
        default=None, description="Seed for a reproducible run (same table state, same changes)."
    )


@dg.asset(
    key=ORDERS,
    kinds={"dynamodb"},
    group_name="sources",
    description="OrderTable in DynamoDB, fed by a Faker order generator (inserts, status updates, deletes).",
)
def orders(
    context: dg.AssetExecutionContext, config: GeneratorConfig, aws: AwsResource
) -> dg.MaterializeResult:
    """Place new orders, move live ones along their life cycle, delete a few."""
    stack = aws.stack()
    ddb = aws.client("dynamodb")
    seed = config.seed if config.seed is not None else random.SystemRandom().randrange(2**32)
    rng = random.Random(seed)
    fake = Faker(["en_US", "en_GB", "de_DE", "fr_FR"])
    fake.seed_instance(seed)
    started = time.monotonic()

    try:
        before = ddb.describe_table(TableName=stack.table_name)["Table"]["ItemCount"]
    except ddb.exceptions.ResourceNotFoundException as exc:
        raise dg.Failure(
            description=(
                f"DynamoDB table {stack.table_name} does not exist: run the "
                "provision_infrastructure job first."
            )
        ) from exc
    existing = sample_orders(ddb, stack.table_name, rng, before) if before else []
    now = datetime.now(UTC)
    mix = Mix(config.new_orders, config.status_updates, config.deletes)
    changes = plan_changes(mix, existing, rng, fake, now)

    def progress(done: int, total: int) -> None:
        if total > 100:
            context.log.info(f"written {done}/{total} changes")

    counts = apply_changes(ddb, stack.table_name, changes, now, progress)
    items = ddb.describe_table(TableName=stack.table_name)["Table"]["ItemCount"]
    context.log.info(
        f"seed {seed}: {counts['inserted']} inserted, {counts['updated']} updated, "
        f"{counts['deleted']} deleted, {counts['conflicts']} conflicts"
    )
    return dg.MaterializeResult(
        metadata={
            "inserted": counts["inserted"],
            "updated": counts["updated"],
            "deleted": counts["deleted"],
            "conflicts": dg.MetadataValue.int(counts["conflicts"]),
            "items_in_table": dg.MetadataValue.int(items),
            "seed": dg.MetadataValue.int(seed),
            "duration_seconds": round(time.monotonic() - started, 3),
        }
    )
