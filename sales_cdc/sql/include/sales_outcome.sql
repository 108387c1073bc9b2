-- What an order counts as in the sales measures: a sale, cancelled or returned.
CASE status
    WHEN 'CANCELLED' THEN 'cancelled'
    WHEN 'RETURNED' THEN 'returned'
    ELSE 'sale'
END AS outcome
