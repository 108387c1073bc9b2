-- orders_cdc_merge_log: the ledger of landing objects merged into orders_current (Apache
-- Iceberg, unpartitioned): status 'merged' or 'unreadable' (set aside, with the reason).
CREATE TABLE IF NOT EXISTS orders_cdc_merge_log (
    object_key string,
    object_size bigint,
    last_modified timestamp,
    status string,
    reason string,
    rows bigint,
    run_id string,
    merged_at timestamp
)
LOCATION %(location)s
TBLPROPERTIES ('table_type' = 'ICEBERG', 'format' = 'parquet')
