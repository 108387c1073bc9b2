-- The sales measures, one definition for every sales table and for aggregate_totals.sql
-- (money is summed per currency, never across currencies). Rows need `outcome`
-- (include/sales_outcome.sql) and quantity, unit_price, discount, total_amount:
--   a sale               an order whose status is neither CANCELLED nor RETURNED
--                        (PLACED, PAID, SHIPPED, DELIVERED)
--   orders               number of sales
--   units                SUM(quantity) of sales
--   gross_revenue        SUM(quantity * unit_price) of sales, before discounts
--   discounts            SUM(discount) of sales (no discount counts as 0)
--   net_revenue          SUM(total_amount) of sales (= gross_revenue - discounts)
--   cancelled_orders / cancelled_amount   CANCELLED orders and their SUM(total_amount)
--   returned_orders / returned_amount     RETURNED orders and their SUM(total_amount)
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
