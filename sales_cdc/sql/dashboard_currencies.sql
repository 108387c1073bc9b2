-- dashboard_currencies: the currencies with sales in the dashboard's date range (its currency filter).
SELECT DISTINCT currency
FROM daily_sales_by_category
WHERE order_date BETWEEN %(start_date)s AND %(end_date)s AND currency IS NOT NULL
ORDER BY currency
