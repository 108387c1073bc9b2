-- orders_current_reconciliation: the fields compared with DynamoDB OrderTable.
SELECT order_id, status, version, total_amount, last_event_time
FROM orders_current
