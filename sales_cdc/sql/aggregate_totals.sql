-- aggregate_totals: what the aggregate tables of one order day must add up to, computed straight
-- from orders_current with the definitions of daily_sales_by_product.sql, one row per currency.
-- all_orders / all_units count every live order of the day (sales, cancelled and returned).
WITH day_orders AS (
    SELECT
        currency,
        quantity,
        unit_price,
        discount,
        total_amount,
        CASE status
            WHEN 'CANCELLED' THEN 'cancelled'
            WHEN 'RETURNED' THEN 'returned'
            ELSE 'sale'
        END AS outcome
    FROM orders_current
    WHERE order_date = %(order_date)s
)
SELECT
    currency,
    COUNT(*) AS all_orders,
    CAST(SUM(quantity) AS BIGINT) AS all_units,
    COUNT(CASE WHEN outcome = 'sale' THEN 1 END) AS orders,
    CAST(SUM(CASE WHEN outcome = 'sale' THEN quantity ELSE 0 END) AS BIGINT) AS units,
    CAST(
        SUM(CASE WHEN outcome = 'sale' THEN quantity * unit_price ELSE 0 END) AS DECIMAL(18, 2)
    ) AS gross_revenue,
    CAST(
        SUM(CASE WHEN outcome = 'sale' THEN COALESCE(discount, 0) ELSE 0 END) AS DECIMAL(18, 2)
    ) AS discounts,
    CAST(SUM(CASE WHEN outcome = 'sale' THEN total_amount ELSE 0 END) AS DECIMAL(18, 2))
        AS net_revenue,
    COUNT(CASE WHEN outcome = 'cancelled' THEN 1 END) AS cancelled_orders,
    CAST(SUM(CASE WHEN outcome = 'cancelled' THEN total_amount ELSE 0 END) AS DECIMAL(18, 2))
        AS cancelled_amount,
    COUNT(CASE WHEN outcome = 'returned' THEN 1 END) AS returned_orders,
    CAST(SUM(CASE WHEN outcome = 'returned' THEN total_amount ELSE 0 END) AS DECIMAL(18, 2))
        AS returned_amount
FROM day_orders
GROUP BY currency
