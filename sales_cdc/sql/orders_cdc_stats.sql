-- orders_cdc_stats: figures of the raw CDC log for the orders_current materialization.
-- events read, duplicate deliveries ignored, newest event, orders whose latest event is a REMOVE.
WITH events AS (
    SELECT
        order_id,
        event_id,
        event_name,
        is_deleted,
        event_time,
        ROW_NUMBER() OVER (
            PARTITION BY order_id ORDER BY CAST(sequence_number AS DECIMAL(38, 0)) DESC, event_id
        ) AS recency
    FROM orders_cdc
)
SELECT
    COUNT(*) AS events_read,
    COUNT(*) - COUNT(DISTINCT event_id) AS duplicate_events,
    COUNT(DISTINCT order_id) AS orders_seen,
    COUNT_IF(recency = 1 AND COALESCE(is_deleted, event_name = 'REMOVE')) AS orders_deleted,
    MAX(event_time) AS newest_event_time
FROM events
