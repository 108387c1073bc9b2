-- orders_current_row_count: live orders and tombstones after a merge.
SELECT
    (SELECT COUNT(*) FROM orders_current) AS orders,
    (SELECT COUNT(*) FROM order_tombstones) AS tombstones
