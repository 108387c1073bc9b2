-- order_tombstones: one row per deleted order, its last sequence number (Apache Iceberg, one
-- partition per order day): a late or duplicate event can never bring the order back.
CREATE TABLE IF NOT EXISTS order_tombstones (
    order_id string,
    last_event_id string,
    last_sequence_number decimal(38,0),
    last_event_time timestamp,
    order_date string
) PARTITIONED BY (order_date)
LOCATION %(location)s
TBLPROPERTIES ('table_type' = 'ICEBERG', 'format' = 'parquet')
