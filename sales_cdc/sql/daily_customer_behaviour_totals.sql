-- daily_customer_behaviour_totals: each order day in `order_dates` of daily_customer_behaviour
-- summed up per currency (to compare with aggregate_totals.sql), with the day's customer counts as every row states them
-- (min and max must agree) and the largest customers count of a single row.
SELECT
    order_date,
    currency,
    COUNT(*) AS table_rows,
    CAST(SUM(orders) AS BIGINT) AS orders,
    CAST(SUM(units) AS BIGINT) AS units,
    CAST(SUM(net_revenue) AS DECIMAL(18, 2)) AS net_revenue,
    CAST(SUM(cancelled_orders) AS BIGINT) AS cancelled_orders,
    CAST(SUM(returned_orders) AS BIGINT) AS returned_orders,
    MAX(customers) AS max_row_customers,
    MIN(day_customers) AS min_day_customers,
    MAX(day_customers) AS max_day_customers,
    MIN(day_repeat_customers) AS min_day_repeat_customers,
    MAX(day_repeat_customers) AS max_day_repeat_customers,
    COUNT(
        CASE WHEN orders < 0 OR units < 0 OR net_revenue < 0 OR customers < 0 THEN 1 END
    ) AS negative_rows
FROM daily_customer_behaviour
WHERE order_date IN (%(order_dates)s)
GROUP BY order_date, currency
