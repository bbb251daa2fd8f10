-- The whole life of a payment. Keep in step with migrations/sqlite.
-- Payments may also be canceled or refunded, orders refunded; an order
-- keeps the sum of its completed payments (paid_minor), written in the same
-- transaction as the payment that completes, so that "paid once its
-- completed payments cover its total" is read from the locked order row.
ALTER TABLE orders
    DROP CONSTRAINT orders_status_check,
    ADD CONSTRAINT orders_status_check CHECK (status IN ('pending', 'paid', 'refunded')),
    ADD COLUMN paid_minor BIGINT NOT NULL DEFAULT 0;

UPDATE orders o SET paid_minor = COALESCE((
    SELECT SUM(p.amount_minor) FROM payments p
    WHERE p.order_id = o.id AND p.status = 'completed' AND p.currency = o.currency
), 0);

ALTER TABLE payments
    DROP CONSTRAINT payments_status_check,
    ADD CONSTRAINT payments_status_check CHECK (status IN (
        'created', 'pending_external', 'completed', 'failed', 'canceled',
        'partially_refunded', 'refunded'));
