-- orders_current_checks: one scan of the whole of orders_current counting the rows that break
-- each rule, with one offending order_id per rule as a sample.
SELECT
    COUNT(*) AS total_rows,
    COUNT(order_id) - COUNT(DISTINCT order_id) AS duplicate_order_ids,
    -- include: orders_current_rule_columns
FROM orders_current
