-- orders_current: one row per live order (Apache Iceberg, one partition per order day; the
-- NULL order_date, a created_at that does not parse, is a partition of its own).
CREATE TABLE IF NOT EXISTS orders_current (
    order_id string,
    customer_id string,
    customer_name string,
    customer_city string,
    customer_country string,
    product_id string,
    product_name string,
    category string,
    quantity bigint,
    unit_price decimal(18,2),
    discount decimal(18,2),
    total_amount decimal(18,2),
    currency string,
    payment_method string,
    channel string,
    status string,
    created_at timestamp,
    updated_at timestamp,
    version bigint,
    last_event_id string,
    last_sequence_number decimal(38,0),
    last_event_time timestamp,
    order_date string
) PARTITIONED BY (order_date)
LOCATION %(location)s
TBLPROPERTIES ('table_type' = 'ICEBERG', 'format' = 'parquet')
