//! The generic gateway for payhook: verifies a custom gateway's webhook call
//! and reads its flat payment payload into a [`GatewayEvent`].
//!
//! The payload is
//!
//! ```json
//! {"payment_id": "ext_123", "transaction_id": "TXN-123456", "status": "completed",
//!  "amount": 150.00, "currency": "USD", "metadata": {}}
//! ```
//!
//! with `status` one of
//!
//! | `status` | [`EventKind`] | event type stored |
//! |---|---|---|
//! | `completed` | `Succeeded` | `payment.completed` |
//! | `failed` | `Failed` | `payment.failed` |
//! | `pending` | `Pending` (the gateway is still working on it) | `payment.pending` |
//! | `canceled` | `Canceled` (the payment will not happen) | `payment.canceled` |
//! | `refunded` | `Refund`: one refund, `refund_id`, of `amount`, succeeded | `payment.refunded` |
//!
//! Every status needs the same fields (a reference, `amount`, `currency`);
//! `refunded` also needs `refund_id`, the gateway's id of that refund, and
//! its `amount` is that refund's, not the payment's:
//!
//! ```json
//! {"payment_id": "ext_123", "transaction_id": "TXN-123456", "status": "refunded",
//!  "refund_id": "rf_789", "amount": "50.00", "currency": "USD"}
//! ```
//!
//! A refund is reported once it is done, one at a time, with no running
//! total: a second report of the same `refund_id` (under a new event id)
//! counts once. Every generic refund is dated at the Unix epoch: the time
//! only orders the reports of one refund, which all say "succeeded", and
//! no header dates the refund itself (`webhook-timestamp` changes with
//! every delivery attempt).
//!
//! Any other status is an error, not `NotHandled`, since the generic
//! gateway has no event types of its own to ignore. Names are exact and
//! lower-case, American `canceled` only.
//!
//! [`GenericAdapter`] implements [`GatewayAdapter`] and accepts two
//! signature schemes, chosen by which header the call carries:
//!
//! | header | scheme |
//! |---|---|
//! | `webhook-signature` (with `webhook-id`, `webhook-timestamp`) | [Standard Webhooks]: `v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`, timestamp tolerance |
//! | `X-Webhook-Signature` | `sha256=<hex HMAC-SHA256 of the raw body>`, no timestamp |
//!
//! The event id that deduplicates deliveries comes only from signed bytes:
//!
//! | scheme | event id |
//! |---|---|
//! | Standard Webhooks | the `webhook-id` header, which the signature covers |
//! | `X-Webhook-Signature`, and unsigned calls | the payload's optional `event_id` string, else `sha256:<hex SHA-256 of the raw body>` |
//!
//! The simple scheme signs the body alone, so an id taken from a header
//! (`Idempotency-Key`, or `webhook-id` without `webhook-signature`) would let
//! anyone re-send a captured call as a new event, or send it first under the
//! id of a later real one. Such headers are not read. What the simple scheme
//! still cannot do is tell an old call from a new one: a captured body
//! verifies for as long as its secret is configured, and is a no-op only
//! while its event row is kept with a final outcome. Standard Webhooks,
//! whose timestamp is signed, is the scheme to prefer.
//!
//! What it deliberately does not do: no IO and no state. It never reads the
//! clock (the caller passes `now`) or the environment (the server hands it
//! the secrets, or asks for [`GenericAdapter::unsigned`] explicitly), does
//! not remember event ids (recognising a second delivery is the store's
//! job), and does not read `metadata` or any field besides the five above,
//! `event_id` and, for a refund, `refund_id`.
//!
//! [Standard Webhooks]: https://www.standardwebhooks.com/
//! [`EventKind`]: payhook_domain::EventKind

mod event_id;
mod headers;
mod payload;
mod signature;

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use payhook_domain::ports::{GatewayAdapter, ParseError, VerifyError, WebhookRequest};
use payhook_domain::{GatewayEvent, Secret};

pub use event_id::MAX_EVENT_ID_BYTES;
pub use headers::{
    SIMPLE_SIGNATURE_HEADER, WEBHOOK_ID_HEADER, WEBHOOK_SIGNATURE_HEADER, WEBHOOK_TIMESTAMP_HEADER,
};

/// The gateway name under which generic events are stored.
pub const NAME: &str = "generic";

/// How far a Standard Webhooks timestamp may be from `now`, either way, by
/// default: the five minutes the Standard Webhooks libraries use.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// Why a [`GenericAdapter`] could not be built from its configuration. The
/// messages name the secret by position, never by value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The list of secrets is empty: no call could ever verify. (Accepting
    /// unsigned calls is [`GenericAdapter::unsigned`], never an empty list.)
    #[error("no generic webhook secret given")]
    NoSecrets,
    /// The secret at this position (0-based) is empty, or is `whsec_` with
    /// nothing after it: anyone could sign with an empty key.
    #[error("generic webhook secret number {position} is empty")]
    EmptySecret {
        /// Index of the secret in the list given.
        position: usize,
    },
    /// The secret at this position (0-based) starts with `whsec_` but the
    /// rest is not standard, padded base64.
    #[error("generic webhook secret number {position} starts with whsec_ but is not base64")]
    InvalidSecret {
        /// Index of the secret in the list given.
        position: usize,
    },
}

/// How calls are authenticated.
#[derive(Clone)]
enum Signing {
    /// One key pair per configured secret; a call must be signed by one.
    Signed(Vec<signature::Keys>),
    /// Any call is taken as genuine. Local testing only.
    Unsigned,
}

/// The generic gateway: verifies either signature scheme and parses the
/// generic payload.
///
/// Built either with secrets ([`GenericAdapter::signed`]), when every call
/// must carry a valid signature, or explicitly without
/// ([`GenericAdapter::unsigned`]). There is no mode in between: an adapter
/// with secrets refuses an unsigned call whatever else is configured.
#[derive(Clone)]
pub struct GenericAdapter {
    signing: Signing,
    tolerance: Duration,
}

impl GenericAdapter {
    /// An adapter that accepts a call only when it is signed with one of
    /// these secrets, with the [`DEFAULT_TOLERANCE`]. Several secrets are a
    /// rotation: a call signed with any of them verifies.
    ///
    /// How a secret is used depends on the scheme:
    /// - Standard Webhooks: a secret `whsec_<base64>` is keyed with the
    ///   base64-decoded bytes, as the Standard Webhooks libraries do; any
    ///   other secret with its text as is.
    /// - `X-Webhook-Signature`: always the secret's text as given, byte for
    ///   byte, `whsec_` prefix included, so that a gateway can sign with
    ///   `openssl dgst -hmac "$WEBHOOK_SECRET"`.
    ///
    /// Returns [`ConfigError::NoSecrets`] for an empty list,
    /// [`ConfigError::EmptySecret`] for an empty secret (or a bare `whsec_`)
    /// and [`ConfigError::InvalidSecret`] for a `whsec_` secret whose rest is
    /// not base64.
    pub fn signed(secrets: Vec<Secret>) -> Result<Self, ConfigError> {
        if secrets.is_empty() {
            return Err(ConfigError::NoSecrets);
        }
        let keys = secrets
            .iter()
            .enumerate()
            .map(|(position, secret)| signature::Keys::new(secret, position))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            signing: Signing::Signed(keys),
            tolerance: DEFAULT_TOLERANCE,
        })
    }

    /// An adapter whose [`verify`](GatewayAdapter::verify) accepts every
    /// call, signed or not. Anyone who can reach the endpoint can then
    /// confirm payments, so the server builds it only when
    /// `PAYHOOK_ALLOW_UNSIGNED_GENERIC=true` and no secret is set, and says
    /// so at start-up. Parsing is unchanged.
    pub fn unsigned() -> Self {
        Self {
            signing: Signing::Unsigned,
            tolerance: DEFAULT_TOLERANCE,
        }
    }

    /// The same adapter, accepting Standard Webhooks timestamps at most
    /// `tolerance` away from `now` in either direction. Only whole seconds
    /// count, since timestamps are whole seconds. The `X-Webhook-Signature`
    /// scheme has no timestamp, so this does not apply to it.
    #[must_use]
    pub fn with_tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// The timestamp tolerance in force.
    pub fn tolerance(&self) -> Duration {
        self.tolerance
    }

    /// True for an adapter built with [`GenericAdapter::unsigned`], which
    /// checks no signature.
    pub fn is_unsigned(&self) -> bool {
        matches!(self.signing, Signing::Unsigned)
    }
}

impl fmt::Debug for GenericAdapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secrets = match &self.signing {
            Signing::Signed(keys) => keys.len(),
            Signing::Unsigned => 0,
        };
        f.debug_struct("GenericAdapter")
            .field("unsigned", &self.is_unsigned())
            .field("secrets", &secrets)
            .field("tolerance", &self.tolerance)
            .finish()
    }
}

impl GatewayAdapter for GenericAdapter {
    fn name(&self) -> &'static str {
        NAME
    }

    /// An unsigned adapter accepts every call. A signed one checks, in this
    /// order:
    ///
    /// - with a `webhook-signature` header, the Standard Webhooks scheme:
    ///   `MissingHeader` without `webhook-id` or `webhook-timestamp`;
    ///   `MalformedHeader` when one of the three is oversized or unreadable;
    ///   `NoAcceptedSignature` when no entry is `v1` (e.g. only `v1a`);
    ///   `BadSignature` when no `v1` matches any secret; `StaleTimestamp`
    ///   when a matching signature is older or newer than the tolerance;
    /// - otherwise, with an `X-Webhook-Signature` header: `MalformedHeader`
    ///   when it is oversized or has no `=`; `UnsupportedAlgorithm` when it
    ///   is not `sha256=`; `BadSignature` when the MAC does not match;
    /// - otherwise `MissingHeader("webhook-signature")`.
    ///
    /// A Standard Webhooks `webhook-id` that is empty, longer than
    /// [`MAX_EVENT_ID_BYTES`] or not visible ASCII is `MalformedHeader`
    /// naming it. Headers the scheme does not sign (`Idempotency-Key`, a
    /// `webhook-id` beside `X-Webhook-Signature`) are not looked at.
    fn verify(&self, request: &WebhookRequest<'_>, now: DateTime<Utc>) -> Result<(), VerifyError> {
        let Signing::Signed(keys) = &self.signing else {
            return Ok(());
        };
        signature::verify(keys, request.headers, request.body, now, self.tolerance)
    }

    /// Reads the payload; see the crate documentation for its fields.
    ///
    /// Errors: `Malformed` when the body is not one JSON object (the message
    /// never quotes the body); `MissingField` when `status`, `amount` or
    /// `currency` is absent or `null`, when neither `payment_id` nor
    /// `transaction_id` is a non-empty string, or when a `refunded` call
    /// has no `refund_id`; `InvalidField` when a field
    /// has the wrong type, `status` is not one of `completed`, `failed`,
    /// `pending`, `canceled` or `refunded`, a `refund_id` is empty, the
    /// amount is negative, or the event id is not 1 to
    /// [`MAX_EVENT_ID_BYTES`] visible ASCII characters (the field is then
    /// `webhook-id` under Standard Webhooks, else `event_id`);
    /// `MissingField("webhook-id")` for a `webhook-signature` call without
    /// one (which only an unsigned adapter lets through); `Money` when the
    /// currency is unknown or the amount is not exact in it (`150.001` USD).
    fn parse(&self, request: &WebhookRequest<'_>) -> Result<GatewayEvent, ParseError> {
        payload::parse(request.headers, request.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_an_empty_secret_list() {
        assert_eq!(
            GenericAdapter::signed(Vec::new()).unwrap_err(),
            ConfigError::NoSecrets
        );
    }

    #[test]
    fn refuses_empty_secrets_and_says_which() {
        for empty in ["", "whsec_"] {
            let secrets = vec![
                Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
                Secret::new(empty),
            ];
            assert_eq!(
                GenericAdapter::signed(secrets).unwrap_err(),
                ConfigError::EmptySecret { position: 1 },
                "{empty:?}"
            );
        }
    }

    #[test]
    fn refuses_a_whsec_secret_that_is_not_base64() {
        for secret in ["whsec_not base64!", "whsec_abc", "whsec_YWJj\n"] {
            assert_eq!(
                GenericAdapter::signed(vec![Secret::new(secret)]).unwrap_err(),
                ConfigError::InvalidSecret { position: 0 },
                "{secret:?}"
            );
        }
    }

    #[test]
    fn config_errors_never_show_the_secret() {
        let error = GenericAdapter::signed(vec![Secret::new("whsec_s3cr3t!")]).unwrap_err();
        assert!(!error.to_string().contains("s3cr3t"), "{error}");
    }

    #[test]
    fn raw_secrets_are_taken_as_they_are() {
        let adapter = GenericAdapter::signed(vec![Secret::new("a plain shared secret")]).unwrap();
        assert!(!adapter.is_unsigned());
    }

    #[test]
    fn tolerance_defaults_to_five_minutes_and_can_be_changed() {
        let adapter = GenericAdapter::signed(vec![Secret::new("secret")]).unwrap();
        assert_eq!(adapter.tolerance(), Duration::from_secs(300));
        let adapter = adapter.with_tolerance(Duration::from_secs(30));
        assert_eq!(adapter.tolerance(), Duration::from_secs(30));
        assert_eq!(adapter.name(), "generic");
    }

    #[test]
    fn unsigned_is_explicit_and_visible() {
        let adapter = GenericAdapter::unsigned();
        assert!(adapter.is_unsigned());
        assert_eq!(adapter.name(), "generic");
        assert_eq!(
            format!("{adapter:?}"),
            "GenericAdapter { unsigned: true, secrets: 0, tolerance: 300s }"
        );
    }

    #[test]
    fn debug_shows_no_secret_material() {
        let adapter = GenericAdapter::signed(vec![
            Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            Secret::new("visible?"),
        ])
        .unwrap();
        assert_eq!(
            format!("{adapter:?}"),
            "GenericAdapter { unsigned: false, secrets: 2, tolerance: 300s }"
        );
    }
}
