-- orders_current: one row per live order, the CDC projection of the raw log orders_cdc.
-- For each order_id the event with the greatest sequence_number (a digits string, compared as a
-- number) among the de-duplicated events wins; the order is absent when that event is a REMOVE.
-- A full rebuild over the whole log, so late and out-of-order events can never resurrect a
-- deleted order. Partition column order_date comes last (Athena CTAS rule). A created_at that is
-- not ISO-8601 gives a NULL order_date (Hive's default partition): the order_date_known check
-- names such orders instead of the whole projection failing.
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
),
events AS (
    -- A line that is not a landing row (no event id, order id or numeric sequence) is skipped;
    -- orders_cdc_stats counts those lines.
    SELECT *, ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY seq) AS copy_number
    FROM landed
    WHERE event_id IS NOT NULL AND order_id IS NOT NULL AND seq IS NOT NULL
),
ranked AS (
    SELECT
        *,
        ROW_NUMBER() OVER (PARTITION BY order_id ORDER BY seq DESC, event_id) AS recency
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
    CAST(unit_price AS DECIMAL(18, 2)) AS unit_price,
    CAST(discount AS DECIMAL(18, 2)) AS discount,
    CAST(total_amount AS DECIMAL(18, 2)) AS total_amount,
    currency,
    payment_method,
    channel,
    status,
    TRY(CAST(from_iso8601_timestamp(created_at) AS TIMESTAMP)) AS created_at,
    TRY(CAST(from_iso8601_timestamp(updated_at) AS TIMESTAMP)) AS updated_at,
    version,
    event_id AS last_event_id,
    seq AS last_sequence_number,
    TRY_CAST(event_time AS TIMESTAMP) AS last_event_time,
    date_format(TRY(CAST(from_iso8601_timestamp(created_at) AS TIMESTAMP)), '%Y-%m-%d') AS order_date
FROM ranked
WHERE recency = 1 AND NOT COALESCE(is_deleted, event_name = 'REMOVE')
