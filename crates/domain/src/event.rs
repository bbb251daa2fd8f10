//! What a gateway told us, once verified and parsed: a [`GatewayEvent`].
//!
//! Adapters produce it; the store records it and applies it. It carries the
//! references in the order of the lookup rules, so the rule itself
//! ([`References::lookups`]) lives here and not in any store.

use crate::dispute::Dispute;
use crate::money::Money;
use crate::refund::RefundReport;

/// What happened at the gateway.
///
/// Non-exhaustive: a gateway may bring a kind of its own later.
/// Adapters map any type they do not act on to [`EventKind::NotHandled`].
/// What each kind does to a payment in each status is [`crate::decide`]'s
/// table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// The payment went through: confirm it.
    Succeeded,
    /// The payment was declined or failed.
    Failed,
    /// The payment will not happen: the checkout expired, the intent or
    /// the order was canceled. A later success still completes it.
    Canceled,
    /// The gateway is still working on it (bank debit processing, capture
    /// pending, checkout unpaid). Moves a `created` payment to
    /// `pending_external` and otherwise changes nothing.
    Pending,
    /// Money went back, or may: one or more refunds, or a running total
    /// ([`Report::Refund`]).
    Refund,
    /// A chargeback or inquiry ([`Report::Dispute`]).
    Dispute,
    /// An event type the gateway sends but payhook does not act on.
    NotHandled,
}

impl EventKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
            Self::Pending => "pending",
            Self::Refund => "refund",
            Self::Dispute => "dispute",
            Self::NotHandled => "not_handled",
        }
    }

    /// Reads a stored name back.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "canceled" => Self::Canceled,
            "pending" => Self::Pending,
            "refund" => Self::Refund,
            "dispute" => Self::Dispute,
            "not_handled" => Self::NotHandled,
            _ => return None,
        })
    }
}

/// The ways an event can name its payment, strongest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct References {
    /// payhook's own `TXN-...`, when the shop passed it to the gateway
    /// (Stripe metadata, PayPal `custom_id`, the generic `transaction_id`).
    pub transaction_id: Option<String>,
    /// The gateway's id of the payment as the shop recorded it when marking
    /// it pending (Stripe PaymentIntent id, PayPal order id, generic `payment_id`).
    pub external_id: Option<String>,
    /// The gateway's own reference of this particular object (Stripe charge
    /// or PaymentIntent id, PayPal capture id).
    pub gateway_reference: Option<String>,
}

/// One step of the lookup rules. Every step looks only among the payments
/// of the event's own gateway (`payments.payment_method` equal to
/// [`GatewayEvent::gateway`]): a payment belongs to one gateway, so a call
/// signed with one gateway's secret never finds another gateway's payment,
/// whatever reference it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// Match `payments.transaction_id`.
    TransactionId(&'a str),
    /// Match `payments.external_id`.
    ExternalId(&'a str),
    /// Match the payment's recorded gateway reference, or its external id
    /// (a shop may record the gateway's object id as the external id).
    GatewayReference(&'a str),
}

impl References {
    /// The lookups to try, in the order of the design: transaction id, then
    /// external id, then the gateway's reference. Empty references are skipped.
    pub fn lookups(&self) -> impl Iterator<Item = Lookup<'_>> {
        fn non_empty(value: &Option<String>) -> Option<&str> {
            value.as_deref().filter(|v| !v.is_empty())
        }
        [
            non_empty(&self.transaction_id).map(Lookup::TransactionId),
            non_empty(&self.external_id).map(Lookup::ExternalId),
            non_empty(&self.gateway_reference).map(Lookup::GatewayReference),
        ]
        .into_iter()
        .flatten()
    }

    /// True when no lookup can be made, so the event cannot match anything.
    pub fn is_empty(&self) -> bool {
        self.lookups().next().is_none()
    }
}

/// What a refund or dispute event reports, beyond its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// The refunds and running total of a [`EventKind::Refund`] event.
    Refund(RefundReport),
    /// The dispute of a [`EventKind::Dispute`] event.
    Dispute(Dispute),
}

/// One verified gateway call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayEvent {
    /// The adapter's name, e.g. `stripe`; with `event_id` it identifies the event.
    pub gateway: String,
    /// The gateway's id of the event (`evt_...`, `WH-...`): a second delivery
    /// of the same id is recognised and not re-applied.
    pub event_id: String,
    /// The gateway's own type name, e.g. `payment_intent.succeeded`.
    pub event_type: String,
    /// What happened.
    pub kind: EventKind,
    /// How to find the payment.
    pub references: References,
    /// The amount the gateway reports, when it reports one.
    pub amount: Option<Money>,
    /// The refunds or the dispute, for those kinds; `None` for any other.
    pub report: Option<Report>,
}

impl GatewayEvent {
    /// The name of the first text field that contains U+0000 (NUL), if any.
    ///
    /// Every text of the event is stored, and PostgreSQL's text cannot hold
    /// NUL while SQLite's can: refusing it here, before the store, gives
    /// the same answer on both backends.
    pub fn field_with_nul(&self) -> Option<&'static str> {
        let references = &self.references;
        [
            ("gateway", Some(&self.gateway)),
            ("event_id", Some(&self.event_id)),
            ("event_type", Some(&self.event_type)),
            ("transaction_id", references.transaction_id.as_ref()),
            ("external_id", references.external_id.as_ref()),
            ("gateway_reference", references.gateway_reference.as_ref()),
        ]
        .into_iter()
        .chain(self.report_texts())
        .find(|(_, value)| value.is_some_and(|text| text.contains('\0')))
        .map(|(field, _)| field)
    }

    /// The texts of the refund or dispute detail, named for errors.
    fn report_texts(&self) -> Vec<(&'static str, Option<&String>)> {
        match &self.report {
            None => Vec::new(),
            Some(Report::Refund(report)) => report
                .refunds
                .iter()
                .map(|refund| ("refund_id", Some(&refund.refund_id)))
                .collect(),
            Some(Report::Dispute(dispute)) => vec![
                ("dispute_id", Some(&dispute.dispute_id)),
                ("dispute_reason", dispute.reason.as_ref()),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_follow_the_design_order_and_skip_missing_ones() {
        let all = References {
            transaction_id: Some("TXN-1".into()),
            external_id: Some("pi_1".into()),
            gateway_reference: Some("ch_1".into()),
        };
        assert_eq!(
            all.lookups().collect::<Vec<_>>(),
            [
                Lookup::TransactionId("TXN-1"),
                Lookup::ExternalId("pi_1"),
                Lookup::GatewayReference("ch_1")
            ]
        );
        let partial = References {
            transaction_id: Some(String::new()),
            external_id: None,
            gateway_reference: Some("cap_1".into()),
        };
        assert_eq!(
            partial.lookups().collect::<Vec<_>>(),
            [Lookup::GatewayReference("cap_1")]
        );
        assert!(References::default().is_empty());
    }

    #[test]
    fn the_first_field_with_nul_is_named() {
        let mut event = GatewayEvent {
            gateway: "stripe".into(),
            event_id: "evt_1".into(),
            event_type: "payment_intent.succeeded".into(),
            kind: EventKind::Succeeded,
            references: References {
                transaction_id: Some("TXN-1".into()),
                external_id: None,
                gateway_reference: Some("ch_1".into()),
            },
            amount: None,
            report: None,
        };
        assert_eq!(event.field_with_nul(), None);
        event.references.gateway_reference = Some("ch\0".into());
        assert_eq!(event.field_with_nul(), Some("gateway_reference"));
        event.event_id = "evt_\u{0}1".into();
        assert_eq!(event.field_with_nul(), Some("event_id"));
    }

    #[test]
    fn kinds_round_trip() {
        for kind in [
            EventKind::Succeeded,
            EventKind::Failed,
            EventKind::Canceled,
            EventKind::Pending,
            EventKind::Refund,
            EventKind::Dispute,
            EventKind::NotHandled,
        ] {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
        }
    }
}
