-- order_tombstones: one row per order ever deleted, its greatest REMOVE (sequence number, event,
-- order day; Apache Iceberg, one partition per order day), kept through a re-insert: a late or
-- duplicate event of a deleted life of the order can never bring that life back.
CREATE TABLE IF NOT EXISTS order_tombstones (
    order_id string,
    last_event_id string,
    last_sequence_number decimal(38,0),
    last_event_time timestamp,
    order_date string
) PARTITIONED BY (order_date)
LOCATION %(location)s
TBLPROPERTIES ('table_type' = 'ICEBERG', 'format' = 'parquet')
