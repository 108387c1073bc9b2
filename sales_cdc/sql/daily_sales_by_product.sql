-- daily_sales_by_product: one row per order day, product and currency, from orders_current (live
-- orders only: an order deleted upstream is gone from orders_current and so from here).
-- The sales measures are defined once, in include/sales_measures.sql.
-- order_date (the UTC day of created_at) is the partition column and comes last; the IN filter
-- on it makes both engines read only those days' partitions of orders_current (a run refreshes
-- its days in one write).
WITH day_orders AS (
    SELECT
        order_date,
        product_id,
        product_name,
        category,
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
    product_id,
    MAX(product_name) AS product_name,
    MAX(category) AS category,
    currency,
    -- include: sales_measures
    order_date
FROM day_orders
GROUP BY order_date, product_id, currency
