-- Back to the first wave's statuses; rows with the new ones must be gone.
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;
CREATE TABLE orders_old (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    client_id   TEXT    NOT NULL,
    total_minor BIGINT  NOT NULL,
    currency    TEXT    NOT NULL,
    status      TEXT    NOT NULL CHECK (status IN ('pending', 'paid')),
    created_at  TIMESTAMP NOT NULL,
    updated_at  TIMESTAMP NOT NULL
);
INSERT INTO orders_old SELECT id, client_id, total_minor, currency, status, created_at, updated_at
FROM orders;
DROP TABLE orders;
ALTER TABLE orders_old RENAME TO orders;
CREATE TABLE payments_old (
    id                         INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id                   BIGINT  NOT NULL REFERENCES orders (id),
    transaction_id             TEXT    NOT NULL UNIQUE,
    payment_method             TEXT    NOT NULL,
    amount_minor               BIGINT  NOT NULL,
    currency                   TEXT    NOT NULL,
    status                     TEXT    NOT NULL
        CHECK (status IN ('created', 'pending_external', 'completed', 'failed')),
    external_id                TEXT,
    gateway_reference          TEXT,
    mismatch_expected_minor    BIGINT,
    mismatch_expected_currency TEXT,
    mismatch_received_minor    BIGINT,
    mismatch_received_currency TEXT,
    created_at                 TIMESTAMP NOT NULL,
    updated_at                 TIMESTAMP NOT NULL
);
INSERT INTO payments_old SELECT * FROM payments;
DROP TABLE payments;
ALTER TABLE payments_old RENAME TO payments;
CREATE UNIQUE INDEX payments_method_external_id ON payments (payment_method, external_id);
CREATE INDEX payments_external_id ON payments (external_id);
CREATE INDEX payments_gateway_reference ON payments (gateway_reference);
CREATE INDEX payments_order_id ON payments (order_id);
COMMIT;
PRAGMA foreign_keys = ON;
