//! Builders shared by the test modules: currencies, payments and events with
//! readable defaults.

use chrono::{DateTime, Utc};
use payhook_domain::{
    Currency, EventKind, GatewayEvent, Money, OrderId, Payment, PaymentId, PaymentStatus,
    References,
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
    }
}
