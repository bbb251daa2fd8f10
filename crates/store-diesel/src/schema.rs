//! The tables, written by hand to match both `migrations/sqlite` and
//! `migrations/postgres` with types both backends share (`BigInt` money in
//! minor units, `Text` codes and statuses, `Timestamp` in UTC).

diesel::table! {
    orders (id) {
        id -> BigInt,
        client_id -> Text,
        total_minor -> BigInt,
        currency -> Text,
        status -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        paid_minor -> BigInt,
    }
}

diesel::table! {
    payments (id) {
        id -> BigInt,
        order_id -> BigInt,
        transaction_id -> Text,
        payment_method -> Text,
        amount_minor -> BigInt,
        currency -> Text,
        status -> Text,
        external_id -> Nullable<Text>,
        gateway_reference -> Nullable<Text>,
        mismatch_expected_minor -> Nullable<BigInt>,
        mismatch_expected_currency -> Nullable<Text>,
        mismatch_received_minor -> Nullable<BigInt>,
        mismatch_received_currency -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        refunded_minor -> BigInt,
        refund_total_minor -> Nullable<BigInt>,
        refund_total_at -> Nullable<Timestamp>,
        dispute_id -> Nullable<Text>,
        dispute_status -> Nullable<Text>,
        dispute_amount_minor -> Nullable<BigInt>,
        dispute_currency -> Nullable<Text>,
        dispute_reason -> Nullable<Text>,
    }
}

diesel::table! {
    refunds (id) {
        id -> BigInt,
        payment_id -> BigInt,
        refund_id -> Text,
        amount_minor -> BigInt,
        currency -> Text,
        status -> Text,
        status_at -> Timestamp,
        succeeded_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    webhook_events (id) {
        id -> BigInt,
        gateway -> Text,
        event_id -> Text,
        event_type -> Text,
        kind -> Text,
        outcome -> Text,
        payment_id -> Nullable<BigInt>,
        ref_transaction_id -> Nullable<Text>,
        ref_external_id -> Nullable<Text>,
        ref_gateway_reference -> Nullable<Text>,
        amount_minor -> Nullable<BigInt>,
        currency -> Nullable<Text>,
        attempts -> Integer,
        received_at -> Timestamp,
        processed_at -> Timestamp,
        report -> Nullable<Text>,
        source -> Text,
    }
}

diesel::table! {
    webhook_event_bodies (event_row) {
        event_row -> BigInt,
        received_at -> Timestamp,
        payload -> Binary,
    }
}

diesel::table! {
    webhook_bodies_pruned (event_row) {
        event_row -> BigInt,
        pruned_at -> Timestamp,
    }
}

diesel::table! {
    outbox (id) {
        id -> BigInt,
        kind -> Text,
        order_id -> BigInt,
        payment_id -> BigInt,
        payload -> Text,
        status -> Text,
        attempts -> Integer,
        last_error -> Nullable<Text>,
        next_attempt_at -> Timestamp,
        created_at -> Timestamp,
        delivered_at -> Nullable<Timestamp>,
        locked_until -> Nullable<Timestamp>,
    }
}

diesel::table! {
    reconciliations (payment_id) {
        payment_id -> BigInt,
        due_at -> Nullable<Timestamp>,
        failures -> Integer,
        checked_at -> Nullable<Timestamp>,
        gateway_state -> Nullable<Text>,
        result -> Nullable<Text>,
    }
}

diesel::joinable!(payments -> orders (order_id));
diesel::joinable!(outbox -> payments (payment_id));
diesel::joinable!(refunds -> payments (payment_id));
diesel::joinable!(reconciliations -> payments (payment_id));
diesel::joinable!(webhook_event_bodies -> webhook_events (event_row));
diesel::joinable!(webhook_bodies_pruned -> webhook_events (event_row));
diesel::allow_tables_to_appear_in_same_query!(
    orders,
    payments,
    webhook_events,
    webhook_event_bodies,
    webhook_bodies_pruned,
    outbox,
    refunds,
    reconciliations
);
