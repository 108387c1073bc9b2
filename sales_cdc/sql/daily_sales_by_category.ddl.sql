-- daily_sales_by_category: Apache Iceberg table, one partition per order day (see its .sql).
CREATE TABLE IF NOT EXISTS daily_sales_by_category (
    category string,
    currency string,
    orders bigint,
    units bigint,
    gross_revenue decimal(18,2),
    discounts decimal(18,2),
    net_revenue decimal(18,2),
    cancelled_orders bigint,
    cancelled_amount decimal(18,2),
    returned_orders bigint,
    returned_amount decimal(18,2),
    order_date string
) PARTITIONED BY (order_date)
LOCATION %(location)s
TBLPROPERTIES ('table_type' = 'ICEBERG', 'format' = 'parquet')
