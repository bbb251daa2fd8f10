//! Orders, payments and the payment state machine.
//!
//! Everything here is a value and a pure rule; persisting the result is the
//! store's job. The rules are those of the design brief:
//! `created -> pending_external -> completed | failed | canceled`, a failed
//! or canceled payment may still complete (money moved, so a success always
//! wins), a completed one never goes back, and re-applying a status the
//! payment already has changes nothing. What each gateway event does is
//! [`crate::decide`]'s table.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::dispute::Dispute;
use crate::money::Money;

/// payhook's own id of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrderId(pub i64);

/// payhook's own id of a payment (the `payment_id` of webhook answers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PaymentId(pub i64);

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for PaymentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A status text read from storage or a request that is not one we know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown status {0:?}")]
pub struct UnknownStatus(pub String);

/// Where a payment is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Created by the shop, the customer has not been sent to a gateway yet.
    Created,
    /// The shop sent the customer to a gateway and recorded its external id.
    PendingExternal,
    /// The gateway confirmed the payment; it never goes back to failed.
    Completed,
    /// The gateway reported a failure; a later success may still complete it.
    Failed,
    /// The checkout expired or the payment was canceled at the gateway; a
    /// later success may still complete it.
    Canceled,
    /// Completed, and part of the money went back to the customer.
    PartiallyRefunded,
    /// Completed, and all of the money went back to the customer.
    Refunded,
}

impl PaymentStatus {
    /// The stored and serialised name, e.g. `pending_external`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::PendingExternal => "pending_external",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
            Self::PartiallyRefunded => "partially_refunded",
            Self::Refunded => "refunded",
        }
    }

    /// Every status, in the order of a payment's life.
    pub const ALL: [PaymentStatus; 7] = [
        Self::Created,
        Self::PendingExternal,
        Self::Completed,
        Self::Failed,
        Self::Canceled,
        Self::PartiallyRefunded,
        Self::Refunded,
    ];

    /// True when the gateway confirmed the money: `completed` and the
    /// refunded statuses that only follow it. Such a payment counts towards
    /// its order's `paid_amount` and is never failed or canceled again.
    pub fn has_completed(self) -> bool {
        match self {
            Self::Completed | Self::PartiallyRefunded | Self::Refunded => true,
            Self::Created | Self::PendingExternal | Self::Failed | Self::Canceled => false,
        }
    }
}

impl FromStr for PaymentStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "created" => Self::Created,
            "pending_external" => Self::PendingExternal,
            "completed" => Self::Completed,
            "failed" => Self::Failed,
            "canceled" => Self::Canceled,
            "partially_refunded" => Self::PartiallyRefunded,
            "refunded" => Self::Refunded,
            other => return Err(UnknownStatus(other.to_owned())),
        })
    }
}

impl fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an order is: it becomes paid when its completed payments cover
/// its total.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Its completed payments do not cover its total yet.
    Pending,
    /// Its completed payments cover its total. It takes no new payment.
    Paid,
    /// Every completed payment of it was refunded in full. It takes no new
    /// payment.
    Refunded,
}

impl OrderStatus {
    /// The stored and serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Paid => "paid",
            Self::Refunded => "refunded",
        }
    }

    /// Every status.
    pub const ALL: [OrderStatus; 3] = [Self::Pending, Self::Paid, Self::Refunded];
}

impl FromStr for OrderStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "pending" => Self::Pending,
            "paid" => Self::Paid,
            "refunded" => Self::Refunded,
            other => return Err(UnknownStatus(other.to_owned())),
        })
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An order of the shop, as payhook knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// payhook's id.
    pub id: OrderId,
    /// The shop's own reference of the customer or order.
    pub client_id: String,
    /// What the order costs.
    pub total: Money,
    /// Pending until its completed payments cover `total`.
    pub status: OrderStatus,
    /// The sum of its completed payments' amounts (in `total`'s currency).
    pub paid_amount: Money,
    /// When the order was recorded.
    pub created_at: DateTime<Utc>,
    /// When its status last changed.
    pub updated_at: DateTime<Utc>,
}

/// What the shop supplies to record an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    /// The shop's own reference.
    pub client_id: String,
    /// What the order costs; must be positive.
    pub total: Money,
}

/// The amounts of a confirmation that did not match the payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmountMismatch {
    /// What the payment was created for.
    pub expected: Money,
    /// What the gateway reported.
    pub received: Money,
}

/// One attempt to pay an order through a gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    /// payhook's id.
    pub id: PaymentId,
    /// The order it pays.
    pub order_id: OrderId,
    /// payhook's reference (`TXN-...`), unique, first in the lookup order.
    pub transaction_id: String,
    /// The gateway the shop chose (`stripe`, `paypal`, or a custom name).
    pub payment_method: String,
    /// What the customer should pay.
    pub amount: Money,
    /// Where it is in the state machine.
    pub status: PaymentStatus,
    /// The gateway's id of the payment, recorded when it was marked pending.
    pub external_id: Option<String>,
    /// The gateway's own reference learnt from its events (e.g. a capture id).
    pub gateway_reference: Option<String>,
    /// Set when a confirmation carried another amount than `amount`.
    pub amount_mismatch: Option<AmountMismatch>,
    /// What went back to the customer, in `amount`'s currency (see
    /// [`crate::refund`] for how it is counted); zero until a refund.
    pub refunded_amount: Money,
    /// The current chargeback or inquiry, if any.
    pub dispute: Option<Dispute>,
    /// When the payment was recorded.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// What the payment service hands the store to record a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPayment {
    /// The order to pay.
    pub order_id: OrderId,
    /// Freshly generated `TXN-...` reference.
    pub transaction_id: String,
    /// The gateway the shop chose.
    pub payment_method: String,
    /// What the customer should pay; must be positive.
    pub amount: Money,
}

/// A change the state machine refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransitionError {
    /// A completed payment cannot be sent to a gateway again.
    #[error("payment is already completed")]
    AlreadyCompleted,
}

impl Payment {
    /// What the customer paid: the amount the gateway confirmed when it
    /// differed (a recorded mismatch in the payment's currency), else the
    /// payment's own amount. Refunds are counted against it.
    pub fn amount_received(&self) -> Money {
        self.amount_mismatch
            .map(|mismatch| mismatch.received)
            .filter(|received| received.currency() == self.amount.currency())
            .unwrap_or(self.amount)
    }

    /// The rule for "the customer was sent to the gateway, which calls it
    /// `external_id`". Allowed from `created`, again from `pending_external`
    /// (the shop restarted the checkout) and from `failed` or `canceled`
    /// (the customer retries); refused once the payment has completed.
    pub fn mark_pending(
        &self,
        external_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Payment, TransitionError> {
        match self.status {
            PaymentStatus::Completed
            | PaymentStatus::PartiallyRefunded
            | PaymentStatus::Refunded => Err(TransitionError::AlreadyCompleted),
            PaymentStatus::Created
            | PaymentStatus::PendingExternal
            | PaymentStatus::Failed
            | PaymentStatus::Canceled => {
                let mut next = self.clone();
                next.status = PaymentStatus::PendingExternal;
                next.external_id = Some(external_id.to_owned());
                if self.status != next.status || self.external_id != next.external_id {
                    next.updated_at = now;
                }
                Ok(next)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;

    fn payment(status: PaymentStatus) -> Payment {
        let at = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap();
        Payment {
            id: PaymentId(1),
            order_id: OrderId(1),
            transaction_id: "TXN-1".into(),
            payment_method: "stripe".into(),
            amount: Money::from_minor(15000, Currency::parse("USD").unwrap()),
            status,
            external_id: None,
            gateway_reference: None,
            amount_mismatch: None,
            refunded_amount: Money::from_minor(0, Currency::parse("USD").unwrap()),
            dispute: None,
            created_at: at,
            updated_at: at,
        }
    }

    #[test]
    fn statuses_round_trip_through_their_names() {
        for status in PaymentStatus::ALL {
            assert_eq!(status.as_str().parse::<PaymentStatus>(), Ok(status));
        }
        for status in OrderStatus::ALL {
            assert_eq!(status.as_str().parse::<OrderStatus>(), Ok(status));
        }
        assert!("paid".parse::<PaymentStatus>().is_err());
    }

    #[test]
    fn mark_pending_table() {
        let now = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
        let rows = [
            (PaymentStatus::Created, Ok(PaymentStatus::PendingExternal)),
            (
                PaymentStatus::PendingExternal,
                Ok(PaymentStatus::PendingExternal),
            ),
            (PaymentStatus::Failed, Ok(PaymentStatus::PendingExternal)),
            (PaymentStatus::Canceled, Ok(PaymentStatus::PendingExternal)),
            (
                PaymentStatus::Completed,
                Err(TransitionError::AlreadyCompleted),
            ),
            (
                PaymentStatus::PartiallyRefunded,
                Err(TransitionError::AlreadyCompleted),
            ),
            (
                PaymentStatus::Refunded,
                Err(TransitionError::AlreadyCompleted),
            ),
        ];
        for (from, expected) in rows {
            let result = payment(from).mark_pending("pi_1", now);
            assert_eq!(result.clone().map(|p| p.status), expected, "from {from}");
            if let Ok(next) = result {
                assert_eq!(next.external_id.as_deref(), Some("pi_1"));
                assert_eq!(next.updated_at, now);
            }
        }
    }

    #[test]
    fn marking_pending_again_with_the_same_id_changes_nothing() {
        let now = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
        let mut pending = payment(PaymentStatus::PendingExternal);
        pending.external_id = Some("pi_1".into());
        assert_eq!(pending.mark_pending("pi_1", now), Ok(pending.clone()));
    }
}
