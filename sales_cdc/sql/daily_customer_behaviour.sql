-- daily_customer_behaviour: who buys, where and how, one row per order day, customer country,
-- channel, payment method and currency, from orders_current (live orders only).
-- Definitions (a sale is an order neither CANCELLED nor RETURNED, as in daily_sales_by_product.sql;
-- money is summed per currency, never across currencies):
--   orders / units / net_revenue   sales, SUM(quantity) and SUM(total_amount) of sales
--   cancelled_orders / returned_orders   CANCELLED and RETURNED orders of the group
--   customers             distinct customer_id with a sale in the group
--   day_customers         distinct customer_id with a sale that order day (the same on every row
--                         of the day: a customer buying in two groups is one customer of the day)
--   day_repeat_customers  of those, customers with more than one sale that order day
-- A missing country, channel or payment method is reported as UNKNOWN.
-- order_date (the UTC day of created_at) is the partition column and comes last; the IN filter
-- on it makes both engines read only those days' partitions of orders_current (a run refreshes
-- its days in one write).
WITH day_orders AS (
    SELECT
        order_date,
        customer_id,
        COALESCE(customer_country, 'UNKNOWN') AS customer_country,
        COALESCE(channel, 'UNKNOWN') AS channel,
        COALESCE(payment_method, 'UNKNOWN') AS payment_method,
        currency,
        quantity,
        total_amount,
        CASE status
            WHEN 'CANCELLED' THEN 'cancelled'
            WHEN 'RETURNED' THEN 'returned'
            ELSE 'sale'
        END AS outcome
    FROM orders_current
    WHERE order_date IN (%(order_dates)s)
),
customer_sales AS (
    SELECT order_date, customer_id, COUNT(*) AS sales
    FROM day_orders
    WHERE outcome = 'sale' AND customer_id IS NOT NULL
    GROUP BY order_date, customer_id
),
day_customers AS (
    SELECT
        order_date,
        COUNT(*) AS day_customers,
        COUNT(CASE WHEN sales > 1 THEN 1 END) AS day_repeat_customers
    FROM customer_sales
    GROUP BY order_date
)
SELECT
    customer_country,
    channel,
    payment_method,
    currency,
    COUNT(CASE WHEN outcome = 'sale' THEN 1 END) AS orders,
    CAST(SUM(CASE WHEN outcome = 'sale' THEN quantity ELSE 0 END) AS BIGINT) AS units,
    CAST(SUM(CASE WHEN outcome = 'sale' THEN total_amount ELSE 0 END) AS DECIMAL(18, 2))
        AS net_revenue,
    COUNT(CASE WHEN outcome = 'cancelled' THEN 1 END) AS cancelled_orders,
    COUNT(CASE WHEN outcome = 'returned' THEN 1 END) AS returned_orders,
    COUNT(DISTINCT CASE WHEN outcome = 'sale' THEN customer_id END) AS customers,
    -- a day whose orders are all cancelled or returned has no customers: 0, as on other rows
    CAST(COALESCE(MAX(day_customers.day_customers), 0) AS BIGINT) AS day_customers,
    CAST(COALESCE(MAX(day_customers.day_repeat_customers), 0) AS BIGINT) AS day_repeat_customers,
    day_orders.order_date
FROM day_orders
LEFT JOIN day_customers ON day_customers.order_date = day_orders.order_date
GROUP BY day_orders.order_date, customer_country, channel, payment_method, currency
