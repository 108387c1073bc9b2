-- The landing rows of the objects in `paths` (one object's rows are read by "$path"), with
-- sequence_number as a number (seq; a digits string, NULL when it is not one). Item attributes
-- are cataloged once a row carrying them has landed (`discount` only once a discounted order
-- has); until then they read as NULL:
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
landed AS (
    SELECT *, TRY_CAST(sequence_number AS DECIMAL(38, 0)) AS seq
    FROM orders_cdc
    WHERE "$path" IN (%(paths)s)
),
