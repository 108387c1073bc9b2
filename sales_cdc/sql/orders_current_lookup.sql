-- orders_current_lookup: the order day of the stored row or tombstone of the orders in
-- `order_ids`, wherever it is (the whole of both tables). Run only for the rare orders whose stored state the merge
-- could not find in its lookup scope: an order whose first new event is not an INSERT and whose
-- row is not in the days of its new events (out-of-order delivery, a changed created_at), or a
-- re-inserted order whose tombstone lies in another day.
SELECT order_id, order_date, FALSE AS is_removed
FROM orders_current
WHERE order_id IN (%(order_ids)s)
UNION ALL
SELECT order_id, order_date, TRUE AS is_removed
FROM order_tombstones
WHERE order_id IN (%(order_ids)s)
