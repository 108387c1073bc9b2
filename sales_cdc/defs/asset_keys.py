"""Every asset key of the code location, declared once: each stage imports from here the keys of
the assets it defines, depends on, checks or requests."""

import dagster as dg

ORDERS = dg.AssetKey(["dynamodb", "orders"])
RAW_ORDERS_CDC = dg.AssetKey(["s3", "raw", "orders_cdc"])
ERRORS_ORDERS_CDC = dg.AssetKey(["s3", "errors", "orders_cdc"])
DEAD_LETTERS = dg.AssetKey(["sqs", "orders_cdc_dead_letters"])
GLUE_ORDERS_CDC = dg.AssetKey(["glue", "orders_cdc"])
ORDERS_CURRENT = dg.AssetKey(["athena", "orders_current"])
# orders_current's reconciliation with OrderTable: run by reconcile_schedule, not by lake_refresh.
MATCHES_DYNAMODB = dg.AssetCheckKey(ORDERS_CURRENT, "matches_dynamodb")


def athena_table(table: str) -> dg.AssetKey:
    """The asset key of the curated table `table` (an Iceberg table Athena reads)."""
    return dg.AssetKey(["athena", table])
