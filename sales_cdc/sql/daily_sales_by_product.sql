-- daily_sales_by_product: one row per order day, product and currency, from orders_current (live
-- orders only: an order deleted upstream is gone from orders_current and so from here).
-- Definitions (money is summed per currency, never across currencies):
--   a sale               an order whose status is neither CANCELLED nor RETURNED
--                        (PLACED, PAID, SHIPPED, DELIVERED)
--   orders               number of sales
--   units                SUM(quantity) of sales
--   gross_revenue        SUM(quantity * unit_price) of sales, before discounts
--   discounts            SUM(discount) of sales (no discount counts as 0)
--   net_revenue          SUM(total_amount) of sales (= gross_revenue - discounts)
--   cancelled_orders / cancelled_amount   CANCELLED orders and their SUM(total_amount)
--   returned_orders / returned_amount     RETURNED orders and their SUM(total_amount)
-- order_date (the UTC day of created_at) is the partition column and comes last; the equality
-- filter on it makes both engines read only that day's partition of orders_current.
-- partitioned_by: order_date
WITH day_orders AS (
    SELECT
        order_date,
        product_id,
        product_name,
        category,
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
    product_id,
    MAX(product_name) AS product_name,
    MAX(category) AS category,
    currency,
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
        AS returned_amount,
    order_date
FROM day_orders
GROUP BY order_date, product_id, currency
