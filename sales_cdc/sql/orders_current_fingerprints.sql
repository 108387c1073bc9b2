-- orders_current_fingerprints: per order_date, the row count and a content fingerprint of the
-- sorted (order_id, version, status, total_amount) of its orders; a changed fingerprint means the
-- day's orders were added, removed or updated since the fingerprint was taken.
SELECT
    order_date,
    COUNT(*) AS orders,
    to_hex(md5(to_utf8(array_join(array_sort(array_agg(
        concat_ws('|', order_id, CAST(version AS VARCHAR), status, CAST(total_amount AS VARCHAR))
    )), ',')))) AS fingerprint
FROM orders_current
GROUP BY order_date
ORDER BY order_date
