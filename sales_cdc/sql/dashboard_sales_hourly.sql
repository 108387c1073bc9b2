-- dashboard_sales_hourly: sales per order day, hour of the day (UTC) and currency in the
-- dashboard's date range (from hourly_revenue), to set today's hours against the previous days'.
SELECT
    order_date,
    hour_of_day,
    currency,
    orders,
    units,
    net_revenue
FROM hourly_revenue
WHERE order_date BETWEEN %(start_date)s AND %(end_date)s AND currency IN (%(currencies)s)
ORDER BY order_date, hour_of_day, currency
