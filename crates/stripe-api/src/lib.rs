//! Stripe's API as payhook's [`payhook_domain::GatewayApi`]: the HTTP half of
//! reconciliation. The mapping of Stripe's objects to payhook's event kinds
//! lives in `payhook-adapters-stripe` ([`payhook_adapters_stripe::api`]),
//! which stays free of an HTTP client; this crate only fetches the object
//! and maps HTTP failures. It reads no environment and keeps no state but
//! its connection pool: the server hands it a [`StripeApiConfig`].
//!
//! # Reconciliation: Stripe
//!
//! [`StripeApi`] asks Stripe about one payment with one request, chosen by
//! the payment's ids:
//!
//! | payment | request |
//! |---|---|
//! | `external_id` `pi_...` | `GET {base}/v1/payment_intents/{external_id}` |
//! | `external_id` `cs_...` | `GET {base}/v1/checkout/sessions/{external_id}` |
//! | otherwise, `gateway_reference` `pi_...` | `GET {base}/v1/payment_intents/{gateway_reference}` |
//! | otherwise, or an id with anything but `A-Z a-z 0-9 _` | none: [`GatewayApiError::NoReference`] |
//!
//! with `Authorization: Bearer <STRIPE_API_KEY>` and `Stripe-Version:
//! 2024-06-20` ([`API_VERSION`], the version the mapping and its fixtures
//! are written against, whatever the account's default). `{base}` is
//! `https://api.stripe.com` unless configured. An id is never escaped, only
//! checked, so a stored id cannot reach another path.
//!
//! What the answer means:
//!
//! | object | Stripe's state | payhook |
//! |---|---|---|
//! | PaymentIntent | `succeeded` | `Succeeded`, `amount_received` (else `amount`) in `currency` |
//! | PaymentIntent | `canceled` | `Canceled` |
//! | PaymentIntent | `processing`, `requires_action` | `Pending` |
//! | PaymentIntent | `requires_payment_method` with a `last_payment_error` | `Failed` |
//! | PaymentIntent | `requires_payment_method` without one, `requires_confirmation`, `requires_capture` | nothing to do |
//! | Checkout Session | `complete` + `paid` or `no_payment_required` | `Succeeded`, `amount_total` in `currency`, learns its `payment_intent` |
//! | Checkout Session | `complete` + `unpaid` | `Pending` |
//! | Checkout Session | `expired` | `Canceled` |
//! | Checkout Session | `open` | nothing to do |
//!
//! The event's id is `reconcile:<object id>:<state>`, the state being the
//! intent's `status` or the session's `<status>.<payment_status>` (e.g.
//! `complete.paid`); see [`payhook_domain::GatewayState`].
//!
//! And when there is no usable answer (nothing is changed in any case):
//!
//! | HTTP | [`GatewayApiError`] |
//! |---|---|
//! | 2xx, the object asked for | the state above |
//! | 2xx, another object, not the documented JSON, or over 1 MiB ([`MAX_BODY`]) | `Malformed` |
//! | 401, 403 | `Unauthorized` |
//! | 404 | `NotFound` |
//! | 429 | `RateLimited`, with `Retry-After` (seconds or an HTTP date, at most a day) when sent |
//! | 5xx | `Unavailable` with the status |
//! | no connection, timeout ([`StripeApiConfig::timeout`], default 10 s) | `Unavailable` without a status |
//! | any other status (other 4xx; 1xx, 3xx: redirects are not followed) | `Rejected` |
//!
//! Cost: one API call per payment checked. Stripe allows 100 read requests
//! per second in live mode and 25 in test mode; reconciliation's bounded
//! batch per interval stays far below that.
//!
//! Neither errors nor logs ever contain the key or the response body: the
//! texts name the HTTP status or the field at fault, and [`StripeApiConfig`]
//! and [`StripeApi`] print the key as `[redacted]`.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use awc::error::{PayloadError, SendRequestError};
use awc::http::Uri;
use payhook_adapters_stripe::api::ApiObject;
pub use payhook_adapters_stripe::api::API_VERSION;
use payhook_domain::reconcile::parse_retry_after;
use payhook_domain::{GatewayApi, GatewayApiError, GatewayState, Payment, Secret};

/// Stripe's production API.
pub const DEFAULT_BASE_URL: &str = "https://api.stripe.com";

/// How long one call may take, connection to last byte, by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest answer read: a PaymentIntent or Session is a few KiB, even
/// with an expanded PaymentIntent.
pub const MAX_BODY: usize = 1024 * 1024;

/// The longest id sent: Stripe's ids are well below it.
const MAX_ID_LEN: usize = 255;

/// Why a [`StripeApiConfig`] cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The API key is empty.
    #[error("the Stripe API key is empty")]
    EmptyKey,
    /// The API key has characters no header may carry (whitespace, control
    /// or non-ASCII characters), which a copy and paste sometimes adds.
    #[error("the Stripe API key contains whitespace or characters outside printable ASCII")]
    InvalidKey,
    /// The base URL is not an absolute `http://` or `https://` URL without
    /// a query.
    #[error("the Stripe API base URL must be an absolute http:// or https:// URL without a query")]
    InvalidBaseUrl,
}

/// What [`StripeApi`] needs: the secret key, where the API is, and how long
/// a call may take. `Send + Sync + Clone`, so that the server builds one
/// [`StripeApi`] per worker thread from one configuration.
#[derive(Clone)]
pub struct StripeApiConfig {
    /// The secret (`sk_...`) or restricted (`rk_...`) key; a restricted
    /// key needs read access to PaymentIntents and Checkout Sessions.
    pub api_key: Secret,
    /// The API's base URL, without the `/v1` ([`DEFAULT_BASE_URL`]).
    pub base_url: String,
    /// How long one call may take ([`DEFAULT_TIMEOUT`]).
    pub timeout: Duration,
}

impl StripeApiConfig {
    /// The configuration for `api_key` with Stripe's production URL and the
    /// default timeout.
    pub fn new(api_key: Secret) -> Self {
        Self {
            api_key,
            base_url: DEFAULT_BASE_URL.to_owned(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The same configuration with another base URL (a trailing `/` is
    /// ignored).
    #[must_use]
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into();
        self
    }

    /// The same configuration with another timeout.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Checks the key and the base URL, as [`StripeApi::new`] does: for a
    /// start-up check that fails before any payment is asked about.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let key = self.api_key.expose();
        if key.is_empty() {
            return Err(ConfigError::EmptyKey);
        }
        if !key.bytes().all(|byte| byte.is_ascii_graphic()) {
            return Err(ConfigError::InvalidKey);
        }
        let uri: Uri = self
            .base()
            .parse()
            .map_err(|_| ConfigError::InvalidBaseUrl)?;
        let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
        if !scheme_ok || uri.host().is_none() || uri.query().is_some() {
            return Err(ConfigError::InvalidBaseUrl);
        }
        Ok(())
    }

    fn base(&self) -> &str {
        self.base_url.trim_end_matches('/')
    }
}

impl fmt::Debug for StripeApiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeApiConfig")
            .field("api_key", &"[redacted]")
            .field("base_url", &self.base_url)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Stripe's API, asked about one payment at a time.
///
/// Holds an `awc` client, which is bound to the thread that made it: build
/// one per thread (from a cloned [`StripeApiConfig`]), on that thread,
/// inside its actix or tokio runtime.
pub struct StripeApi {
    client: awc::Client,
    config: StripeApiConfig,
}

impl fmt::Debug for StripeApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeApi")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl StripeApi {
    /// A client for `config`; [`ConfigError`] when the key or base URL is
    /// unusable (see [`StripeApiConfig::validate`]).
    pub fn new(config: StripeApiConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        // rustls needs a process-wide crypto provider for https:// calls;
        // ring is the one payhook already uses. Finding one installed (a
        // second client, the notifier's) is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = awc::Client::builder()
            .timeout(config.timeout)
            // A redirect would carry the key to wherever it points.
            .disable_redirects()
            .add_default_header(("User-Agent", concat!("payhook/", env!("CARGO_PKG_VERSION"))))
            .finish();
        Ok(Self { client, config })
    }

    /// Its configuration.
    pub fn config(&self) -> &StripeApiConfig {
        &self.config
    }

    /// What Stripe says about `object` `id` now. `NoReference` when `id` is
    /// not a bare Stripe id (letters, digits and `_`); otherwise see the
    /// crate's tables. The answer must be the object asked for.
    pub async fn fetch(
        &self,
        object: ApiObject,
        id: &str,
    ) -> Result<GatewayState, GatewayApiError> {
        if !is_bare_id(id) {
            return Err(GatewayApiError::NoReference);
        }
        let path = object.path(id);
        let url = format!("{}{path}", self.config.base());
        let sent = self
            .client
            .get(url)
            .insert_header((
                "Authorization",
                format!("Bearer {}", self.config.api_key.expose()),
            ))
            .insert_header(("Stripe-Version", API_VERSION))
            .insert_header(("Accept", "application/json"))
            .send()
            .await;
        let mut response = match sent {
            Ok(response) => response,
            Err(error) => {
                tracing::debug!(%path, error = describe_send_error(&error), "Stripe API call failed");
                return Err(GatewayApiError::Unavailable { status: None });
            }
        };
        let status = response.status();
        tracing::debug!(%path, status = status.as_u16(), "Stripe API answered");
        if !status.is_success() {
            let retry_after = response
                .headers()
                .get("Retry-After")
                .and_then(|value| value.to_str().ok())
                .and_then(|value| parse_retry_after(value, chrono::Utc::now()));
            // Read (a bounded part of) the answer so the connection can be
            // reused; its content is not needed.
            let _ = response.body().limit(64 * 1024).await;
            return Err(GatewayApiError::from_status(status.as_u16(), retry_after));
        }
        let body = match response.body().limit(MAX_BODY).await {
            Ok(body) => body,
            Err(PayloadError::Overflow) => {
                return Err(GatewayApiError::Malformed(format!(
                    "the answer is larger than {MAX_BODY} bytes"
                )))
            }
            // The status came, the object did not (timeout, connection
            // lost): no answer.
            Err(_) => return Err(GatewayApiError::Unavailable { status: None }),
        };
        let state = object.read(&body)?;
        if state.object_id != id {
            return Err(GatewayApiError::Malformed(
                "the answer is another object than the one asked for".to_owned(),
            ));
        }
        Ok(state)
    }
}

#[async_trait(?Send)]
impl GatewayApi for StripeApi {
    fn gateway(&self) -> &str {
        payhook_adapters_stripe::NAME
    }

    async fn state(&self, payment: &Payment) -> Result<GatewayState, GatewayApiError> {
        let (object, id) = object_of(payment).ok_or(GatewayApiError::NoReference)?;
        self.fetch(object, id).await
    }
}

/// The object to ask Stripe about for `payment`, and its id: the
/// `external_id` when it is a PaymentIntent (`pi_`) or a Checkout Session
/// (`cs_`), else the `gateway_reference` when it is a PaymentIntent (as the
/// webhooks record one, e.g. from a Charge event); `None` otherwise, and
/// when the id is not a bare Stripe id.
pub fn object_of(payment: &Payment) -> Option<(ApiObject, &str)> {
    let by_prefix = |id: &str, sessions: bool| {
        if id.starts_with("pi_") {
            Some(ApiObject::PaymentIntent)
        } else if sessions && id.starts_with("cs_") {
            Some(ApiObject::CheckoutSession)
        } else {
            None
        }
    };
    let external = payment
        .external_id
        .as_deref()
        .and_then(|id| by_prefix(id, true).map(|object| (object, id)));
    let chosen = external.or_else(|| {
        payment
            .gateway_reference
            .as_deref()
            .and_then(|id| by_prefix(id, false).map(|object| (object, id)))
    })?;
    is_bare_id(chosen.1).then_some(chosen)
}

/// True for an id Stripe could have issued: a prefix and a body of ASCII
/// letters, digits and `_`, nothing that a URL gives a meaning to.
fn is_bare_id(id: &str) -> bool {
    id.len() > 3
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
}

/// A short name for a failed send, for the debug log: awc's own texts are
/// not logged, so that nothing of the request can leak through them.
fn describe_send_error(error: &SendRequestError) -> &'static str {
    match error {
        SendRequestError::Timeout => "timeout",
        SendRequestError::Connect(_) => "connect",
        SendRequestError::Url(_) => "invalid url",
        SendRequestError::Send(_) => "send",
        SendRequestError::Response(_) => "unreadable response",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bare_ids_are_sent() {
        assert!(is_bare_id("pi_3PqR8sLkdIwHu7ix1Fg4Hj5K"));
        assert!(is_bare_id("cs_test_a1dO7xJf6gQAs9Kk9bu14P7sPTKalBYaOBMbXC"));
        for bad in [
            "pi_",
            "pi_1/../x",
            "pi_..",
            "pi_1%2F",
            "pi_1?a=b",
            "pi_1#",
            "pi_1 ",
            "pi_é",
            "",
        ] {
            assert!(!is_bare_id(bad), "{bad}");
        }
        assert!(!is_bare_id(&format!("pi_{}", "a".repeat(MAX_ID_LEN))));
    }

    #[test]
    fn the_configuration_is_checked() {
        let config = StripeApiConfig::new(Secret::new("sk_test_1"));
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.base_url, DEFAULT_BASE_URL);
        assert_eq!(config.timeout, DEFAULT_TIMEOUT);
        assert_eq!(
            StripeApiConfig::new(Secret::new("")).validate(),
            Err(ConfigError::EmptyKey)
        );
        assert_eq!(
            StripeApiConfig::new(Secret::new("sk_test_1\n")).validate(),
            Err(ConfigError::InvalidKey)
        );
        for bad in [
            "api.stripe.com",
            "ftp://api.stripe.com",
            "https://x/?a=1",
            "",
        ] {
            assert_eq!(
                config.clone().with_base_url(bad).validate(),
                Err(ConfigError::InvalidBaseUrl),
                "{bad}"
            );
        }
        assert_eq!(
            config.with_base_url("http://127.0.0.1:1234/").validate(),
            Ok(())
        );
    }

    #[test]
    fn the_configuration_is_shareable_across_threads() {
        fn shareable<T: Send + Sync + Clone>() {}
        shareable::<StripeApiConfig>();
    }
}
