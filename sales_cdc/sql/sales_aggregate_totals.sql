-- sales_aggregate_totals: each order day in `order_dates` of a sales aggregate summed per currency
-- (to compare with aggregate_totals.sql), its row count and how many rows hold a negative amount.
-- The three sales tables (daily_sales_by_product, daily_sales_by_category, hourly_revenue) share
-- these columns: the checks read the same text with the table swapped (sqlglot replace_tables).
SELECT
    order_date,
    currency,
    COUNT(*) AS table_rows,
    CAST(SUM(orders) AS BIGINT) AS orders,
    CAST(SUM(units) AS BIGINT) AS units,
    CAST(SUM(gross_revenue) AS DECIMAL(18, 2)) AS gross_revenue,
    CAST(SUM(discounts) AS DECIMAL(18, 2)) AS discounts,
    CAST(SUM(net_revenue) AS DECIMAL(18, 2)) AS net_revenue,
    CAST(SUM(cancelled_orders) AS BIGINT) AS cancelled_orders,
    CAST(SUM(cancelled_amount) AS DECIMAL(18, 2)) AS cancelled_amount,
    CAST(SUM(returned_orders) AS BIGINT) AS returned_orders,
    CAST(SUM(returned_amount) AS DECIMAL(18, 2)) AS returned_amount,
    COUNT(
        CASE
            WHEN gross_revenue < 0 OR discounts < 0 OR net_revenue < 0
                OR cancelled_amount < 0 OR returned_amount < 0 THEN 1
        END
    ) AS negative_rows
FROM daily_sales_by_product
WHERE order_date IN (%(order_dates)s)
GROUP BY order_date, currency
