//! PayPal for payhook: checks the transmission signature of a PayPal webhook
//! call against a pinned signing certificate and reads PayPal's event
//! envelope into a [`GatewayEvent`].
//!
//! [`PaypalAdapter`] implements [`GatewayAdapter`]. PayPal signs
//! `<transmission id>|<transmission time>|<webhook id>|<CRC32 of the raw body>`
//! with RSA PKCS#1 v1.5 and SHA-256 and sends the signature and its inputs in
//! five `PAYPAL-*` headers; the adapter rebuilds that message with the
//! configured webhook id and checks the signature with the RSA key of a
//! certificate the operator pinned. It maps these event types onto the
//! domain:
//!
//! | PayPal event type | resource | [`EventKind`] | references (lookup order) | amount |
//! |---|---|---|---|---|
//! | `PAYMENT.CAPTURE.COMPLETED` | capture | `Succeeded` | `custom_id` (else `invoice_id`), `supplementary_data.related_ids.order_id` as external id, the capture `id` as gateway reference | `amount`, required |
//! | `PAYMENT.CAPTURE.DENIED`, `PAYMENT.CAPTURE.DECLINED` | capture | `Failed` | as above | as above |
//! | `PAYMENT.CAPTURE.PENDING` | capture | `Pending` | as above | as above |
//! | `CHECKOUT.ORDER.APPROVED` | checkout order | `Pending` | `purchase_units[0].custom_id` (else `invoice_id`), the order `id` as external id; no gateway reference (there is no capture yet) | `purchase_units[0].amount` when present |
//! | `PAYMENT.CAPTURE.REFUNDED` | refund | `Refund` | the refund's own `custom_id`, then the capture id (the last segment of the `links[]` entry with `rel` `up` whose path ends in `/captures/<id>`) as gateway reference | `amount` (this refund), required |
//! | `PAYMENT.CAPTURE.REVERSED` | refund | `Dispute` | as `PAYMENT.CAPTURE.REFUNDED` | `amount`, required |
//! | `CUSTOMER.DISPUTE.CREATED`, `.UPDATED`, `.RESOLVED` | dispute | `Dispute` | `disputed_transactions[0].custom` (else `invoice_number`), then its `seller_transaction_id` (the capture id) as gateway reference | `dispute_amount`, required |
//! | anything else | not read | `NotHandled` | none | none |
//!
//! Refunds and disputes also carry a [`Report`]:
//!
//! | PayPal event type | report |
//! |---|---|
//! | `PAYMENT.CAPTURE.REFUNDED` | one refund: id `id`, `amount`, `status` (`COMPLETED` succeeded, `PENDING` pending, `FAILED` failed, `CANCELLED` canceled); running total `seller_payable_breakdown.total_refunded_amount` when present; reported at the event's `create_time`, else the refund's `update_time`, else its `create_time` |
//! | `PAYMENT.CAPTURE.REVERSED` | a dispute `lost` (PayPal took the money back): id `id` (the reversal's), `amount`, reason `status_details.reason` when present |
//! | `CUSTOMER.DISPUTE.CREATED`, `.UPDATED` | a dispute `open`: `dispute_id`, `dispute_amount`, `reason` |
//! | `CUSTOMER.DISPUTE.RESOLVED` | the same, with `dispute_outcome.outcome_code` `RESOLVED_SELLER_FAVOUR` won, `RESOLVED_BUYER_FAVOUR` lost, any other (or none) closed |
//!
//! A refund names its capture only through its `up` link, and carries the
//! capture's `custom_id` only when the shop passed it again when refunding;
//! the capture id that `PAYMENT.CAPTURE.COMPLETED` recorded is what finds
//! the payment of a refund made from PayPal's dashboard.
//!
//! What it deliberately does not do: no IO and no state. It never fetches
//! the certificate named in `PAYPAL-CERT-URL` (the URL is only checked to be
//! PayPal's, and the key comes from the pinned certificate), never calls
//! PayPal's verify-webhook-signature API, never reads a file, the clock or the
//! environment (the server hands it the webhook id and the PEM text, and the
//! caller passes `now`), and does not remember event ids: recognising a second
//! delivery is the store's job. The pinned certificates are trusted because
//! the operator configured them: their issuer chain and validity dates are
//! not checked.
//!
//! For reconciliation, [`api::order_state`] reads PayPal's Orders v2
//! `order` object (the answer of `GET /v2/checkout/orders/{id}`) into a
//! [`GatewayState`](payhook_domain::GatewayState); fetching it is
//! `payhook-paypal-api`'s job.
//!
//! [`EventKind`]: payhook_domain::EventKind
//! [`Report`]: payhook_domain::Report

pub mod api;
mod certificate;
mod dispute;
mod payload;
mod refund;
mod signature;

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use payhook_domain::ports::{GatewayAdapter, ParseError, VerifyError, WebhookRequest};
use payhook_domain::GatewayEvent;

use crate::certificate::PinnedKey;

pub use signature::{
    AUTH_ALGO_HEADER, CERT_URL_HEADER, SUPPORTED_AUTH_ALGO, TRANSMISSION_ID_HEADER,
    TRANSMISSION_SIG_HEADER, TRANSMISSION_TIME_HEADER,
};

/// The gateway name under which PayPal events are stored.
pub const NAME: &str = "paypal";

/// How far the transmission time may be from `now`, either way, by default.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// Why a [`PaypalAdapter`] could not be built from its configuration.
///
/// Certificate positions count the `CERTIFICATE` blocks of the PEM text
/// from 0, in the order they appear.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The webhook id is empty: PayPal signs it into every message, so no
    /// call could ever verify.
    #[error("PayPal webhook id is empty")]
    EmptyWebhookId,
    /// The webhook id contains whitespace, a control character or `|`,
    /// which PayPal's ids never do (a trailing newline from a file is the
    /// usual cause); every call would fail to verify.
    #[error("PayPal webhook id contains whitespace, a control character or '|'")]
    InvalidWebhookId,
    /// The PEM text holds no `-----BEGIN CERTIFICATE-----` block.
    #[error("no certificate in the PayPal certificate PEM")]
    NoCertificate,
    /// A `CERTIFICATE` block is unterminated, is not base64, or is not a
    /// DER X.509 certificate.
    #[error("PayPal certificate number {position} cannot be read")]
    InvalidCertificate {
        /// Position of the certificate in the PEM text.
        position: usize,
    },
    /// The certificate's public key is not an RSA (`rsaEncryption`) key;
    /// PayPal signs with `SHA256withRSA` only.
    #[error("PayPal certificate number {position} does not hold an RSA key")]
    NotRsa {
        /// Position of the certificate in the PEM text.
        position: usize,
    },
    /// The RSA key is unreadable or outside what verification accepts
    /// (a 2048- to 8192-bit modulus, an odd exponent from 3 to 2^33 - 1).
    #[error("PayPal certificate number {position} has an unusable RSA key: {reason}")]
    UnsupportedRsaKey {
        /// Position of the certificate in the PEM text.
        position: usize,
        /// What is wrong with the key.
        reason: &'static str,
    },
}

/// The PayPal gateway: verifies PayPal's transmission signature and parses
/// PayPal events.
///
/// Holds the configured webhook id and the RSA public key of every pinned
/// certificate. When PayPal rotates its signing certificate, the operator
/// pins both the old and the new one (several certificates in one PEM) and
/// a call is accepted when any of them verifies its signature.
#[derive(Clone)]
pub struct PaypalAdapter {
    webhook_id: String,
    keys: Vec<PinnedKey>,
    tolerance: Duration,
}

impl PaypalAdapter {
    /// An adapter for the webhook `webhook_id` (as shown in PayPal's
    /// dashboard, e.g. `1JE4291016473214C`) that trusts the certificates in
    /// `certificates_pem`, with the [`DEFAULT_TOLERANCE`].
    ///
    /// `certificates_pem` is the text of a PEM file with one or more
    /// `CERTIFICATE` blocks; text around them and blocks of other kinds are
    /// ignored. Reading the file is the caller's job.
    ///
    /// Returns [`ConfigError::EmptyWebhookId`] or
    /// [`ConfigError::InvalidWebhookId`] for an unusable id,
    /// [`ConfigError::NoCertificate`] when the PEM has no certificate, and
    /// [`ConfigError::InvalidCertificate`], [`ConfigError::NotRsa`] or
    /// [`ConfigError::UnsupportedRsaKey`] for the first certificate that
    /// cannot be used.
    pub fn new(webhook_id: String, certificates_pem: &[u8]) -> Result<Self, ConfigError> {
        if webhook_id.is_empty() {
            return Err(ConfigError::EmptyWebhookId);
        }
        // The id is one field of a `|`-separated message: a `|` in it would
        // make the message ambiguous, and whitespace is always a mistake.
        if webhook_id
            .chars()
            .any(|c| c == '|' || c.is_whitespace() || c.is_control())
        {
            return Err(ConfigError::InvalidWebhookId);
        }
        let keys = certificate::pinned_keys(certificates_pem)?;
        Ok(Self {
            webhook_id,
            keys,
            tolerance: DEFAULT_TOLERANCE,
        })
    }

    /// The same adapter, accepting transmission times at most `tolerance`
    /// away from `now` in either direction.
    #[must_use]
    pub fn with_tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// The timestamp tolerance in force.
    pub fn tolerance(&self) -> Duration {
        self.tolerance
    }

    /// How many certificates are pinned.
    pub fn certificate_count(&self) -> usize {
        self.keys.len()
    }
}

impl fmt::Debug for PaypalAdapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The webhook id cannot sign anything, but it is account
        // configuration and has no business in logs.
        f.debug_struct("PaypalAdapter")
            .field("webhook_id", &format_args!("[redacted]"))
            .field("certificates", &self.keys.len())
            .field("tolerance", &self.tolerance)
            .finish()
    }
}

impl GatewayAdapter for PaypalAdapter {
    fn name(&self) -> &'static str {
        NAME
    }

    /// Errors, in the order they are checked: `MissingHeader` naming the
    /// first absent `PAYPAL-*` header (transmission id, time, signature,
    /// cert URL, auth algo); `MalformedHeader` for an oversized header or an
    /// empty transmission id or one containing `|`; `UnsupportedAlgorithm`
    /// when `PAYPAL-AUTH-ALGO` is not `SHA256withRSA`; `UntrustedCertificate`
    /// when `PAYPAL-CERT-URL` is not an `https` URL on `paypal.com` or one of
    /// its subdomains; `MalformedHeader` when the time is not RFC 3339 or
    /// the signature is not base64; `BadSignature` when no pinned
    /// certificate verifies the signature; `StaleTimestamp` when a valid
    /// signature's transmission time is further from `now` than the
    /// tolerance.
    fn verify(&self, request: &WebhookRequest<'_>, now: DateTime<Utc>) -> Result<(), VerifyError> {
        signature::verify(
            &self.keys,
            &self.webhook_id,
            request.headers,
            request.body,
            now,
            self.tolerance,
        )
    }

    /// Reads the event envelope. Only the handled types of the crate
    /// documentation's table need `resource` (`MissingField("resource")`
    /// without it, `InvalidField` naming the first wrongly typed field in
    /// it); every other type comes back as `NotHandled` with just its id and
    /// type read.
    fn parse(&self, request: &WebhookRequest<'_>) -> Result<GatewayEvent, ParseError> {
        payload::parse(request.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT: &[u8] = include_bytes!("../tests/fixtures/test-only-cert.pem");

    #[test]
    fn refuses_an_empty_webhook_id() {
        assert_eq!(
            PaypalAdapter::new(String::new(), CERT).unwrap_err(),
            ConfigError::EmptyWebhookId
        );
    }

    #[test]
    fn refuses_a_webhook_id_with_whitespace_or_a_separator() {
        for id in [
            "1JE4291016473214C\n",
            " 1JE4",
            "1JE|42",
            "1JE\t42",
            "1JE\u{0}",
        ] {
            assert_eq!(
                PaypalAdapter::new(id.to_owned(), CERT).unwrap_err(),
                ConfigError::InvalidWebhookId,
                "{id:?}"
            );
        }
    }

    #[test]
    fn the_webhook_id_is_checked_before_the_certificates() {
        assert_eq!(
            PaypalAdapter::new(String::new(), b"").unwrap_err(),
            ConfigError::EmptyWebhookId
        );
    }

    #[test]
    fn tolerance_defaults_to_five_minutes_and_can_be_changed() {
        let adapter = PaypalAdapter::new("1JE4291016473214C".into(), CERT).unwrap();
        assert_eq!(adapter.tolerance(), Duration::from_secs(300));
        assert_eq!(adapter.certificate_count(), 1);
        let adapter = adapter.with_tolerance(Duration::from_secs(30));
        assert_eq!(adapter.tolerance(), Duration::from_secs(30));
        assert_eq!(adapter.name(), "paypal");
    }

    #[test]
    fn debug_shows_neither_the_webhook_id_nor_key_material() {
        let adapter = PaypalAdapter::new("WEBHOOK-ID-VISIBLE".into(), CERT).unwrap();
        let shown = format!("{adapter:?}");
        assert_eq!(
            shown,
            "PaypalAdapter { webhook_id: [redacted], certificates: 1, tolerance: 300s }"
        );
    }
}
