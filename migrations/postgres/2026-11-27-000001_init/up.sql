-- payhook schema, PostgreSQL flavour. Keep in step with migrations/sqlite:
-- same tables, same columns, same constraints (a test compares them).

CREATE TABLE orders (
    id          BIGSERIAL PRIMARY KEY,
    client_id   TEXT    NOT NULL,
    total_minor BIGINT  NOT NULL,
    currency    TEXT    NOT NULL,
    status      TEXT    NOT NULL CHECK (status IN ('pending', 'paid')),
    created_at  TIMESTAMP NOT NULL,
    updated_at  TIMESTAMP NOT NULL
);

CREATE TABLE payments (
    id                         BIGSERIAL PRIMARY KEY,
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

-- The lookup rules: transaction id (unique above), then external id, then
-- the gateway's reference. Each step is one index probe.
CREATE UNIQUE INDEX payments_method_external_id ON payments (payment_method, external_id);
CREATE INDEX payments_external_id ON payments (external_id);
CREATE INDEX payments_gateway_reference ON payments (gateway_reference);
CREATE INDEX payments_order_id ON payments (order_id);

CREATE TABLE webhook_events (
    id                    BIGSERIAL PRIMARY KEY,
    gateway               TEXT    NOT NULL,
    event_id              TEXT    NOT NULL,
    event_type            TEXT    NOT NULL,
    kind                  TEXT    NOT NULL,
    outcome               TEXT    NOT NULL,
    payment_id            BIGINT REFERENCES payments (id),
    ref_transaction_id    TEXT,
    ref_external_id       TEXT,
    ref_gateway_reference TEXT,
    amount_minor          BIGINT,
    currency              TEXT,
    payload               BYTEA   NOT NULL,
    attempts              INTEGER NOT NULL,
    received_at           TIMESTAMP NOT NULL,
    processed_at          TIMESTAMP NOT NULL
);

-- Exactly-once: the second delivery of a gateway's event id hits this index.
CREATE UNIQUE INDEX webhook_events_gateway_event_id ON webhook_events (gateway, event_id);
CREATE INDEX webhook_events_outcome ON webhook_events (outcome);
CREATE INDEX webhook_events_ref_external_id ON webhook_events (ref_external_id);

CREATE TABLE outbox (
    id              BIGSERIAL PRIMARY KEY,
    kind            TEXT    NOT NULL,
    order_id        BIGINT  NOT NULL REFERENCES orders (id),
    payment_id      BIGINT  NOT NULL REFERENCES payments (id),
    payload         TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts        INTEGER NOT NULL,
    last_error      TEXT,
    next_attempt_at TIMESTAMP NOT NULL,
    created_at      TIMESTAMP NOT NULL,
    delivered_at    TIMESTAMP
);

CREATE INDEX outbox_status_next_attempt ON outbox (status, next_attempt_at);
