CREATE TABLE IF NOT EXISTS daily_customer_behaviour (
    customer_country string,
    channel string,
    payment_method string,
    currency string,
    orders bigint,
    units bigint,
    net_revenue decimal(18, 2),
    cancelled_orders bigint,
    returned_orders bigint,
    customers bigint,
    day_customers bigint,
    day_repeat_customers bigint,
    order_date string
)
PARTITIONED BY (order_date)
LOCATION '%(location)s'
TBLPROPERTIES ('table_type' = 'ICEBERG', 'format' = 'parquet')
