//! Builders shared by the test modules: currencies, payments, orders and
//! events with readable defaults.

use chrono::{DateTime, Utc};
use payhook_domain::{
    Currency, EventKind, GatewayEvent, Money, OrderId, OrderState, OrderStatus, Payment, PaymentId,
    PaymentStatus, References,
};

/// A currency by code; the tests only use valid ones.
pub fn currency(code: &str) -> Currency {
    Currency::parse(code).expect("test currency is ISO 4217")
}

/// `minor` units of the currency `code`.
pub fn money(minor: i64, code: &str) -> Money {
    Money::from_minor(minor, currency(code))
}

/// A fixed instant, `offset` seconds after 2023-11-14T22:13:20Z.
pub fn at(offset: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(1_700_000_000 + offset, 0).expect("valid timestamp")
}

/// Payment 3 of order 7 for 150.00 USD, in `status`, without references.
pub fn payment(status: PaymentStatus) -> Payment {
    Payment {
        id: PaymentId(3),
        order_id: OrderId(7),
        transaction_id: "TXN-1".into(),
        payment_method: "test".into(),
        amount: money(15000, "USD"),
        status,
        external_id: Some("pi_1".into()),
        gateway_reference: None,
        amount_mismatch: None,
        refunded_amount: money(0, "USD"),
        dispute: None,
        created_at: at(0),
        updated_at: at(0),
    }
}

/// An event of `kind` for `TXN-1`, carrying `amount`.
pub fn event(kind: EventKind, amount: Option<Money>) -> GatewayEvent {
    GatewayEvent {
        gateway: "test".into(),
        event_id: "evt_1".into(),
        event_type: match kind {
            EventKind::Succeeded => "payment.succeeded",
            EventKind::Failed => "payment.failed",
            EventKind::Canceled => "payment.canceled",
            EventKind::Pending => "payment.pending",
            EventKind::NotHandled => "payment.created",
            // `EventKind` is non-exhaustive; a kind added later is some other type.
            _ => "payment.created",
        }
        .into(),
        kind,
        references: References {
            transaction_id: Some("TXN-1".into()),
            external_id: None,
            gateway_reference: None,
        },
        amount,
        report: None,
    }
}

/// Every event kind. `EventKind` is non-exhaustive, so a kind added later
/// must be added here by hand; the tables then fail until it has rows.
pub const KINDS: [EventKind; 5] = [
    EventKind::Succeeded,
    EventKind::Failed,
    EventKind::Canceled,
    EventKind::Pending,
    EventKind::NotHandled,
];

/// The state of an order of `total` whose completed payments are `paid`
/// (id and amount), as a store reads it: paid once they cover the total,
/// and `paid_by` filled only when `decide` needs it.
pub fn order_state(total: Money, paid: &[(PaymentId, Money)]) -> OrderState {
    let mut state = OrderState::unpaid(total);
    for (id, amount) in paid {
        state.paid_amount = state
            .paid_amount
            .checked_add(*amount)
            .expect("test amounts share the order's currency");
        state.paid_by.push(*id);
    }
    if state.paid_amount.minor() >= total.minor() && !paid.is_empty() {
        state.status = OrderStatus::Paid;
    }
    if !OrderState::needs_paid_by(state.status, EventKind::Succeeded) {
        state.paid_by.clear();
    }
    // None of them is refunded.
    state.paid_by_refunded = state.paid_by.is_empty();
    state
}
