-- orders_current_changes: what the new landing objects change in orders_current and
-- order_tombstones, computed from their rows (pruned by "$path") and the stored state of the
-- order days in the lookup scope (`days` plus the NULL day).
-- Per order, the winner is the greatest sequence_number (a digits string, compared as a number;
-- ties by event_id) among the de-duplicated new events and the stored row and tombstone. Only
-- orders whose winner is a new event give a winner row (is_winner): is_removed = FALSE upserts
-- orders_current, TRUE deletes the order from it. order_tombstones keeps each order's greatest
-- REMOVE, also through a re-insert (so a late event of an earlier life of the order, in whatever
-- day, always meets a tombstone newer than itself): a new REMOVE greater than the stored
-- tombstone gives a row with is_removed = TRUE, whether or not it is the order's winner. When
-- the stored state already is that event (is_reapplied: objects applied again after a crash
-- before the ledger write, or the orders_current merge done before the order_tombstones one),
-- the row is the same as stored, so applying it again changes nothing. A value that does not fit
-- its column (a malformed time, an amount beyond DECIMAL(18, 2), a quantity that is not a number)
-- becomes NULL; the row stays and the checks of orders_current name the order.
-- Columns computed exactly as in orders_current.sql (the full rebuild).
WITH
-- include: landing_rows
incoming AS (
    SELECT
        -- include: landing_event_columns
        FALSE AS is_stored,
        ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY seq) AS copy_number,
        FIRST_VALUE(event_name) OVER (PARTITION BY order_id ORDER BY seq, event_id)
            AS first_event_name
    FROM landed
    WHERE event_id IS NOT NULL AND order_id IS NOT NULL AND seq IS NOT NULL
),
incoming_orders AS (
    SELECT DISTINCT order_id FROM incoming
),
stored_rows AS (
    SELECT * FROM orders_current WHERE order_date IN (%(days)s)
    UNION ALL
    SELECT * FROM orders_current WHERE order_date IS NULL
),
stored_tombstones AS (
    SELECT * FROM order_tombstones WHERE order_date IN (%(days)s)
    UNION ALL
    SELECT * FROM order_tombstones WHERE order_date IS NULL
),
stored AS (
    SELECT
        order_id, customer_id, customer_name, customer_city, customer_country, product_id,
        product_name, category, quantity, unit_price, discount, total_amount, currency,
        payment_method, channel, status, created_at, updated_at, version, last_event_id,
        last_sequence_number, last_event_time, order_date,
        FALSE AS is_removed, TRUE AS is_stored, 1 AS copy_number,
        CAST(NULL AS VARCHAR) AS first_event_name
    FROM stored_rows
    WHERE order_id IN (SELECT order_id FROM incoming_orders)
    UNION ALL
    SELECT
        order_id, CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR),
        CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR),
        CAST(NULL AS VARCHAR), CAST(NULL AS BIGINT), CAST(NULL AS DECIMAL(18, 2)),
        CAST(NULL AS DECIMAL(18, 2)), CAST(NULL AS DECIMAL(18, 2)), CAST(NULL AS VARCHAR),
        CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR),
        CAST(NULL AS TIMESTAMP), CAST(NULL AS TIMESTAMP), CAST(NULL AS BIGINT), last_event_id,
        last_sequence_number, last_event_time, order_date,
        TRUE AS is_removed, TRUE AS is_stored, 1 AS copy_number,
        CAST(NULL AS VARCHAR) AS first_event_name
    FROM stored_tombstones
    WHERE order_id IN (SELECT order_id FROM incoming_orders)
),
candidates AS (
    SELECT * FROM incoming WHERE copy_number = 1
    UNION ALL
    SELECT * FROM stored
),
ranked AS (
    SELECT
        *,
        ROW_NUMBER() OVER (
            PARTITION BY order_id
            ORDER BY last_sequence_number DESC, last_event_id, is_stored
        ) AS recency,
        COUNT_IF(is_stored AND NOT is_removed) OVER (PARTITION BY order_id) > 0 AS was_live,
        COUNT_IF(is_stored) OVER (PARTITION BY order_id) > 0 AS was_stored,
        MAX(IF(is_stored AND NOT is_removed, order_date)) OVER (PARTITION BY order_id)
            AS previous_order_date,
        ROW_NUMBER() OVER (
            PARTITION BY order_id, is_removed
            ORDER BY last_sequence_number DESC, last_event_id, is_stored
        ) AS kind_recency,
        MAX(first_event_name) OVER (PARTITION BY order_id) AS first_new_event,
        MAX(IF(is_stored, last_event_id)) OVER (PARTITION BY order_id, is_removed)
            AS stored_event_id
    FROM candidates
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
    was_live,
    was_stored,
    previous_order_date,
    first_new_event,
    recency = 1 AS is_winner,
    COALESCE(stored_event_id = last_event_id, FALSE) AS is_reapplied
FROM ranked
WHERE NOT is_stored AND (recency = 1 OR (is_removed AND kind_recency = 1))
