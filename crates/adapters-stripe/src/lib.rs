//! Stripe for payhook: checks the `Stripe-Signature` header of a webhook
//! call and reads Stripe's event envelope into a [`GatewayEvent`].
//!
//! [`StripeAdapter`] implements [`GatewayAdapter`]. It verifies exactly what
//! Stripe's own libraries verify (HMAC-SHA256 of `"<t>.<raw body>"` keyed with
//! the endpoint secret, any `v1` against any configured secret, a timestamp
//! tolerance) and maps these event types onto the domain (`o` is the
//! event's `data.object`):
//!
//! | Stripe event type | [`EventKind`] | amount | references: transaction id, external id, gateway reference |
//! |---|---|---|---|
//! | `payment_intent.succeeded` | `Succeeded` | `o.amount_received` (else `o.amount`) | `o.metadata.transaction_id`, `o.id`, `o.id` |
//! | `payment_intent.payment_failed` | `Failed` | `o.amount` | the same |
//! | `payment_intent.canceled` | `Canceled` | `o.amount` | the same |
//! | `payment_intent.processing`, `payment_intent.requires_action` | `Pending` | `o.amount` | the same |
//! | `charge.succeeded` (captured) | `Succeeded` | `o.amount` | `o.metadata.transaction_id`, `o.payment_intent`, `o.payment_intent` (or `o.id` without one) |
//! | `charge.failed` | `Failed` | `o.amount` | the same |
//! | `checkout.session.completed` | `o.payment_status` `paid` or `no_payment_required`: `Succeeded`; `unpaid`: `Pending` | `o.amount_total`, none when null | `o.metadata.transaction_id` or else `o.client_reference_id`, the session id `o.id`, `o.payment_intent` |
//! | `checkout.session.async_payment_succeeded` | `Succeeded` | the same | the same |
//! | `checkout.session.async_payment_failed` | `Failed` | the same | the same |
//! | `checkout.session.expired` | `Canceled` | the same | the same |
//! | `charge.refunded` | `Refund`: running total `o.amount_refunded`, and each refund of `o.refunds.data` when the list is embedded | `o.amount_refunded` | `o.metadata.transaction_id`, `o.payment_intent`, `o.payment_intent` (or `o.id` without one) |
//! | `refund.created`, `refund.updated`, `refund.failed`, `charge.refund.updated` | `Refund`: one refund, `o.id`, `o.amount`, `o.status` | `o.amount` | `o.metadata.transaction_id`, `o.payment_intent`, `o.payment_intent` (or `o.charge` without one) |
//! | `charge.dispute.created`, `.updated`, `.closed`, `.funds_withdrawn`, `.funds_reinstated` | `Dispute`: `o.id`, `o.amount`, `o.reason`, `o.status` | `o.amount` | none, `o.payment_intent`, `o.payment_intent` (or `o.charge` without one) |
//! | anything else | `NotHandled` | none | none |
//!
//! Amounts are in `o.currency` (a listed refund's in its own `currency`),
//! rescaled from Stripe's minor unit to the ISO one where they differ. A
//! refund report is dated by the event's `created` (unix seconds), which
//! the domain's ledger uses to order running totals.
//!
//! Statuses are read as Stripe documents them, and any other value is
//! refused, not guessed at:
//!
//! | object | Stripe `status` | payhook |
//! |---|---|---|
//! | Checkout Session (`payment_status`) | `paid`, `no_payment_required` / `unpaid` | `Succeeded` / `Pending` |
//! | Refund | `pending`, `requires_action` / `succeeded` / `failed` / `canceled` | [`RefundStatus`] `Pending` / `Succeeded` / `Failed` / `Canceled` |
//! | Dispute | `warning_needs_response`, `warning_under_review`, `needs_response`, `under_review` / `won` / `lost` / `warning_closed` | [`DisputeStatus`] `Open` / `Won` / `Lost` / `Closed` |
//!
//! The type of a refund or dispute event only says that something
//! changed; the object's status says where it stands. Nothing else of the
//! object is read (a canceled intent's `cancellation_reason`, a failed
//! refund's `failure_reason`, say): it stays in the stored event body.
//!
//! What it deliberately does not do: no IO and no state. It never calls
//! Stripe's API (an event is taken as signed, not re-fetched), never reads
//! the clock (the caller passes `now`), never reads configuration from the
//! environment (the server hands it the secrets), and does not remember
//! event ids: recognising a second delivery is the store's job.
//!
//! [`EventKind`]: payhook_domain::EventKind
//! [`RefundStatus`]: payhook_domain::RefundStatus
//! [`DisputeStatus`]: payhook_domain::DisputeStatus

pub mod api;
mod payload;
mod signature;

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use payhook_domain::ports::{GatewayAdapter, ParseError, VerifyError, WebhookRequest};
use payhook_domain::{GatewayEvent, Secret};
use ring::hmac;

pub use signature::SIGNATURE_HEADER;

/// The gateway name under which Stripe events are stored.
pub const NAME: &str = "stripe";

/// How far the signed timestamp may be from `now`, either way, by default.
/// The same five minutes Stripe's libraries use.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// Why a [`StripeAdapter`] could not be built from its configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The list of secrets is empty: no call could ever verify.
    #[error("no Stripe webhook secret given")]
    NoSecrets,
    /// The secret at this position (0-based) is the empty string, which
    /// anyone could sign with.
    #[error("Stripe webhook secret number {position} is empty")]
    EmptySecret {
        /// Index of the empty secret in the list given.
        position: usize,
    },
}

/// The Stripe gateway: verifies `Stripe-Signature` and parses Stripe events.
///
/// Holds one HMAC key per configured endpoint secret. During a secret
/// rotation Stripe signs with both the old and the new secret, and a call is
/// accepted when any of its `v1` signatures matches any key.
#[derive(Clone)]
pub struct StripeAdapter {
    keys: Vec<hmac::Key>,
    tolerance: Duration,
}

impl StripeAdapter {
    /// An adapter for these endpoint secrets (`whsec_...`, used byte for
    /// byte, prefix included) with the [`DEFAULT_TOLERANCE`].
    ///
    /// Returns [`ConfigError::NoSecrets`] for an empty list and
    /// [`ConfigError::EmptySecret`] when one of them is empty.
    pub fn new(secrets: Vec<Secret>) -> Result<Self, ConfigError> {
        if secrets.is_empty() {
            return Err(ConfigError::NoSecrets);
        }
        let keys = secrets
            .iter()
            .enumerate()
            .map(|(position, secret)| {
                let value = secret.expose();
                if value.is_empty() {
                    return Err(ConfigError::EmptySecret { position });
                }
                // Stripe keys the MAC with the secret's text as is; it does
                // not base64-decode the part after `whsec_`.
                Ok(hmac::Key::new(hmac::HMAC_SHA256, value.as_bytes()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            keys,
            tolerance: DEFAULT_TOLERANCE,
        })
    }

    /// The same adapter, accepting timestamps at most `tolerance` away from
    /// `now` in either direction. Only whole seconds count, since Stripe
    /// signs whole seconds.
    #[must_use]
    pub fn with_tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// The timestamp tolerance in force.
    pub fn tolerance(&self) -> Duration {
        self.tolerance
    }
}

impl fmt::Debug for StripeAdapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeAdapter")
            .field("secrets", &self.keys.len())
            .field("tolerance", &self.tolerance)
            .finish()
    }
}

impl GatewayAdapter for StripeAdapter {
    fn name(&self) -> &'static str {
        NAME
    }

    /// Errors, in the order they are checked: `MissingHeader` without a
    /// `Stripe-Signature` header; `MalformedHeader` when it is oversized or
    /// has no single, numeric `t`; `NoAcceptedSignature` when it has no `v1`
    /// (e.g. only `v0`); `BadSignature` when no `v1` matches; `StaleTimestamp`
    /// when a matching signature is older or newer than the tolerance.
    fn verify(&self, request: &WebhookRequest<'_>, now: DateTime<Utc>) -> Result<(), VerifyError> {
        signature::verify(
            &self.keys,
            request.headers.get(SIGNATURE_HEADER),
            request.body,
            now,
            self.tolerance,
        )
    }

    /// Reads the event envelope. Only the handled types of the table above
    /// need `data.object`; every other type comes back as `NotHandled` with
    /// just its id and type read.
    fn parse(&self, request: &WebhookRequest<'_>) -> Result<GatewayEvent, ParseError> {
        payload::parse(request.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_an_empty_secret_list() {
        assert_eq!(
            StripeAdapter::new(Vec::new()).unwrap_err(),
            ConfigError::NoSecrets
        );
    }

    #[test]
    fn refuses_an_empty_secret_and_says_which() {
        let secrets = vec![Secret::new("whsec_a"), Secret::new("")];
        assert_eq!(
            StripeAdapter::new(secrets).unwrap_err(),
            ConfigError::EmptySecret { position: 1 }
        );
    }

    #[test]
    fn tolerance_defaults_to_five_minutes_and_can_be_changed() {
        let adapter = StripeAdapter::new(vec![Secret::new("whsec_a")]).unwrap();
        assert_eq!(adapter.tolerance(), Duration::from_secs(300));
        let adapter = adapter.with_tolerance(Duration::from_secs(30));
        assert_eq!(adapter.tolerance(), Duration::from_secs(30));
        assert_eq!(adapter.name(), "stripe");
    }

    #[test]
    fn debug_shows_no_secret_material() {
        let adapter =
            StripeAdapter::new(vec![Secret::new("whsec_visible?"), Secret::new("whsec_b")])
                .unwrap();
        let shown = format!("{adapter:?}");
        assert_eq!(shown, "StripeAdapter { secrets: 2, tolerance: 300s }");
    }
}
