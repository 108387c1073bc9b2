-- dashboard_categories: sales per category and currency over the dashboard's date range (from
-- daily_sales_by_category), the best-selling category first.
SELECT
    category,
    currency,
    CAST(SUM(orders) AS BIGINT) AS orders,
    CAST(SUM(units) AS BIGINT) AS units,
    CAST(SUM(net_revenue) AS DECIMAL(18, 2)) AS net_revenue
FROM daily_sales_by_category
WHERE order_date BETWEEN %(start_date)s AND %(end_date)s AND currency IN (%(currencies)s)
GROUP BY category, currency
ORDER BY currency, net_revenue DESC, category
