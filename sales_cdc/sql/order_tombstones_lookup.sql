-- order_tombstones_lookup: the order day of the tombstone of every order with events in the
-- objects `paths` (a re-insert, or a late event of an earlier life of the order, may find the
-- tombstone in another day). The orders
-- are named by the objects, not listed: the statement's size does not grow with their number.
-- Reads order_tombstones (orders ever deleted, a small table of narrow rows) and the new objects.
WITH
-- include: landing_rows
new_orders AS (
    SELECT DISTINCT order_id
    FROM landed
    WHERE order_id IS NOT NULL
)
SELECT t.order_id, t.order_date
FROM order_tombstones AS t
WHERE t.order_id IN (SELECT order_id FROM new_orders)
