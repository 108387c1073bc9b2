-- orders_current: the full rebuild of orders_current and order_tombstones from the raw log
-- orders_cdc (the readable landing objects, %(paths)s). For each order_id the event with the
-- greatest sequence_number (a digits string, compared as a number; ties by event_id) among the
-- de-duplicated events wins: a live order when it is not a REMOVE (is_removed = FALSE, a row of
-- orders_current), a tombstone when it is. Columns are computed exactly as in
-- orders_current_changes.sql (the incremental merge), so both give identical tables. A value that
-- does not fit its column becomes NULL (the row stays); a created_at that is not ISO-8601 gives a
-- NULL order_date (its own partition), named by the order_date_known check.
-- Item attributes are cataloged once a row carrying them has landed (`discount` only once a
-- discounted order has); until then they read as NULL:
-- optional: orders_cdc.customer_id string
-- optional: orders_cdc.customer_name string
-- optional: orders_cdc.customer_city string
-- optional: orders_cdc.customer_country string
-- optional: orders_cdc.product_id string
-- optional: orders_cdc.product_name string
-- optional: orders_cdc.category string
-- optional: orders_cdc.quantity bigint
-- optional: orders_cdc.unit_price double
-- optional: orders_cdc.discount double
-- optional: orders_cdc.total_amount double
-- optional: orders_cdc.currency string
-- optional: orders_cdc.payment_method string
-- optional: orders_cdc.channel string
-- optional: orders_cdc.status string
-- optional: orders_cdc.created_at string
-- optional: orders_cdc.updated_at string
-- optional: orders_cdc.version bigint
-- partitioned_by: order_date
WITH landed AS (
    SELECT *, TRY_CAST(sequence_number AS DECIMAL(38, 0)) AS seq
    FROM orders_cdc
    WHERE "$path" IN (%(paths)s)
),
events AS (
    -- A line that is not a landing row (no event id, order id or numeric sequence) is skipped.
    SELECT
        order_id,
        customer_id,
        customer_name,
        customer_city,
        customer_country,
        product_id,
        product_name,
        category,
        TRY_CAST(quantity AS BIGINT) AS quantity,
        TRY_CAST(unit_price AS DECIMAL(18, 2)) AS unit_price,
        TRY_CAST(discount AS DECIMAL(18, 2)) AS discount,
        TRY_CAST(total_amount AS DECIMAL(18, 2)) AS total_amount,
        currency,
        payment_method,
        channel,
        status,
        TRY(CAST(from_iso8601_timestamp(created_at) AS TIMESTAMP)) AS created_at,
        TRY(CAST(from_iso8601_timestamp(updated_at) AS TIMESTAMP)) AS updated_at,
        TRY_CAST(version AS BIGINT) AS version,
        event_id AS last_event_id,
        seq AS last_sequence_number,
        TRY_CAST(event_time AS TIMESTAMP) AS last_event_time,
        date_format(TRY(CAST(from_iso8601_timestamp(created_at) AS TIMESTAMP)), '%Y-%m-%d')
            AS order_date,
        COALESCE(is_deleted, event_name = 'REMOVE') AS is_removed,
        ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY seq) AS copy_number
    FROM landed
    WHERE event_id IS NOT NULL AND order_id IS NOT NULL AND seq IS NOT NULL
),
ranked AS (
    SELECT
        *,
        ROW_NUMBER() OVER (
            PARTITION BY order_id ORDER BY last_sequence_number DESC, last_event_id
        ) AS recency
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
    is_removed
FROM ranked
WHERE recency = 1
