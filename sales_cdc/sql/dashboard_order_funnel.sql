-- dashboard_order_funnel: live orders per current status over the dashboard's date range (from
-- daily_order_status), funnel steps first (PLACED, PAID, SHIPPED, DELIVERED), then the statuses
-- off the funnel (CANCELLED, RETURNED). Counts of orders: no currency involved.
SELECT
    status,
    CAST(MAX(funnel_step) AS INTEGER) AS funnel_step,
    CAST(SUM(orders) AS BIGINT) AS orders,
    CAST(SUM(reached_orders) AS BIGINT) AS reached_orders
FROM daily_order_status
WHERE order_date BETWEEN %(start_date)s AND %(end_date)s
GROUP BY status
ORDER BY COALESCE(MAX(funnel_step), 99), status
