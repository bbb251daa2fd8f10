-- The whole life of a payment. Keep in step with migrations/postgres.
-- Payments may also be canceled or refunded, orders refunded; an order
-- keeps the sum of its completed payments (paid_minor). SQLite cannot alter
-- a CHECK constraint, so orders and payments are rebuilt (the documented
-- twelve-step way: foreign keys off, new table, copy, drop, rename). The
-- rows are copied with their ids, so every reference stays valid; the
-- store's migration test runs `PRAGMA foreign_key_check` afterwards.
PRAGMA foreign_keys = OFF;
-- IMMEDIATE: take the write lock now, waiting out the pool's other
-- connections (busy_timeout), instead of failing when a read turns into a
-- write halfway through.
BEGIN IMMEDIATE;

CREATE TABLE orders_new (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    client_id   TEXT    NOT NULL,
    total_minor BIGINT  NOT NULL,
    currency    TEXT    NOT NULL,
    status      TEXT    NOT NULL CHECK (status IN ('pending', 'paid', 'refunded')),
    created_at  TIMESTAMP NOT NULL,
    updated_at  TIMESTAMP NOT NULL,
    paid_minor  BIGINT  NOT NULL DEFAULT 0
);
INSERT INTO orders_new (id, client_id, total_minor, currency, status, created_at, updated_at,
                        paid_minor)
SELECT o.id, o.client_id, o.total_minor, o.currency, o.status, o.created_at, o.updated_at,
       COALESCE((SELECT SUM(p.amount_minor) FROM payments p
                 WHERE p.order_id = o.id AND p.status = 'completed'
                   AND p.currency = o.currency), 0)
FROM orders o;
DROP TABLE orders;
ALTER TABLE orders_new RENAME TO orders;

CREATE TABLE payments_new (
    id                         INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id                   BIGINT  NOT NULL REFERENCES orders (id),
    transaction_id             TEXT    NOT NULL UNIQUE,
    payment_method             TEXT    NOT NULL,
    amount_minor               BIGINT  NOT NULL,
    currency                   TEXT    NOT NULL,
    status                     TEXT    NOT NULL
        CHECK (status IN ('created', 'pending_external', 'completed', 'failed', 'canceled',
                          'partially_refunded', 'refunded')),
    external_id                TEXT,
    gateway_reference          TEXT,
    mismatch_expected_minor    BIGINT,
    mismatch_expected_currency TEXT,
    mismatch_received_minor    BIGINT,
    mismatch_received_currency TEXT,
    created_at                 TIMESTAMP NOT NULL,
    updated_at                 TIMESTAMP NOT NULL
);
INSERT INTO payments_new SELECT * FROM payments;
DROP TABLE payments;
ALTER TABLE payments_new RENAME TO payments;
CREATE UNIQUE INDEX payments_method_external_id ON payments (payment_method, external_id);
CREATE INDEX payments_external_id ON payments (external_id);
CREATE INDEX payments_gateway_reference ON payments (gateway_reference);
CREATE INDEX payments_order_id ON payments (order_id);

COMMIT;
PRAGMA foreign_keys = ON;
