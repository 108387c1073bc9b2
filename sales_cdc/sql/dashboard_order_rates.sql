-- dashboard_order_rates: per order day in the dashboard's date range, its live orders and the
-- shares of them now CANCELLED (cancel rate) and RETURNED (return rate), from daily_order_status.
SELECT
    order_date,
    CAST(MAX(day_orders) AS BIGINT) AS orders,
    CAST(SUM(CASE WHEN status = 'CANCELLED' THEN orders ELSE 0 END) AS BIGINT) AS cancelled_orders,
    CAST(SUM(CASE WHEN status = 'RETURNED' THEN orders ELSE 0 END) AS BIGINT) AS returned_orders,
    ROUND(
        CAST(SUM(CASE WHEN status = 'CANCELLED' THEN orders ELSE 0 END) AS DOUBLE)
        / MAX(day_orders),
        6
    ) AS cancel_rate,
    ROUND(
        CAST(SUM(CASE WHEN status = 'RETURNED' THEN orders ELSE 0 END) AS DOUBLE)
        / MAX(day_orders),
        6
    ) AS return_rate
FROM daily_order_status
WHERE order_date BETWEEN %(start_date)s AND %(end_date)s
GROUP BY order_date
ORDER BY order_date
