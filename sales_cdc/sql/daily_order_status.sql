-- daily_order_status: the fulfilment funnel of each order day, one row per order day and current
-- status of its live orders (from orders_current; statuses nobody holds that day have no row).
--   status            the order's current status (NULL is reported as UNKNOWN)
--   funnel_step       1 PLACED, 2 PAID, 3 SHIPPED, 4 DELIVERED; NULL for CANCELLED, RETURNED and
--                     unknown statuses, which are not steps of the funnel
--   orders            orders of the day in this status
--   units             SUM(quantity) of those orders
--   day_orders        all live orders of the day (the same on every row of the day)
--   share_of_orders   orders / day_orders, rounded to 6 places: the CANCELLED row's share is the
--                     day's cancel rate, the RETURNED row's share its return rate
--   reached_orders    on funnel rows, orders known to have reached at least that step: a RETURNED
--                     order was DELIVERED first, a CANCELLED one was at least PLACED (it may have
--                     been PAID, the projection keeps only the current status); NULL off the funnel
-- order_date (the UTC day of created_at) is the partition column and comes last; the IN filter
-- on it makes both engines read only those days' partitions of orders_current (a run refreshes
-- its days in one write).
WITH day_orders AS (
    SELECT
        order_date,
        COALESCE(status, 'UNKNOWN') AS status,
        quantity
    FROM orders_current
    WHERE order_date IN (%(order_dates)s)
),
per_status AS (
    SELECT
        order_date,
        status,
        COUNT(*) AS orders,
        CAST(SUM(quantity) AS BIGINT) AS units
    FROM day_orders
    GROUP BY order_date, status
),
ranked AS (
    SELECT
        *,
        CASE status
            WHEN 'PLACED' THEN 1
            WHEN 'PAID' THEN 2
            WHEN 'SHIPPED' THEN 3
            WHEN 'DELIVERED' THEN 4
        END AS funnel_step,
        -- how far along the funnel an order in this status is known to have come
        CASE status
            WHEN 'PLACED' THEN 1
            WHEN 'CANCELLED' THEN 1
            WHEN 'PAID' THEN 2
            WHEN 'SHIPPED' THEN 3
            WHEN 'DELIVERED' THEN 4
            WHEN 'RETURNED' THEN 4
        END AS progress
    FROM per_status
)
SELECT
    status,
    CAST(funnel_step AS INTEGER) AS funnel_step,
    orders,
    units,
    CAST(SUM(orders) OVER (PARTITION BY order_date) AS BIGINT) AS day_orders,
    ROUND(CAST(orders AS DOUBLE) / SUM(orders) OVER (PARTITION BY order_date), 6)
        AS share_of_orders,
    CASE
        WHEN funnel_step IS NOT NULL THEN CAST(SUM(orders) OVER (
            PARTITION BY order_date ORDER BY progress DESC NULLS LAST
            RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
        ) AS BIGINT)
    END AS reached_orders,
    order_date
FROM ranked
