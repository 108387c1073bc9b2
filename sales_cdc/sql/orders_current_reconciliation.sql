-- orders_current_reconciliation: the fields compared with DynamoDB OrderTable.
SELECT order_id, status, version, total_amount
FROM orders_current
