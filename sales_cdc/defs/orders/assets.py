"""The order generator: realistic orders written into DynamoDB OrderTable."""

import random
import time
from datetime import UTC, datetime
from decimal import Decimal

import dagster as dg
from pydantic import Field

from sales_cdc.defs.asset_keys import ORDERS
from sales_cdc.defs.orders.generator import Mix, plan_changes, plan_history
from sales_cdc.defs.orders.writer import apply_changes, sample_orders
from sales_cdc.resources.aws import AwsResource


class GeneratorConfig(dg.Config):
    """The mix of one generator run."""

    new_orders: int = Field(default=20, ge=0, le=10_000, description="Orders to place.")
    status_updates: int = Field(
        default=12, ge=0, le=10_000, description="Valid status transitions of existing orders."
    )
    deletes: int = Field(default=1, ge=0, le=10_000, description="Existing orders to delete.")
    history: bool = Field(
        default=True,
        description="On an empty table, first write generator.history_days of past orders.",
    )
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
    # Imported here: only the generator's runs need Faker, not every run of the code location.
    from faker import Faker

    fake = Faker(["en_US", "en_GB", "de_DE", "fr_FR"])
    fake.seed_instance(seed)
    started = time.monotonic()

    try:
        existing = sample_orders(ddb, stack.table_name, rng)
    except ddb.exceptions.ResourceNotFoundException as exc:
        raise dg.Failure(
            description=(
                f"DynamoDB table {stack.table_name} does not exist: run the "
                "provision_infrastructure job first."
            )
        ) from exc
    now = datetime.now(UTC)
    generator = stack.declared.get("generator", {})
    history_days = int(generator.get("history_days", 0))
    history: list = []
    if config.history and not existing and history_days > 0:
        per_day = int(generator.get("history_orders_per_day", 40))
        history = plan_history(history_days, per_day, rng, fake, now)
        context.log.info(
            f"empty table: seeding {history_days} days of history "
            f"({sum(c.kind == 'insert' for c in history)} orders, {len(history)} writes)"
        )
    mix = Mix(config.new_orders, config.status_updates, config.deletes)
    changes = history + plan_changes(mix, existing, rng, fake, now)

    def progress(done: int, total: int) -> None:
        if total > 100 and (done % 500 == 0 or done == total):
            context.log.info(f"written {done}/{total} changes")

    writing = time.monotonic()
    counts = apply_changes(ddb, stack.table_name, changes, now, progress)
    write_seconds = time.monotonic() - writing
    items = ddb.describe_table(TableName=stack.table_name)["Table"]["ItemCount"]
    placed = [c.item["totalAmount"] for c in changes if c.kind == "insert"]
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
            "history_writes": dg.MetadataValue.int(len(history)),
            "placed_amount": dg.MetadataValue.float(float(sum(placed, Decimal(0)))),
            "writes_per_second": round(len(changes) / write_seconds, 1) if write_seconds else 0.0,
            "seed": dg.MetadataValue.int(seed),
            "duration_seconds": round(time.monotonic() - started, 3),
        }
    )
