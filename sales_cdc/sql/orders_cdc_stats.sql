-- orders_cdc_stats: figures of the raw CDC log for the orders_current materialization.
-- events read, duplicate deliveries ignored, lines that are not landing rows (no event id, order
-- id or numeric sequence number: orders_current skips them), newest event, orders whose latest
-- event is a REMOVE. One pass over the log.
WITH landed AS (
    SELECT
        order_id,
        event_id,
        event_name,
        is_deleted,
        event_time,
        TRY_CAST(sequence_number AS DECIMAL(38, 0)) AS seq
    FROM orders_cdc
),
flagged AS (
    SELECT *, event_id IS NOT NULL AND order_id IS NOT NULL AND seq IS NOT NULL AS readable
    FROM landed
),
events AS (
    SELECT
        *,
        ROW_NUMBER() OVER (PARTITION BY readable, order_id ORDER BY seq DESC, event_id) AS recency
    FROM flagged
)
SELECT
    COUNT_IF(NOT readable) AS unreadable_rows,
    COUNT_IF(readable) AS events_read,
    COUNT_IF(readable) - COUNT(DISTINCT IF(readable, event_id)) AS duplicate_events,
    COUNT(DISTINCT IF(readable, order_id)) AS orders_seen,
    COUNT_IF(readable AND recency = 1 AND COALESCE(is_deleted, event_name = 'REMOVE'))
        AS orders_deleted,
    MAX(IF(readable, event_time)) AS newest_event_time
FROM events
