-- orders_current_checks_days: the rules of orders_current_checks over what one run changed: the
-- rows of the order days `days` (the run's changed_order_dates) and of the NULL day. An order of
-- those rows is looked up by id across the table, so a second row of it in a day the run did not
-- touch counts as a duplicate too.
WITH
checked AS (
    SELECT * FROM orders_current WHERE order_date IN (%(days)s)
    UNION ALL
    SELECT * FROM orders_current WHERE order_date IS NULL
),
same_orders AS (
    SELECT order_id FROM orders_current
    WHERE order_id IN (SELECT order_id FROM checked)
)
SELECT
    COUNT(*) AS total_rows,
    (SELECT COUNT(order_id) - COUNT(DISTINCT order_id) FROM same_orders) AS duplicate_order_ids,
    -- include: orders_current_rule_columns
FROM checked
