-- landing_records_merged: landing records merged into orders_current so far (the error_rate
-- check's denominator), counted from the ledger without reading a landing object.
SELECT COALESCE(SUM(rows), 0) AS records
FROM orders_cdc_merge_log
WHERE status = 'merged'
