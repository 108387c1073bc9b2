-- hourly_revenue: one row per order day, hour of the day (hour_of_day 0-23, UTC, of created_at)
-- and currency, from orders_current (live orders only: an order deleted upstream is gone from
-- orders_current and so from here). Hours without orders have no row.
-- The sales measures are defined once, in include/sales_measures.sql.
-- order_date (the UTC day of created_at) is the partition column and comes last; the IN filter
-- on it makes both engines read only those days' partitions of orders_current (a run refreshes
-- its days in one write).
WITH day_orders AS (
    SELECT
        order_date,
        CAST(hour(created_at) AS INTEGER) AS hour_of_day,
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
    hour_of_day,
    currency,
    -- include: sales_measures
    order_date
FROM day_orders
GROUP BY order_date, hour_of_day, currency
