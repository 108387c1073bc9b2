-- orders_cdc_merge_log_keys: the landing objects the ledger records (merged or set aside); a run
-- of orders_current merges the listed objects not among them.
SELECT object_key, status
FROM orders_cdc_merge_log
