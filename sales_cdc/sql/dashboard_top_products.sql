-- dashboard_top_products: per currency, the ten products with the most net revenue and the ten
-- with the most units sold over the dashboard's date range (from daily_sales_by_product): the
-- stock moving out. A product in both lists appears once, with both ranks.
WITH products AS (
    SELECT
        product_id,
        MAX(product_name) AS product_name,
        MAX(category) AS category,
        currency,
        CAST(SUM(orders) AS BIGINT) AS orders,
        CAST(SUM(units) AS BIGINT) AS units,
        CAST(SUM(net_revenue) AS DECIMAL(18, 2)) AS net_revenue
    FROM daily_sales_by_product
    WHERE order_date BETWEEN %(start_date)s AND %(end_date)s AND currency IN (%(currencies)s)
    GROUP BY product_id, currency
),
ranked AS (
    SELECT
        *,
        ROW_NUMBER() OVER (
            PARTITION BY currency ORDER BY net_revenue DESC, product_id
        ) AS revenue_rank,
        ROW_NUMBER() OVER (PARTITION BY currency ORDER BY units DESC, product_id) AS units_rank
    FROM products
    WHERE orders > 0
)
SELECT
    product_id,
    product_name,
    category,
    currency,
    orders,
    units,
    net_revenue,
    revenue_rank,
    units_rank
FROM ranked
WHERE revenue_rank <= 10 OR units_rank <= 10
ORDER BY currency, revenue_rank
