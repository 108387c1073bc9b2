-- orders_current: the full rebuild of orders_current and order_tombstones from the raw log
-- orders_cdc (the readable landing objects in `paths`). For each order_id the event with the
-- greatest sequence_number (a digits string, compared as a number; ties by event_id) among the
-- de-duplicated events wins (is_winner): a live order when it is not a REMOVE (a row of
-- orders_current). Every order's greatest REMOVE is its tombstone (is_removed, a row of
-- order_tombstones), also when a re-insert followed it. Columns are computed exactly as in
-- orders_current_changes.sql (the incremental merge), so both give identical tables. A value that
-- does not fit its column becomes NULL (the row stays); a created_at that is not ISO-8601 gives a
-- NULL order_date (its own partition), named by the order_date_known check.
WITH
-- include: landing_rows
events AS (
    -- A line that is not a landing row (no event id, order id or numeric sequence) is skipped.
    SELECT
        -- include: landing_event_columns
        ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY seq) AS copy_number
    FROM landed
    WHERE event_id IS NOT NULL AND order_id IS NOT NULL AND seq IS NOT NULL
),
ranked AS (
    SELECT
        *,
        ROW_NUMBER() OVER (
            PARTITION BY order_id ORDER BY last_sequence_number DESC, last_event_id
        ) AS recency,
        ROW_NUMBER() OVER (
            PARTITION BY order_id, is_removed ORDER BY last_sequence_number DESC, last_event_id
        ) AS kind_recency
    FROM events
    WHERE copy_number = 1
)
SELECT
    order_id,
    customer_id,
    customer_name,
    customer_city,
    customer_country,
    product_id,
    product_name,
    category,
    quantity,
    unit_price,
    discount,
    total_amount,
    currency,
    payment_method,
    channel,
    status,
    created_at,
    updated_at,
    version,
    last_event_id,
    last_sequence_number,
    last_event_time,
    order_date,
    is_removed,
    recency = 1 AS is_winner
FROM ranked
WHERE recency = 1 OR (is_removed AND kind_recency = 1)
