-- dashboard_freshness: the newest event of each lake stage: landed in the raw log orders_cdc (only
-- the day partitions passed in, today's and yesterday's, so the query never scans the whole log)
-- and merged into orders_current. Times are UTC.
SELECT
    'orders_cdc' AS stage,
    MAX(TRY_CAST(event_time AS TIMESTAMP)) AS newest_event_time,
    COUNT(*) AS rows_read
FROM orders_cdc
WHERE year IN (%(years)s) AND month IN (%(months)s) AND day IN (%(days)s)
UNION ALL
SELECT
    'orders_current' AS stage,
    MAX(last_event_time) AS newest_event_time,
    COUNT(*) AS rows_read
FROM orders_current
