-- daily_order_status_totals: each order day in `order_dates` of daily_order_status summed up: its
-- rows, the sum of orders over all statuses, the day_orders it states (must be the same on every
-- row) and the cancelled and returned orders (to compare with aggregate_totals.sql).
SELECT
    order_date,
    COUNT(*) AS table_rows,
    CAST(SUM(orders) AS BIGINT) AS orders,
    CAST(SUM(units) AS BIGINT) AS units,
    MIN(day_orders) AS min_day_orders,
    MAX(day_orders) AS max_day_orders,
    CAST(SUM(CASE WHEN status = 'CANCELLED' THEN orders ELSE 0 END) AS BIGINT) AS cancelled_orders,
    CAST(SUM(CASE WHEN status = 'RETURNED' THEN orders ELSE 0 END) AS BIGINT) AS returned_orders,
    COUNT(CASE WHEN orders < 0 OR units < 0 THEN 1 END) AS negative_rows
FROM daily_order_status
WHERE order_date IN (%(order_dates)s)
GROUP BY order_date
