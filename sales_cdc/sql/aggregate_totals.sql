-- aggregate_totals: what the aggregate tables of each order day in `order_dates` must add up to,
-- computed straight from orders_current with the sales measures of include/sales_measures.sql, one
-- row per order day and currency.
-- all_orders / all_units count every live order of the day (sales, cancelled and returned).
WITH day_orders AS (
    SELECT
        order_date,
        currency,
        quantity,
        unit_price,
        discount,
        total_amount,
        -- include: sales_outcome
    FROM orders_current
    WHERE order_date IN (%(order_dates)s)
)
SELECT
    order_date,
    currency,
    -- include: sales_measures
    COUNT(*) AS all_orders,
    CAST(SUM(quantity) AS BIGINT) AS all_units
FROM day_orders
GROUP BY order_date, currency
