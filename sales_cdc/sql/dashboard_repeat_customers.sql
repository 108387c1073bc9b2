-- dashboard_repeat_customers: per order day in the dashboard's date range, the customers with a
-- sale and those with more than one sale that day (from daily_customer_behaviour, whose rows all
-- state the day's figures). Counts of customers over every currency.
SELECT
    order_date,
    CAST(MAX(day_customers) AS BIGINT) AS customers,
    CAST(MAX(day_repeat_customers) AS BIGINT) AS repeat_customers,
    CAST(MAX(day_customers) - MAX(day_repeat_customers) AS BIGINT) AS one_time_customers
FROM daily_customer_behaviour
WHERE order_date BETWEEN %(start_date)s AND %(end_date)s
GROUP BY order_date
ORDER BY order_date
