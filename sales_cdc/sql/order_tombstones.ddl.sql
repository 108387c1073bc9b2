-- order_tombstones: one row per order ever deleted, its greatest REMOVE (sequence number, event,
-- order day), kept through a re-insert: a late or duplicate event of a deleted life of the order
-- can never bring that life back. Apache Iceberg, one partition per order month (the order day's
-- first 7 characters): every run looks its new orders up across the whole table, so it has few
-- files; a merge's order days still prune it to their months.
CREATE TABLE IF NOT EXISTS order_tombstones (
    order_id string,
    last_event_id string,
    last_sequence_number decimal(38,0),
    last_event_time timestamp,
    order_date string
) PARTITIONED BY (truncate(7, order_date))
LOCATION %(location)s
TBLPROPERTIES ('table_type' = 'ICEBERG', 'format' = 'parquet')
