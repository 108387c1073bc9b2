-- dashboard_customers: sales over the dashboard's date range by customer country, by channel and
-- by payment method, per currency (from daily_customer_behaviour): one row per dimension, value
-- and currency.
WITH behaviour AS (
    SELECT customer_country, channel, payment_method, currency, orders, net_revenue
    FROM daily_customer_behaviour
    WHERE order_date BETWEEN %(start_date)s AND %(end_date)s AND currency IN (%(currencies)s)
)
SELECT
    'country' AS dimension,
    customer_country AS value,
    currency,
    CAST(SUM(orders) AS BIGINT) AS orders,
    CAST(SUM(net_revenue) AS DECIMAL(18, 2)) AS net_revenue
FROM behaviour
GROUP BY customer_country, currency
UNION ALL
SELECT
    'channel' AS dimension,
    channel AS value,
    currency,
    CAST(SUM(orders) AS BIGINT) AS orders,
    CAST(SUM(net_revenue) AS DECIMAL(18, 2)) AS net_revenue
FROM behaviour
GROUP BY channel, currency
UNION ALL
SELECT
    'payment_method' AS dimension,
    payment_method AS value,
    currency,
    CAST(SUM(orders) AS BIGINT) AS orders,
    CAST(SUM(net_revenue) AS DECIMAL(18, 2)) AS net_revenue
FROM behaviour
GROUP BY payment_method, currency
ORDER BY dimension, currency, net_revenue DESC, value
