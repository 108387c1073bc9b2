-- order_tombstones_lookup: the order day of the tombstone of the orders in `order_ids`
-- (orders whose first new event is an INSERT: a re-insert after a delete, whose tombstone may
-- lie in another day).
-- Reads order_tombstones only: deleted orders, a small table of narrow rows.
SELECT order_id, order_date
FROM order_tombstones
WHERE order_id IN (%(order_ids)s)
