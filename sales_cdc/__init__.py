"""sales-cdc: a real-time sales CDC pipeline on AWS, orchestrated by Dagster."""
