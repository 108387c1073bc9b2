-- daily_order_status: Apache Iceberg table, one partition per order day (see its .sql).
CREATE TABLE IF NOT EXISTS daily_order_status (
    status string,
    funnel_step int,
    orders bigint,
    units bigint,
    day_orders bigint,
    share_of_orders double,
    reached_orders bigint,
    order_date string
) PARTITIONED BY (order_date)
LOCATION %(location)s
TBLPROPERTIES ('table_type' = 'ICEBERG', 'format' = 'parquet')
