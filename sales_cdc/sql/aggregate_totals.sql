-- aggregate_totals: what the aggregate tables of one order day must add up to, computed straight
-- from orders_current with the sales measures of include/sales_measures.sql, one row per currency.
-- all_orders / all_units count every live order of the day (sales, cancelled and returned).
WITH day_orders AS (
    SELECT
        currency,
        quantity,
        unit_price,
        discount,
        total_amount,
        -- include: sales_outcome
    FROM orders_current
    WHERE order_date = %(order_date)s
)
SELECT
    currency,
    -- include: sales_measures
    COUNT(*) AS all_orders,
    CAST(SUM(quantity) AS BIGINT) AS all_units
FROM day_orders
GROUP BY currency
