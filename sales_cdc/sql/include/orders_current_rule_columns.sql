-- The rules of orders_current's checks over the rows of `checked`: rows breaking each rule, with
-- one offending order_id per rule as a sample (orders_current_checks*.sql).
COUNT_IF(order_id IS NULL) AS null_order_ids,
COUNT_IF(quantity IS NULL OR quantity <= 0) AS bad_quantity,
MAX(CASE WHEN quantity IS NULL OR quantity <= 0 THEN order_id END) AS bad_quantity_sample,
COUNT_IF(COALESCE(unit_price < 0 OR total_amount < 0 OR discount < 0, FALSE))
    AS negative_amounts,
MAX(CASE WHEN COALESCE(unit_price < 0 OR total_amount < 0 OR discount < 0, FALSE) THEN order_id END)
    AS negative_amounts_sample,
COUNT_IF(
    status IS NULL
    OR status NOT IN ('PLACED', 'PAID', 'SHIPPED', 'DELIVERED', 'CANCELLED', 'RETURNED')
) AS bad_status,
MAX(
    CASE
        WHEN status IS NULL
            OR status NOT IN ('PLACED', 'PAID', 'SHIPPED', 'DELIVERED', 'CANCELLED', 'RETURNED')
            THEN order_id
    END
) AS bad_status_sample,
COUNT_IF(unit_price IS NULL OR total_amount IS NULL) AS invalid_amounts,
MAX(CASE WHEN unit_price IS NULL OR total_amount IS NULL THEN order_id END)
    AS invalid_amounts_sample,
COUNT_IF(last_event_time IS NULL) AS invalid_event_time,
MAX(CASE WHEN last_event_time IS NULL THEN order_id END) AS invalid_event_time_sample,
COUNT_IF(order_date IS NULL) AS unknown_order_date,
MAX(CASE WHEN order_date IS NULL THEN order_id END) AS unknown_order_date_sample
