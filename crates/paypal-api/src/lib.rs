//! PayPal's API as payhook's [`payhook_domain::GatewayApi`]: the HTTP half of
//! reconciliation. The mapping of PayPal's objects to payhook's event kinds
//! lives in `payhook-adapters-paypal` ([`payhook_adapters_paypal::api`]),
//! which stays free of an HTTP client.
//!
//! # Calls
//!
//! [`PayPalApi`] asks about one payment with at most four calls, usually
//! one:
//!
//! 1. `POST {base}/v1/oauth2/token` with HTTP Basic
//!    `<client id>:<client secret>` and the form body
//!    `grant_type=client_credentials` (OAuth2 client credentials), when no
//!    access token is cached. PayPal answers
//!    `{"access_token", "token_type": "Bearer", "expires_in", ...}`.
//! 2. `GET {base}/v2/checkout/orders/{id}` with
//!    `Authorization: Bearer <access token>`, where `id` is the payment's
//!    external id (the PayPal order id the shop recorded when it marked the
//!    payment pending). An id that is not 1 to 64 ASCII letters, digits or
//!    `-` is never sent: [`GatewayApiError::NoReference`].
//! 3. and 4. When the order call answers 401 (the token was revoked or
//!    expired early), the token is fetched again, once, and the order call
//!    repeated; a second 401 is `Unauthorized`.
//!
//! `{base}` is [`LIVE_BASE_URL`] or [`SANDBOX_BASE_URL`]
//! ([`PayPalEnvironment`], `PAYPAL_ENVIRONMENT=live|sandbox`), or any base
//! URL given (a stand-in in tests).
//!
//! # Answers
//!
//! | call | answer | result |
//! |---|---|---|
//! | token | 2xx with a `Bearer` token and a positive `expires_in` | token cached, the order is asked for |
//! | token | 2xx otherwise | `Malformed` |
//! | token | 401 or 403, or 400 with `"error": "invalid_client"` (wrong client id or secret) | `Unauthorized` (the status) |
//! | either | 404 | `NotFound` |
//! | either | 429 | `RateLimited`, with `Retry-After` (seconds or an HTTP date, at most a day) when sent |
//! | either | 5xx | `Unavailable` (the status) |
//! | either | no connection, timeout, answer cut off | `Unavailable` (no status) |
//! | either | any other status (other 4xx, 3xx: redirects are not followed) | `Rejected` (the status) |
//! | either | body larger than [`MAX_BODY_BYTES`] | `Malformed` |
//! | order | 401, then 401 again with a fresh token | `Unauthorized` (401) |
//! | order | 403 | `Unauthorized` (403) |
//! | order | 2xx | the order read by [`payhook_adapters_paypal::api::order_state`]; `Malformed` when it is not an order or is another order than the one asked for |
//!
//! Error texts name the status or the field, never the client secret, the
//! access token or the body.
//!
//! # Token caching
//!
//! The access token is cached in the [`PayPalApiConfig`], shared by all its
//! clones (an `Arc` around an async mutex), so that the server's worker
//! threads, each with its own [`PayPalApi`] built from a clone, share one
//! token rather than fetching one each. A token is used until
//! [`TOKEN_MARGIN`] before it expires (or half its lifetime, for a token
//! that lives less than twice the margin). At most one fetch runs at a
//! time per configuration: a thread that finds the token missing or stale
//! fetches it while holding the lock, and the others wait for it and use
//! it. After a 401, the token that was refused is dropped unless another
//! thread has already replaced it.
//!
//! What it deliberately does not do: it reads no environment variable (the
//! server passes the credentials and the base URL), writes no log, and
//! calls nothing but the two endpoints above.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use awc::http::header;
use payhook_adapters_paypal::api::{is_order_id, order_state};
use payhook_domain::reconcile::parse_retry_after;
use payhook_domain::{GatewayApi, GatewayApiError, GatewayState, Payment, Secret};
use serde::Deserialize;

/// PayPal's production API.
pub const LIVE_BASE_URL: &str = "https://api-m.paypal.com";

/// PayPal's sandbox API.
pub const SANDBOX_BASE_URL: &str = "https://api-m.sandbox.paypal.com";

/// How long one call may take, by default (connection, answer and body).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long before its expiry a token is no longer used, so that it does
/// not expire between being read from the cache and reaching PayPal.
pub const TOKEN_MARGIN: Duration = Duration::from_secs(60);

/// The largest answer read. An order with its purchase units, captures,
/// refunds and links is a few kilobytes; anything near this is not one.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Which of PayPal's APIs: `PAYPAL_ENVIRONMENT=live` or `sandbox`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PayPalEnvironment {
    /// Production, [`LIVE_BASE_URL`].
    #[default]
    Live,
    /// The sandbox, [`SANDBOX_BASE_URL`].
    Sandbox,
}

impl PayPalEnvironment {
    /// `live` or `sandbox` (exactly, lower case);
    /// [`ConfigError::UnknownEnvironment`] otherwise.
    pub fn parse(value: &str) -> Result<Self, ConfigError> {
        match value {
            "live" => Ok(Self::Live),
            "sandbox" => Ok(Self::Sandbox),
            _ => Err(ConfigError::UnknownEnvironment),
        }
    }

    /// The environment's API base URL.
    pub fn base_url(self) -> &'static str {
        match self {
            Self::Live => LIVE_BASE_URL,
            Self::Sandbox => SANDBOX_BASE_URL,
        }
    }

    /// `live` or `sandbox`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Sandbox => "sandbox",
        }
    }
}

/// Why a [`PayPalApiConfig`] could not be made. The texts never quote a
/// credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The client id is empty or has whitespace or control characters.
    #[error("PayPal client id is empty or contains whitespace")]
    InvalidClientId,
    /// The client secret is empty or has whitespace or control characters
    /// (a trailing newline from a file is the usual cause).
    #[error("PayPal client secret is empty or contains whitespace")]
    InvalidClientSecret,
    /// `PAYPAL_ENVIRONMENT` is neither `live` nor `sandbox`.
    #[error("PayPal environment must be live or sandbox")]
    UnknownEnvironment,
    /// The base URL is not an `http://` or `https://` URL without query,
    /// fragment or whitespace.
    #[error("PayPal API base URL must be an http:// or https:// URL without query or fragment")]
    InvalidBaseUrl,
}

/// A cached access token and when it stops being used.
struct CachedToken {
    access_token: Secret,
    use_until: Instant,
}

/// The token cache shared by every clone of one configuration.
type TokenCache = Arc<tokio::sync::Mutex<Option<CachedToken>>>;

/// What [`PayPalApi`] needs: the REST app's credentials, the base URL, the
/// timeout, and the access token cache that all clones share.
///
/// `Clone + Send + Sync`: the server makes one and hands a clone to each
/// worker thread, which builds its own [`PayPalApi`] from it. `Debug`
/// shows neither the secret nor the token.
#[derive(Clone)]
pub struct PayPalApiConfig {
    client_id: String,
    client_secret: Secret,
    base_url: String,
    timeout: Duration,
    tokens: TokenCache,
}

impl PayPalApiConfig {
    /// The configuration of the REST app `client_id` with `client_secret`
    /// (`PAYPAL_CLIENT_ID`, `PAYPAL_CLIENT_SECRET`) on `environment`'s API,
    /// with the [`DEFAULT_TIMEOUT`] and an empty token cache.
    ///
    /// [`ConfigError::InvalidClientId`] or
    /// [`ConfigError::InvalidClientSecret`] for an empty value or one with
    /// whitespace or control characters.
    pub fn new(
        client_id: impl Into<String>,
        client_secret: Secret,
        environment: PayPalEnvironment,
    ) -> Result<Self, ConfigError> {
        let client_id = client_id.into();
        if !is_credential(&client_id) {
            return Err(ConfigError::InvalidClientId);
        }
        if !is_credential(client_secret.expose()) {
            return Err(ConfigError::InvalidClientSecret);
        }
        Ok(Self {
            client_id,
            client_secret,
            base_url: environment.base_url().to_owned(),
            timeout: DEFAULT_TIMEOUT,
            tokens: TokenCache::default(),
        })
    }

    /// The same configuration on the API at `base_url`
    /// (`PAYHOOK_PAYPAL_API_BASE`), e.g. `https://api-m.paypal.com`; a
    /// trailing `/` is dropped. [`ConfigError::InvalidBaseUrl`] unless it
    /// is an `http://` or `https://` URL with a host and no query, fragment
    /// or whitespace. The token cache is emptied: a token of another API is
    /// worthless.
    pub fn with_base_url(mut self, base_url: &str) -> Result<Self, ConfigError> {
        let trimmed = base_url.trim_end_matches('/');
        let rest = trimmed
            .strip_prefix("https://")
            .or_else(|| trimmed.strip_prefix("http://"))
            .ok_or(ConfigError::InvalidBaseUrl)?;
        let host = rest.split('/').next().unwrap_or_default();
        if host.is_empty()
            || trimmed
                .chars()
                .any(|c| c == '?' || c == '#' || c.is_whitespace() || c.is_control())
        {
            return Err(ConfigError::InvalidBaseUrl);
        }
        trimmed.clone_into(&mut self.base_url);
        self.tokens = TokenCache::default();
        Ok(self)
    }

    /// The same configuration, giving each call at most `timeout`.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The REST app's client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The API base URL, without a trailing `/`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The timeout of one call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

impl fmt::Debug for PayPalApiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Whether a token is cached is worth seeing; the token is not. A
        // fetch in progress holds the lock: shown as such, never awaited.
        let token = match self.tokens.try_lock() {
            Ok(cached) if cached.is_some() => "[cached]",
            Ok(_) => "none",
            Err(_) => "[being fetched]",
        };
        f.debug_struct("PayPalApiConfig")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("base_url", &self.base_url)
            .field("timeout", &self.timeout)
            .field("access_token", &format_args!("{token}"))
            .finish()
    }
}

/// A client id or secret as PayPal issues them: not empty, no whitespace or
/// control characters (they go into a Basic authorization header).
fn is_credential(value: &str) -> bool {
    !value.is_empty() && !value.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// PayPal's API for one thread: what PayPal says about a payment now.
///
/// Holds an `awc` client, which is bound to the thread that made it: build
/// one per thread from a clone of the [`PayPalApiConfig`] (cheap, and the
/// token cache stays shared).
pub struct PayPalApi {
    config: PayPalApiConfig,
    client: awc::Client,
}

impl PayPalApi {
    /// A client for `config`. Must be made on the thread that will use it.
    pub fn new(config: PayPalApiConfig) -> Self {
        // rustls needs a process-wide crypto provider for https:// calls;
        // ring is the one payhook already uses. A second install finds it
        // there, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = awc::Client::builder()
            .timeout(config.timeout)
            .disable_redirects()
            .add_default_header((
                header::USER_AGENT,
                concat!("payhook/", env!("CARGO_PKG_VERSION")),
            ))
            .add_default_header((header::ACCEPT, "application/json"))
            .finish();
        Self { config, client }
    }

    /// Its configuration.
    pub fn config(&self) -> &PayPalApiConfig {
        &self.config
    }

    /// A usable access token: the cached one unless it is stale or is
    /// `refused` (answered 401), else a fresh one, which is cached.
    async fn access_token(&self, refused: Option<&Secret>) -> Result<Secret, GatewayApiError> {
        let mut cached = self.config.tokens.lock().await;
        if let Some(token) = cached.as_ref() {
            let fresh = Instant::now() < token.use_until;
            let was_refused = refused.is_some_and(|refused| *refused == token.access_token);
            if fresh && !was_refused {
                return Ok(token.access_token.clone());
            }
        }
        *cached = None;
        let token = self.fetch_token().await?;
        let access_token = token.access_token.clone();
        *cached = Some(token);
        Ok(access_token)
    }

    /// `POST /v1/oauth2/token` with the client credentials.
    async fn fetch_token(&self) -> Result<CachedToken, GatewayApiError> {
        let asked_at = Instant::now();
        let sent = self
            .client
            .post(format!("{}/v1/oauth2/token", self.config.base_url))
            .basic_auth(&self.config.client_id, self.config.client_secret.expose())
            .send_form(&[("grant_type", "client_credentials")])
            .await;
        let mut response = sent.map_err(|_| GatewayApiError::Unavailable { status: None })?;
        let status = response.status().as_u16();
        let body = body_or_error(response.body().limit(MAX_BODY_BYTES).await);
        if !(200..300).contains(&status) {
            if status == 400 && body.as_deref().is_ok_and(is_invalid_client) {
                return Err(GatewayApiError::Unauthorized { status });
            }
            return Err(status_error(status, response.headers()));
        }
        read_token(&body?, asked_at)
    }

    /// `GET /v2/checkout/orders/{id}` with `token`: the body, or `None`
    /// for a 401.
    async fn fetch_order(
        &self,
        order_id: &str,
        token: &Secret,
    ) -> Result<Option<Vec<u8>>, GatewayApiError> {
        let sent = self
            .client
            .get(format!(
                "{}/v2/checkout/orders/{order_id}",
                self.config.base_url
            ))
            .bearer_auth(token.expose())
            .send()
            .await;
        let mut response = sent.map_err(|_| GatewayApiError::Unavailable { status: None })?;
        let status = response.status().as_u16();
        let body = body_or_error(response.body().limit(MAX_BODY_BYTES).await);
        match status {
            200..=299 => body.map(Some),
            401 => Ok(None),
            _ => Err(status_error(status, response.headers())),
        }
    }
}

impl fmt::Debug for PayPalApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PayPalApi")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[async_trait(?Send)]
impl GatewayApi for PayPalApi {
    fn gateway(&self) -> &str {
        payhook_adapters_paypal::NAME
    }

    /// The payment's PayPal order (its external id), read as the crate
    /// documentation's tables say.
    async fn state(&self, payment: &Payment) -> Result<GatewayState, GatewayApiError> {
        let order_id = payment
            .external_id
            .as_deref()
            .filter(|id| is_order_id(id))
            .ok_or(GatewayApiError::NoReference)?;
        let token = self.access_token(None).await?;
        let body = match self.fetch_order(order_id, &token).await? {
            Some(body) => body,
            None => {
                let token = self.access_token(Some(&token)).await?;
                self.fetch_order(order_id, &token)
                    .await?
                    .ok_or(GatewayApiError::Unauthorized { status: 401 })?
            }
        };
        let state = order_state(body)?;
        if state.object_id != order_id {
            return Err(GatewayApiError::Malformed(
                "the answer is another order than the one asked for".to_owned(),
            ));
        }
        Ok(state)
    }
}

/// The body as read (at most [`MAX_BODY_BYTES`]): `Malformed` beyond,
/// `Unavailable` when it was cut off or timed out.
fn body_or_error<B: AsRef<[u8]>>(
    read: Result<B, awc::error::PayloadError>,
) -> Result<Vec<u8>, GatewayApiError> {
    match read {
        Ok(bytes) => Ok(bytes.as_ref().to_vec()),
        Err(awc::error::PayloadError::Overflow) => Err(GatewayApiError::Malformed(format!(
            "the answer is larger than {MAX_BODY_BYTES} bytes"
        ))),
        Err(_) => Err(GatewayApiError::Unavailable { status: None }),
    }
}

/// The error for a status that is neither success nor handled by the
/// caller.
fn status_error(status: u16, headers: &header::HeaderMap) -> GatewayApiError {
    let retry_after = headers
        .get(header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| parse_retry_after(value, chrono::Utc::now()));
    GatewayApiError::from_status(status, retry_after)
}

/// PayPal's OAuth2 error answer; only the code is read.
#[derive(Deserialize)]
struct OAuthError {
    error: Option<String>,
}

/// True for OAuth2's `{"error": "invalid_client"}`: the client id or secret
/// is wrong.
fn is_invalid_client(body: &[u8]) -> bool {
    serde_json::from_slice::<OAuthError>(body)
        .is_ok_and(|answer| answer.error.as_deref() == Some("invalid_client"))
}

/// The token answer's fields that are used.
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    token_type: Option<String>,
    expires_in: Option<u64>,
}

/// Reads the token answer of a call made at `asked_at`. The texts are
/// fixed: serde's messages could quote the token.
fn read_token(body: &[u8], asked_at: Instant) -> Result<CachedToken, GatewayApiError> {
    let malformed = |what: &str| GatewayApiError::Malformed(format!("token answer: {what}"));
    let answer: TokenAnswer =
        serde_json::from_slice(body).map_err(|_| malformed("not the documented object"))?;
    let access_token = answer
        .access_token
        .filter(|token| !token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| malformed("no usable access_token"))?;
    if !answer
        .token_type
        .is_some_and(|kind| kind.eq_ignore_ascii_case("Bearer"))
    {
        return Err(malformed("token_type is not Bearer"));
    }
    let lifetime = answer
        .expires_in
        .filter(|seconds| *seconds > 0)
        .map(|seconds| Duration::from_secs(seconds.min(MAX_TOKEN_LIFETIME_SECS)))
        .ok_or_else(|| malformed("no positive expires_in"))?;
    let margin = TOKEN_MARGIN.min(lifetime / 2);
    Ok(CachedToken {
        access_token: Secret::new(access_token),
        use_until: asked_at + (lifetime - margin),
    })
}

/// A bound on a token's announced lifetime (PayPal's live 9 hours), so
/// that an absurd `expires_in` cannot overflow an `Instant`.
const MAX_TOKEN_LIFETIME_SECS: u64 = 7 * 24 * 60 * 60;

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> PayPalApiConfig {
        PayPalApiConfig::new(
            "client-id",
            Secret::new("client-secret-value"),
            PayPalEnvironment::Live,
        )
        .unwrap()
    }

    #[test]
    fn environments_and_their_base_urls() {
        assert_eq!(
            PayPalEnvironment::parse("live"),
            Ok(PayPalEnvironment::Live)
        );
        assert_eq!(
            PayPalEnvironment::parse("sandbox"),
            Ok(PayPalEnvironment::Sandbox)
        );
        for other in ["", "Sandbox", "production", " live"] {
            assert_eq!(
                PayPalEnvironment::parse(other),
                Err(ConfigError::UnknownEnvironment)
            );
        }
        assert_eq!(
            PayPalEnvironment::Live.base_url(),
            "https://api-m.paypal.com"
        );
        assert_eq!(
            PayPalEnvironment::Sandbox.base_url(),
            "https://api-m.sandbox.paypal.com"
        );
        assert_eq!(config().base_url(), LIVE_BASE_URL);
        let sandbox = PayPalApiConfig::new("id", Secret::new("s"), PayPalEnvironment::Sandbox);
        assert_eq!(sandbox.unwrap().base_url(), SANDBOX_BASE_URL);
    }

    #[test]
    fn credentials_must_be_plain() {
        for id in ["", "a b", "id\n"] {
            assert_eq!(
                PayPalApiConfig::new(id, Secret::new("s"), PayPalEnvironment::Live).err(),
                Some(ConfigError::InvalidClientId)
            );
        }
        for secret in ["", "s\n", "\ts"] {
            assert_eq!(
                PayPalApiConfig::new("id", Secret::new(secret), PayPalEnvironment::Live).err(),
                Some(ConfigError::InvalidClientSecret)
            );
        }
    }

    #[test]
    fn base_urls_are_checked_and_trimmed() {
        let config = config().with_base_url("http://127.0.0.1:8080/").unwrap();
        assert_eq!(config.base_url(), "http://127.0.0.1:8080");
        let config = config
            .with_base_url("https://proxy.example/paypal")
            .unwrap();
        assert_eq!(config.base_url(), "https://proxy.example/paypal");
        for bad in [
            "",
            "api-m.paypal.com",
            "ftp://x",
            "https://",
            "https:///x",
            "https://a b",
            "https://x/?q=1",
            "https://x/#f",
        ] {
            assert_eq!(
                config.clone().with_base_url(bad).err(),
                Some(ConfigError::InvalidBaseUrl),
                "{bad}"
            );
        }
    }

    #[test]
    fn debug_shows_neither_secret_nor_token() {
        let config = config();
        *config.tokens.try_lock().unwrap() = Some(CachedToken {
            access_token: Secret::new("A21AAtokenvalue"),
            use_until: Instant::now(),
        });
        let shown = format!("{config:?}");
        assert!(!shown.contains("client-secret-value"), "{shown}");
        assert!(!shown.contains("A21AAtokenvalue"), "{shown}");
        assert!(shown.contains("client_secret: [redacted]"), "{shown}");
        assert!(shown.contains("access_token: [cached]"), "{shown}");
    }

    #[test]
    fn tokens_are_used_until_the_margin_before_expiry() {
        let now = Instant::now();
        let body = br#"{"scope":"x","access_token":"A21AA-1","token_type":"Bearer","app_id":"APP-1","expires_in":32400,"nonce":"n"}"#;
        let token = read_token(body, now).unwrap();
        assert_eq!(token.access_token.expose(), "A21AA-1");
        assert_eq!(token.use_until, now + Duration::from_secs(32400 - 60));
        let short = read_token(
            br#"{"access_token":"t","token_type":"bearer","expires_in":2}"#,
            now,
        )
        .unwrap();
        assert_eq!(short.use_until, now + Duration::from_secs(1));
        let huge = format!(
            r#"{{"access_token":"t","token_type":"Bearer","expires_in":{}}}"#,
            u64::MAX
        );
        assert!(read_token(huge.as_bytes(), now).is_ok());
    }

    #[test]
    fn bad_token_answers_are_malformed_without_quoting() {
        for body in [
            &br#"{"access_token":"SECRETTOKEN","token_type":"MAC","expires_in":10}"#[..],
            br#"{"access_token":"SECRETTOKEN","token_type":"Bearer"}"#,
            br#"{"access_token":"SECRETTOKEN","token_type":"Bearer","expires_in":0}"#,
            br#"{"access_token":"SECRETTOKEN","token_type":"Bearer","expires_in":"SECRETTOKEN"}"#,
            br#"{"access_token":"SECRET TOKEN","token_type":"Bearer","expires_in":10}"#,
            br#"{"access_token":"","token_type":"Bearer","expires_in":10}"#,
            br#"{"token_type":"Bearer","expires_in":10}"#,
            br#"SECRETTOKEN"#,
        ] {
            let error = read_token(body, Instant::now()).err().unwrap();
            assert!(matches!(&error, GatewayApiError::Malformed(_)), "{error:?}");
            assert!(!error.to_string().contains("SECRET"), "{error}");
        }
    }

    #[test]
    fn invalid_client_is_recognised() {
        assert!(is_invalid_client(
            br#"{"error":"invalid_client","error_description":"Client Authentication failed"}"#
        ));
        assert!(!is_invalid_client(
            br#"{"error":"unsupported_grant_type","error_description":"x"}"#
        ));
        assert!(!is_invalid_client(b"not json"));
    }

    #[test]
    fn the_config_is_shareable_across_threads() {
        fn shareable<T: Clone + Send + Sync + 'static>() {}
        shareable::<PayPalApiConfig>();
    }
}
