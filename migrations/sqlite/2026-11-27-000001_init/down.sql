DROP TABLE outbox;
DROP TABLE webhook_events;
DROP TABLE payments;
DROP TABLE orders;
