-- dashboard_sales_daily: sales per order day and currency in the dashboard's date range (from
-- daily_sales_by_category; money per currency, never summed across currencies).
SELECT
    order_date,
    currency,
    CAST(SUM(orders) AS BIGINT) AS orders,
    CAST(SUM(units) AS BIGINT) AS units,
    CAST(SUM(net_revenue) AS DECIMAL(18, 2)) AS net_revenue,
    CAST(SUM(cancelled_orders) AS BIGINT) AS cancelled_orders,
    CAST(SUM(returned_orders) AS BIGINT) AS returned_orders
FROM daily_sales_by_category
WHERE order_date BETWEEN %(start_date)s AND %(end_date)s AND currency IN (%(currencies)s)
GROUP BY order_date, currency
ORDER BY order_date, currency
