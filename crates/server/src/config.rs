//! Configuration from the environment: the only place that reads it.
//!
//! A bad value stops start-up with one line naming the variable; secrets are
//! kept in [`Secret`] so that printing the configuration never shows them.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::time::Duration;

use payhook_domain::{AmountPolicy, Secret};
use payhook_paypal_api::{PayPalApiConfig, PayPalEnvironment};
use payhook_stripe_api::StripeApiConfig;

/// A variable whose value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {variable}: {reason}")]
pub struct ConfigError {
    /// The environment variable's name.
    pub variable: &'static str,
    /// What is wrong, without echoing a secret.
    pub reason: String,
}

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// `sqlite://path` or `postgres://...`; a secret because it may hold a password.
    pub database_url: Secret,
    /// Where to listen.
    pub addr: SocketAddr,
    /// Bearer token of the management API; `None` disables the API.
    pub api_token: Option<Secret>,
    /// Stripe endpoint secrets (rotation: several); `None` answers 503.
    pub stripe_secrets: Option<Vec<Secret>>,
    /// Generic gateway secrets (rotation: several); `None` answers 503
    /// unless unsigned calls are allowed.
    pub generic_secrets: Option<Vec<Secret>>,
    /// Lets the generic endpoint take unsigned calls when it has no secret.
    pub allow_unsigned_generic: bool,
    /// PayPal's webhook id and pinned certificates; `None` answers 503.
    pub paypal: Option<PaypalConfig>,
    /// What to do with a confirmation of another amount.
    pub amount_policy: AmountPolicy,
    /// Largest accepted webhook body.
    pub max_body_bytes: usize,
    /// How long a webhook's whole body may take to arrive before 408.
    pub body_timeout: Duration,
    /// Bytes of webhook bodies being received at once, all connections
    /// together, before 503; at least `max_body_bytes`.
    pub max_receiving_bytes: usize,
    /// Most database connections.
    pub db_pool_size: u32,
    /// Group-commit writers on PostgreSQL (`PAYHOOK_DB_WRITERS`), at most
    /// the pool less one; `None`: the store's default (half the pool, at most four).
    pub db_writers: Option<NonZeroU32>,
    /// How long a request waits for a database connection.
    pub db_timeout: Duration,
    /// Log lines as JSON or as text for people.
    pub log_format: LogFormat,
    /// Sustained failed verifications or authentications per second and
    /// client address before 429.
    pub failed_attempts_per_second: NonZeroU32,
    /// Burst of failures allowed per client address.
    pub failed_attempts_burst: NonZeroU32,
    /// Verified webhooks processed at once before 503.
    pub max_in_flight: usize,
    /// Delivery of the outbox to the shop.
    pub notify: NotifyConfig,
    /// Group commit: concurrent events share one transaction and one commit.
    pub group_commit: bool,
    /// How long an event's raw body and a delivered notification are kept
    /// (`PAYHOOK_RETENTION_DAYS`, or `PAYHOOK_RETENTION` for a period
    /// shorter than a day); `None` (`off`) never prunes.
    pub retention: Option<Duration>,
    /// How often the background pruner runs (`PAYHOOK_PRUNE_INTERVAL`).
    pub prune_interval: Duration,
    /// Reconciliation with the gateways' APIs.
    pub reconcile: ReconcileConfig,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, for log pipelines.
    Json,
    /// Human-readable text.
    Pretty,
}

/// What the PayPal adapter needs: the webhook id PayPal signs with, and the
/// PEM bytes of the pinned signing certificate(s), read at start-up.
#[derive(Clone)]
pub struct PaypalConfig {
    /// `PAYPAL_WEBHOOK_ID`.
    pub webhook_id: String,
    /// The contents of `PAYPAL_CERT_FILE`.
    pub certificates_pem: Vec<u8>,
    /// The file's path, for messages.
    pub cert_file: String,
}

impl std::fmt::Debug for PaypalConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaypalConfig")
            .field("webhook_id", &self.webhook_id)
            .field("cert_file", &self.cert_file)
            .finish_non_exhaustive()
    }
}

/// The environment as the configuration reads it: a value that is empty
/// or blank counts as unset, and every refusal names its variable. It only
/// reads and checks single values; which variables go together is decided
/// by the callers.
struct Env<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl Env<'_> {
    /// The value of `name`, `None` when unset or blank.
    fn text(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|value| !value.trim().is_empty())
    }

    fn invalid(name: &'static str, reason: &str) -> ConfigError {
        ConfigError {
            variable: name,
            reason: reason.to_owned(),
        }
    }

    /// A number within `allowed`, `default` when unset; else `expected`.
    fn number<T: FromStr + PartialOrd>(
        &self,
        name: &'static str,
        default: T,
        allowed: RangeInclusive<T>,
        expected: &str,
    ) -> Result<T, ConfigError> {
        let Some(text) = self.text(name) else {
            return Ok(default);
        };
        text.trim()
            .parse::<T>()
            .ok()
            .filter(|value| allowed.contains(value))
            .ok_or_else(|| Self::invalid(name, expected))
    }

    /// A whole number of at least 1.
    fn positive(&self, name: &'static str, default: u32) -> Result<NonZeroU32, ConfigError> {
        let value = self.number(name, default, 1..=u32::MAX, POSITIVE_WHOLE)?;
        NonZeroU32::new(value).ok_or_else(|| Self::invalid(name, POSITIVE_WHOLE))
    }

    /// A positive number of milliseconds.
    fn millis(&self, name: &'static str, default: u64) -> Result<Duration, ConfigError> {
        self.number(
            name,
            default,
            1..=u64::MAX,
            "expected a positive number of milliseconds",
        )
        .map(Duration::from_millis)
    }

    /// One of `choices` by name (`default` when unset); else `expected`.
    fn choice<T: Copy>(
        &self,
        name: &'static str,
        choices: &[(&str, T)],
        default: T,
        expected: &str,
    ) -> Result<T, ConfigError> {
        let Some(text) = self.text(name) else {
            return Ok(default);
        };
        choices
            .iter()
            .find(|(word, _)| *word == text.trim())
            .map(|(_, value)| *value)
            .ok_or_else(|| Self::invalid(name, expected))
    }

    /// `true`/`1` or `false`/`0`.
    fn bool(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        self.choice(
            name,
            &[("true", true), ("1", true), ("false", false), ("0", false)],
            default,
            "expected true or false",
        )
    }

    /// A comma-separated list of secrets; `None` when unset.
    fn secrets(&self, name: &'static str) -> Result<Option<Vec<Secret>>, ConfigError> {
        let Some(value) = self.text(name) else {
            return Ok(None);
        };
        let secrets: Vec<Secret> = value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Secret::new)
            .collect();
        if secrets.is_empty() {
            return Err(Self::invalid(name, "no secret in the list"));
        }
        Ok(Some(secrets))
    }
}

const POSITIVE_WHOLE: &str = "expected a positive whole number";

/// Where and how the outbox is delivered to the shop.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// `PAYHOOK_NOTIFY_URL` and its secret; `None` logs each notification
    /// and marks it delivered.
    pub callback: Option<NotifyCallback>,
    /// Backoff and attempts (`PAYHOOK_NOTIFY_BACKOFF_BASE_MS`,
    /// `PAYHOOK_NOTIFY_BACKOFF_MAX_MS`, `PAYHOOK_NOTIFY_MAX_ATTEMPTS`).
    pub retry: payhook_domain::RetryPolicy,
    /// How often the dispatcher looks for due rows (`PAYHOOK_NOTIFY_POLL_MS`).
    pub poll: Duration,
    /// How long one callback may take (`PAYHOOK_NOTIFY_TIMEOUT_MS`).
    pub timeout: Duration,
}

/// The shop's callback endpoint.
#[derive(Clone)]
pub struct NotifyCallback {
    /// An `https://` URL (TLS with rustls and the Mozilla root certificates)
    /// or, for a local receiver, `http://`.
    pub url: String,
    /// The Standard Webhooks signing key: the base64-decoded part of
    /// `PAYHOOK_NOTIFY_SECRET=whsec_<base64>`.
    pub key: Secret,
}

impl std::fmt::Debug for NotifyCallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotifyCallback")
            .field("url", &self.url)
            .field("key", &"[redacted]")
            .finish()
    }
}

/// Default of `PAYHOOK_NOTIFY_MAX_ATTEMPTS`.
pub const DEFAULT_NOTIFY_MAX_ATTEMPTS: u32 = 12;
/// Default of `PAYHOOK_NOTIFY_BACKOFF_BASE_MS`.
pub const DEFAULT_NOTIFY_BACKOFF_BASE_MS: u64 = 5_000;
/// Default of `PAYHOOK_NOTIFY_BACKOFF_MAX_MS`.
pub const DEFAULT_NOTIFY_BACKOFF_MAX_MS: u64 = 600_000;
/// Default of `PAYHOOK_NOTIFY_POLL_MS`.
pub const DEFAULT_NOTIFY_POLL_MS: u64 = 500;
/// Default of `PAYHOOK_NOTIFY_TIMEOUT_MS`.
pub const DEFAULT_NOTIFY_TIMEOUT_MS: u64 = 10_000;

fn notify_config(env: &Env<'_>) -> Result<NotifyConfig, ConfigError> {
    let invalid = Env::invalid;
    let callback = match (
        env.text("PAYHOOK_NOTIFY_URL"),
        env.text("PAYHOOK_NOTIFY_SECRET"),
    ) {
        (None, None) => None,
        (None, Some(_)) => {
            return Err(invalid(
                "PAYHOOK_NOTIFY_URL",
                "must be set together with PAYHOOK_NOTIFY_SECRET",
            ))
        }
        (Some(_), None) => {
            return Err(invalid(
                "PAYHOOK_NOTIFY_SECRET",
                "required when PAYHOOK_NOTIFY_URL is set (whsec_<base64>)",
            ))
        }
        (Some(url), Some(secret)) => {
            let url = url.trim().to_owned();
            let rest = url
                .strip_prefix("https://")
                .or_else(|| url.strip_prefix("http://"));
            if rest.is_none_or(|rest| rest.is_empty() || rest.starts_with('/')) {
                return Err(invalid(
                    "PAYHOOK_NOTIFY_URL",
                    "expected an https:// or http:// URL with a host",
                ));
            }
            use base64::Engine as _;
            let key = secret
                .trim()
                .strip_prefix("whsec_")
                .and_then(|encoded| {
                    base64::engine::general_purpose::STANDARD
                        .decode(encoded)
                        .ok()
                })
                .filter(|key| !key.is_empty())
                .ok_or_else(|| {
                    invalid(
                        "PAYHOOK_NOTIFY_SECRET",
                        "expected whsec_ followed by base64 (a Standard Webhooks secret)",
                    )
                })?;
            // The key is raw bytes; kept as base64 text in a Secret so it never prints.
            Some(NotifyCallback {
                url,
                key: Secret::new(base64::engine::general_purpose::STANDARD.encode(key)),
            })
        }
    };
    let max_attempts = env
        .positive("PAYHOOK_NOTIFY_MAX_ATTEMPTS", DEFAULT_NOTIFY_MAX_ATTEMPTS)?
        .get();
    let base = env.millis(
        "PAYHOOK_NOTIFY_BACKOFF_BASE_MS",
        DEFAULT_NOTIFY_BACKOFF_BASE_MS,
    )?;
    let max = env.millis(
        "PAYHOOK_NOTIFY_BACKOFF_MAX_MS",
        DEFAULT_NOTIFY_BACKOFF_MAX_MS,
    )?;
    if max < base {
        return Err(invalid(
            "PAYHOOK_NOTIFY_BACKOFF_MAX_MS",
            "must not be below PAYHOOK_NOTIFY_BACKOFF_BASE_MS",
        ));
    }
    Ok(NotifyConfig {
        callback,
        retry: payhook_domain::RetryPolicy {
            base,
            max,
            max_attempts,
        },
        poll: env.millis("PAYHOOK_NOTIFY_POLL_MS", DEFAULT_NOTIFY_POLL_MS)?,
        timeout: env.millis("PAYHOOK_NOTIFY_TIMEOUT_MS", DEFAULT_NOTIFY_TIMEOUT_MS)?,
    })
}

/// Default of `PAYHOOK_RECONCILE_AFTER`: 15 minutes.
pub const DEFAULT_RECONCILE_AFTER: Duration = Duration::from_secs(15 * 60);
/// Default of `PAYHOOK_RECONCILE_INTERVAL`: 5 minutes.
pub const DEFAULT_RECONCILE_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// Default of `PAYHOOK_RECONCILE_BATCH`.
pub const DEFAULT_RECONCILE_BATCH: u32 = 100;
/// Largest `PAYHOOK_RECONCILE_BATCH`: a pass is one claim statement, and
/// a batch this large already costs more API calls per interval than a
/// gateway's rate limit lets through.
pub const MAX_RECONCILE_BATCH: u32 = 10_000;

/// Reconciliation: asking the gateways' APIs about payments whose webhook
/// never came. A gateway is reconciled only when its API credentials are
/// set.
#[derive(Debug, Clone)]
pub struct ReconcileConfig {
    /// `STRIPE_API_KEY` and `PAYHOOK_STRIPE_API_BASE`; `None` leaves Stripe
    /// payments alone.
    pub stripe: Option<StripeApiConfig>,
    /// `PAYPAL_CLIENT_ID`, `PAYPAL_CLIENT_SECRET`, `PAYPAL_ENVIRONMENT` and
    /// `PAYHOOK_PAYPAL_API_BASE`; `None` leaves PayPal payments alone.
    pub paypal: Option<PaypalApiSettings>,
    /// A payment is checked once it has been `pending_external` this long
    /// (`PAYHOOK_RECONCILE_AFTER`).
    pub after: Duration,
    /// Time between passes (`PAYHOOK_RECONCILE_INTERVAL`).
    pub interval: Duration,
    /// Most payments checked per pass (`PAYHOOK_RECONCILE_BATCH`).
    pub batch: u32,
}

impl ReconcileConfig {
    /// The gateways whose API credentials are set, in a fixed order.
    pub fn gateways(&self) -> Vec<&'static str> {
        let mut gateways = Vec::new();
        if self.stripe.is_some() {
            gateways.push("stripe");
        }
        if self.paypal.is_some() {
            gateways.push("paypal");
        }
        gateways
    }
}

/// PayPal's API: the client credentials (in [`PayPalApiConfig`], with the
/// access-token cache every clone shares) and the environment they belong
/// to.
#[derive(Debug, Clone)]
pub struct PaypalApiSettings {
    /// The client, its base URL and its token cache.
    pub api: PayPalApiConfig,
    /// `PAYPAL_ENVIRONMENT`.
    pub environment: PayPalEnvironment,
}

/// Reads a duration written as a whole number and a unit: `500ms`, `30s`,
/// `15m`, `1h`, `2d` (`0s` is zero). Used for the reconciliation settings
/// and `payhook reconcile --older-than`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    const EXPECTED: &str = "expected a whole number and a unit, e.g. 500ms, 30s, 15m, 1h or 1d";
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| EXPECTED.to_owned())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| EXPECTED.to_owned())?;
    let unit_millis: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(EXPECTED.to_owned()),
    };
    number
        .checked_mul(unit_millis)
        .map(Duration::from_millis)
        .ok_or_else(|| "the duration is too long".to_owned())
}

/// A duration as [`parse_duration`] reads it, in the largest whole unit
/// that shows it exactly (`90d`, `1h`, `1500ms`, `0s`).
pub fn format_duration(value: Duration) -> String {
    let millis = value.as_millis();
    if millis == 0 {
        return "0s".to_owned();
    }
    [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ]
    .into_iter()
    .find(|(_, size)| millis % size == 0)
    .map_or_else(
        || format!("{millis}ms"),
        |(unit, size)| format!("{}{unit}", millis / size),
    )
}

/// Checks an API base URL: `https://host[:port]`, or `http://` to a
/// loopback host (a local stand-in: credentials never cross a network in
/// clear text). Returns it without a trailing slash.
fn api_base(name: &'static str, url: &str) -> Result<String, ConfigError> {
    let url = url.trim().trim_end_matches('/');
    let (secure, rest) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
        (Some(rest), _) => (true, rest),
        (None, Some(rest)) => (false, rest),
        (None, None) => {
            return Err(Env::invalid(
                name,
                "expected an https:// URL (http:// only to a loopback address)",
            ))
        }
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty()
        || authority.contains('@')
        || rest.contains(['?', '#'])
        || rest.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(Env::invalid(
            name,
            "expected a URL with a host and no user, query or fragment",
        ));
    }
    let host = match authority.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host),
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !secure && !loopback {
        return Err(Env::invalid(
            name,
            "plain http:// is only allowed to a loopback address (127.0.0.1, ::1, localhost); \
             use https://",
        ));
    }
    Ok(url.to_owned())
}

fn reconcile_config(env: &Env<'_>) -> Result<ReconcileConfig, ConfigError> {
    let invalid = Env::invalid;
    let duration = |name: &'static str, default: Duration| -> Result<Duration, ConfigError> {
        env.text(name)
            .map_or(Ok(default), |text| parse_duration(&text))
            .map_err(|reason| invalid(name, &reason))
    };
    let stripe_base = env
        .text("PAYHOOK_STRIPE_API_BASE")
        .map(|url| api_base("PAYHOOK_STRIPE_API_BASE", &url))
        .transpose()?;
    let paypal_base = env
        .text("PAYHOOK_PAYPAL_API_BASE")
        .map(|url| api_base("PAYHOOK_PAYPAL_API_BASE", &url))
        .transpose()?;
    let environment = env.choice(
        "PAYPAL_ENVIRONMENT",
        &[
            ("live", PayPalEnvironment::Live),
            ("sandbox", PayPalEnvironment::Sandbox),
        ],
        PayPalEnvironment::Live,
        "expected live or sandbox",
    )?;
    let stripe = env
        .text("STRIPE_API_KEY")
        .map(|key| {
            let mut api = StripeApiConfig::new(Secret::new(key.trim()));
            if let Some(base) = stripe_base {
                api = api.with_base_url(base);
            }
            api.validate().map(|()| api).map_err(|error| match error {
                payhook_stripe_api::ConfigError::InvalidBaseUrl => {
                    invalid("PAYHOOK_STRIPE_API_BASE", &error.to_string())
                }
                other => invalid("STRIPE_API_KEY", &other.to_string()),
            })
        })
        .transpose()?;
    let paypal = match (
        env.text("PAYPAL_CLIENT_ID"),
        env.text("PAYPAL_CLIENT_SECRET"),
    ) {
        (None, None) => None,
        (Some(_), None) => {
            return Err(invalid(
                "PAYPAL_CLIENT_SECRET",
                "required when PAYPAL_CLIENT_ID is set",
            ))
        }
        (None, Some(_)) => {
            return Err(invalid(
                "PAYPAL_CLIENT_ID",
                "required when PAYPAL_CLIENT_SECRET is set",
            ))
        }
        (Some(client_id), Some(client_secret)) => {
            let paypal_error = |error: payhook_paypal_api::ConfigError| {
                let variable = match error {
                    payhook_paypal_api::ConfigError::InvalidClientId => "PAYPAL_CLIENT_ID",
                    payhook_paypal_api::ConfigError::InvalidClientSecret => "PAYPAL_CLIENT_SECRET",
                    payhook_paypal_api::ConfigError::UnknownEnvironment => "PAYPAL_ENVIRONMENT",
                    _ => "PAYHOOK_PAYPAL_API_BASE",
                };
                invalid(variable, &error.to_string())
            };
            let mut api = PayPalApiConfig::new(
                client_id.trim(),
                Secret::new(client_secret.trim()),
                environment,
            )
            .map_err(paypal_error)?;
            if let Some(base) = paypal_base {
                api = api.with_base_url(&base).map_err(paypal_error)?;
            }
            Some(PaypalApiSettings { api, environment })
        }
    };
    let interval = duration("PAYHOOK_RECONCILE_INTERVAL", DEFAULT_RECONCILE_INTERVAL)?;
    if interval.is_zero() {
        return Err(invalid(
            "PAYHOOK_RECONCILE_INTERVAL",
            "must be longer than zero",
        ));
    }
    Ok(ReconcileConfig {
        stripe,
        paypal,
        after: duration("PAYHOOK_RECONCILE_AFTER", DEFAULT_RECONCILE_AFTER)?,
        interval,
        batch: env.number(
            "PAYHOOK_RECONCILE_BATCH",
            DEFAULT_RECONCILE_BATCH,
            1..=MAX_RECONCILE_BATCH,
            "expected a number from 1 to 10000",
        )?,
    })
}

/// The defaults of the design brief.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://payhook.db";
/// Listen address when `PAYHOOK_ADDR` is unset.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8000";
/// 1 MiB: real gateway events are a few KiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// 10 s: a gateway sends a few KiB at once; only a stalled or hostile
/// client needs longer.
pub const DEFAULT_BODY_TIMEOUT_MS: u64 = 10_000;
/// Default of `PAYHOOK_RETENTION_DAYS`.
pub const DEFAULT_RETENTION_DAYS: u32 = 90;
/// Longest retention: a century, far beyond any need, and a cut-off that
/// date arithmetic can always compute.
pub const MAX_RETENTION_DAYS: u32 = 36_500;

/// Shortest `PAYHOOK_RETENTION`: the pruner's unit of work is a batch of
/// minutes-old rows; anything shorter would prune events a gateway is still
/// retrying within its first backoff.
pub const MIN_RETENTION: Duration = Duration::from_secs(60);

/// `PAYHOOK_RETENTION_DAYS` (a whole number of days, or `off`), or
/// `PAYHOOK_RETENTION` (a period such as `30m` or `12h`, or `off`). The
/// second exists for soak tests and small disks, where days are too coarse;
/// setting both is an error rather than a silent precedence.
fn retention(env: &Env<'_>) -> Result<Option<Duration>, ConfigError> {
    const DAYS: &str = "PAYHOOK_RETENTION_DAYS";
    const PERIOD: &str = "PAYHOOK_RETENTION";
    let is_off = |text: &str| text.trim().eq_ignore_ascii_case("off");
    let max = Duration::from_secs(u64::from(MAX_RETENTION_DAYS) * 86_400);
    match (env.text(DAYS), env.text(PERIOD)) {
        (Some(_), Some(_)) => Err(Env::invalid(
            PERIOD,
            "set PAYHOOK_RETENTION_DAYS or PAYHOOK_RETENTION, not both",
        )),
        (None, Some(text)) if is_off(&text) => Ok(None),
        (None, Some(text)) => parse_duration(&text)
            .ok()
            .filter(|period| (MIN_RETENTION..=max).contains(period))
            .map(Some)
            .ok_or_else(|| {
                Env::invalid(
                    PERIOD,
                    "expected a period from 1m to 36500d such as 30m, 12h or 7d, or off",
                )
            }),
        (Some(text), None) if is_off(&text) => Ok(None),
        _ => env
            .number(
                DAYS,
                DEFAULT_RETENTION_DAYS,
                1..=MAX_RETENTION_DAYS,
                "expected a whole number of days from 1 to 36500, or off",
            )
            .map(|days| Some(Duration::from_secs(u64::from(days) * 86_400))),
    }
}

/// `PAYHOOK_DB_WRITERS`: from 1 to the pool's size less one on PostgreSQL
/// (a writer keeps its connection while events are queued, and the API's
/// requests need one too; 1 with a pool of 1). SQLite
/// takes one writer at a time, so any other number there is a mistake to
/// report, not a setting to ignore.
fn db_writers(
    env: &Env<'_>,
    target: &payhook_store_diesel::Target,
    pool_size: u32,
) -> Result<Option<NonZeroU32>, ConfigError> {
    const NAME: &str = "PAYHOOK_DB_WRITERS";
    if env.text(NAME).is_none() {
        return Ok(None);
    }
    if target.is_sqlite() {
        let writers = env.number(
            NAME,
            1,
            1..=1,
            "SQLite has one writer: expected 1, or unset",
        )?;
        return Ok(NonZeroU32::new(writers));
    }
    let most = pool_size.saturating_sub(1).max(1);
    let expected = format!(
        "expected a number from 1 to {most}, one less than PAYHOOK_DB_POOL_SIZE ({pool_size}), \
         so that a connection is left for the API"
    );
    let writers = env.number(NAME, 1, 1..=most, &expected)?;
    Ok(NonZeroU32::new(writers))
}

/// 64 MiB of bodies in reception at once (64 bodies of the default largest
/// size), or `PAYHOOK_MAX_BODY_BYTES` when that is larger.
pub const DEFAULT_MAX_RECEIVING_BYTES: usize = 64 * 1024 * 1024;

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the variables through `lookup`, so tests need not touch the
    /// process environment. Empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env { lookup: &lookup };
        let invalid = Env::invalid;

        let database_url = env
            .text("DATABASE_URL")
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        let target = payhook_store_diesel::Target::parse(&database_url)
            .map_err(|e| invalid("DATABASE_URL", &e.to_string()))?;

        let addr = env
            .text("PAYHOOK_ADDR")
            .unwrap_or_else(|| DEFAULT_ADDR.to_owned())
            .parse()
            .map_err(|_| invalid("PAYHOOK_ADDR", "expected host:port, e.g. 127.0.0.1:8000"))?;

        let paypal = match (env.text("PAYPAL_WEBHOOK_ID"), env.text("PAYPAL_CERT_FILE")) {
            (None, None) => None,
            (Some(_), None) => {
                return Err(invalid(
                    "PAYPAL_CERT_FILE",
                    "must be set together with PAYPAL_WEBHOOK_ID",
                ))
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "PAYPAL_WEBHOOK_ID",
                    "must be set together with PAYPAL_CERT_FILE",
                ))
            }
            (Some(webhook_id), Some(cert_file)) => {
                let certificates_pem = std::fs::read(&cert_file).map_err(|e| {
                    invalid("PAYPAL_CERT_FILE", &format!("cannot read {cert_file}: {e}"))
                })?;
                Some(PaypalConfig {
                    webhook_id: webhook_id.trim().to_owned(),
                    certificates_pem,
                    cert_file,
                })
            }
        };

        let max_body_bytes = env.number(
            "PAYHOOK_MAX_BODY_BYTES",
            DEFAULT_MAX_BODY_BYTES,
            1..=usize::MAX,
            "expected a positive number of bytes",
        )?;
        // A budget below one body would refuse every body of the largest size.
        let max_receiving_bytes = env.number(
            "PAYHOOK_MAX_RECEIVING_BYTES",
            DEFAULT_MAX_RECEIVING_BYTES.max(max_body_bytes),
            max_body_bytes..=usize::MAX,
            "expected a number of bytes no smaller than PAYHOOK_MAX_BODY_BYTES",
        )?;

        let db_pool_size = env.number(
            "PAYHOOK_DB_POOL_SIZE",
            8,
            1..=1024,
            "expected a number from 1 to 1024",
        )?;
        let db_writers = db_writers(&env, &target, db_pool_size)?;

        Ok(Self {
            stripe_secrets: env.secrets("STRIPE_WEBHOOK_SECRET")?,
            generic_secrets: env.secrets("WEBHOOK_SECRET")?,
            allow_unsigned_generic: env.bool("PAYHOOK_ALLOW_UNSIGNED_GENERIC", false)?,
            amount_policy: env.choice(
                "PAYHOOK_AMOUNT_MISMATCH",
                &[
                    ("warn", AmountPolicy::Warn),
                    ("reject", AmountPolicy::Reject),
                ],
                AmountPolicy::Warn,
                "expected warn or reject",
            )?,
            max_body_bytes,
            body_timeout: env.millis("PAYHOOK_BODY_TIMEOUT_MS", DEFAULT_BODY_TIMEOUT_MS)?,
            max_receiving_bytes,
            db_pool_size,
            db_writers,
            db_timeout: env.millis("PAYHOOK_DB_TIMEOUT_MS", 5_000)?,
            log_format: env.choice(
                "PAYHOOK_LOG_FORMAT",
                &[
                    ("pretty", LogFormat::Pretty),
                    ("text", LogFormat::Pretty),
                    ("json", LogFormat::Json),
                ],
                LogFormat::Pretty,
                "expected json or pretty",
            )?,
            failed_attempts_per_second: env.positive("PAYHOOK_FAILED_ATTEMPTS_PER_SECOND", 10)?,
            failed_attempts_burst: env.positive("PAYHOOK_FAILED_ATTEMPTS_BURST", 20)?,
            max_in_flight: env.positive("PAYHOOK_MAX_IN_FLIGHT", 512)?.get() as usize,
            group_commit: env.bool("PAYHOOK_GROUP_COMMIT", true)?,
            notify: notify_config(&env)?,
            reconcile: reconcile_config(&env)?,
            database_url: Secret::new(database_url),
            addr,
            api_token: env.text("PAYHOOK_API_TOKEN").map(Secret::new),
            paypal,
            retention: retention(&env)?,
            prune_interval: env
                .text("PAYHOOK_PRUNE_INTERVAL")
                .map(|text| {
                    crate::pruner::parse_period(&text).ok_or_else(|| {
                        invalid(
                            "PAYHOOK_PRUNE_INTERVAL",
                            "expected a period such as 1h, 30m or 30s",
                        )
                    })
                })
                .transpose()?
                .unwrap_or(crate::pruner::PRUNE_INTERVAL),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn defaults_follow_the_design() {
        let config = config(&[]).unwrap();
        assert_eq!(config.database_url.expose(), "sqlite://payhook.db");
        assert_eq!(config.addr.to_string(), "127.0.0.1:8000");
        assert!(config.api_token.is_none());
        assert!(config.stripe_secrets.is_none());
        assert_eq!(config.amount_policy, AmountPolicy::Warn);
        assert_eq!(config.max_body_bytes, 1024 * 1024);
        assert_eq!(config.body_timeout, Duration::from_secs(10));
        assert_eq!(config.max_receiving_bytes, 64 * 1024 * 1024);
    }

    #[test]
    fn the_receiving_budget_holds_at_least_one_body() {
        let large = config(&[("PAYHOOK_MAX_BODY_BYTES", "100000000")]).unwrap();
        assert_eq!(large.max_receiving_bytes, 100_000_000);
        let error = config(&[
            ("PAYHOOK_MAX_BODY_BYTES", "2000"),
            ("PAYHOOK_MAX_RECEIVING_BYTES", "1999"),
        ])
        .unwrap_err();
        assert_eq!(error.variable, "PAYHOOK_MAX_RECEIVING_BYTES");
    }

    #[test]
    fn stripe_secrets_are_a_comma_separated_list() {
        let config = config(&[("STRIPE_WEBHOOK_SECRET", "whsec_a, whsec_b")]).unwrap();
        let secrets = config.stripe_secrets.unwrap();
        assert_eq!(
            secrets.iter().map(Secret::expose).collect::<Vec<_>>(),
            ["whsec_a", "whsec_b"]
        );
    }

    #[test]
    fn bad_values_name_their_variable() {
        let cases = [
            ("DATABASE_URL", "mysql://x"),
            ("PAYHOOK_ADDR", "nowhere"),
            ("PAYHOOK_AMOUNT_MISMATCH", "maybe"),
            ("PAYHOOK_MAX_BODY_BYTES", "-1"),
            ("PAYHOOK_MAX_BODY_BYTES", "0"),
            ("PAYHOOK_BODY_TIMEOUT_MS", "0"),
            ("PAYHOOK_MAX_RECEIVING_BYTES", "lots"),
            ("PAYHOOK_DB_POOL_SIZE", "0"),
            ("PAYHOOK_DB_WRITERS", "0"),
            ("PAYHOOK_DB_TIMEOUT_MS", "soon"),
            ("PAYHOOK_LOG_FORMAT", "xml"),
            ("PAYHOOK_FAILED_ATTEMPTS_PER_SECOND", "0"),
            ("PAYHOOK_FAILED_ATTEMPTS_BURST", "many"),
            ("PAYHOOK_MAX_IN_FLIGHT", "-3"),
            ("PAYHOOK_GROUP_COMMIT", "sometimes"),
            ("STRIPE_WEBHOOK_SECRET", " , "),
            ("WEBHOOK_SECRET", ","),
            ("PAYHOOK_ALLOW_UNSIGNED_GENERIC", "yes"),
            // Each PayPal variable alone names its missing partner.
            ("PAYPAL_WEBHOOK_ID", "WH-1"),
            ("PAYPAL_CERT_FILE", "/nonexistent/cert.pem"),
        ];
        for (variable, value) in cases {
            let error = config(&[(variable, value)]).unwrap_err();
            let expected = match variable {
                "PAYPAL_WEBHOOK_ID" => "PAYPAL_CERT_FILE",
                "PAYPAL_CERT_FILE" => "PAYPAL_WEBHOOK_ID",
                other => other,
            };
            assert_eq!(error.variable, expected, "{variable}={value}");
        }
    }

    #[test]
    fn writers_are_bounded_by_the_pool_and_one_on_sqlite() {
        let postgres = ("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/payhook");
        let writers = |vars: &[(&str, &str)]| config(vars).map(|c| c.db_writers.map(|w| w.get()));
        assert_eq!(writers(&[postgres]).unwrap(), None);
        assert_eq!(
            writers(&[postgres, ("PAYHOOK_DB_WRITERS", "1")]).unwrap(),
            Some(1)
        );
        assert_eq!(
            writers(&[postgres, ("PAYHOOK_DB_WRITERS", "7")]).unwrap(),
            Some(7)
        );
        let pool_16 = ("PAYHOOK_DB_POOL_SIZE", "16");
        assert_eq!(
            writers(&[postgres, pool_16, ("PAYHOOK_DB_WRITERS", "12")]).unwrap(),
            Some(12)
        );
        let pool_1 = ("PAYHOOK_DB_POOL_SIZE", "1");
        assert_eq!(
            writers(&[postgres, pool_1, ("PAYHOOK_DB_WRITERS", "1")]).unwrap(),
            Some(1)
        );
        for bad in ["0", "8", "-1", "two"] {
            let error = writers(&[postgres, ("PAYHOOK_DB_WRITERS", bad)]).unwrap_err();
            assert_eq!(error.variable, "PAYHOOK_DB_WRITERS", "{bad}");
            assert!(
                error.reason.contains("PAYHOOK_DB_POOL_SIZE (8)"),
                "{}",
                error.reason
            );
        }
        // SQLite: one writer, whatever the pool.
        assert_eq!(writers(&[("PAYHOOK_DB_WRITERS", "1")]).unwrap(), Some(1));
        let error = writers(&[("PAYHOOK_DB_WRITERS", "2")]).unwrap_err();
        assert_eq!(error.variable, "PAYHOOK_DB_WRITERS");
        assert!(error.reason.contains("SQLite"), "{}", error.reason);
    }

    #[test]
    fn paypal_needs_both_variables_and_a_readable_file() {
        let missing_file = config(&[
            ("PAYPAL_WEBHOOK_ID", "WH-1"),
            ("PAYPAL_CERT_FILE", "/nonexistent/cert.pem"),
        ])
        .unwrap_err();
        assert_eq!(missing_file.variable, "PAYPAL_CERT_FILE");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cert.pem");
        std::fs::write(&path, b"pem bytes").unwrap();
        let path = path.to_str().unwrap();
        let paypal = config(&[("PAYPAL_WEBHOOK_ID", "WH-1"), ("PAYPAL_CERT_FILE", path)])
            .unwrap()
            .paypal
            .unwrap();
        assert_eq!(paypal.webhook_id, "WH-1");
        assert_eq!(paypal.certificates_pem, b"pem bytes");
    }

    #[test]
    fn unsigned_generic_is_an_explicit_opt_in() {
        assert!(!config(&[]).unwrap().allow_unsigned_generic);
        assert!(
            config(&[("PAYHOOK_ALLOW_UNSIGNED_GENERIC", "true")])
                .unwrap()
                .allow_unsigned_generic
        );
        assert!(
            !config(&[("PAYHOOK_ALLOW_UNSIGNED_GENERIC", "false")])
                .unwrap()
                .allow_unsigned_generic
        );
    }

    #[test]
    fn notifications_default_to_logging_with_the_documented_schedule() {
        let notify = config(&[]).unwrap().notify;
        assert!(notify.callback.is_none());
        assert_eq!(notify.retry, payhook_domain::RetryPolicy::default());
        assert_eq!(notify.timeout, Duration::from_secs(10));
    }

    #[test]
    fn the_notify_url_needs_a_standard_webhooks_secret() {
        let url = ("PAYHOOK_NOTIFY_URL", "http://127.0.0.1:9/hook");
        let cases: [&[(&str, &str)]; 5] = [
            &[url],
            &[url, ("PAYHOOK_NOTIFY_SECRET", "plain-text")],
            &[url, ("PAYHOOK_NOTIFY_SECRET", "whsec_!!!")],
            &[url, ("PAYHOOK_NOTIFY_SECRET", "whsec_")],
            &[
                ("PAYHOOK_NOTIFY_URL", "http://127.0.0.1:9/"),
                ("PAYHOOK_NOTIFY_SECRET", "whsec_dGVzdA=="),
                ("PAYHOOK_NOTIFY_BACKOFF_BASE_MS", "soon"),
            ],
        ];
        let expected = [
            "PAYHOOK_NOTIFY_SECRET",
            "PAYHOOK_NOTIFY_SECRET",
            "PAYHOOK_NOTIFY_SECRET",
            "PAYHOOK_NOTIFY_SECRET",
            "PAYHOOK_NOTIFY_BACKOFF_BASE_MS",
        ];
        for (vars, variable) in cases.iter().zip(expected) {
            assert_eq!(config(vars).unwrap_err().variable, variable, "{vars:?}");
        }
        for bad in ["ftp://x", "http://", "https://", "https:///path", "nowhere"] {
            let error = config(&[
                ("PAYHOOK_NOTIFY_URL", bad),
                ("PAYHOOK_NOTIFY_SECRET", "whsec_dGVzdA=="),
            ])
            .unwrap_err();
            assert_eq!(error.variable, "PAYHOOK_NOTIFY_URL", "{bad}");
        }
        let error = config(&[("PAYHOOK_NOTIFY_SECRET", "whsec_dGVzdA==")]).unwrap_err();
        assert_eq!(error.variable, "PAYHOOK_NOTIFY_URL");
        let notify = config(&[
            url,
            ("PAYHOOK_NOTIFY_SECRET", "whsec_dGVzdA=="),
            ("PAYHOOK_NOTIFY_MAX_ATTEMPTS", "3"),
            ("PAYHOOK_NOTIFY_BACKOFF_BASE_MS", "50"),
            ("PAYHOOK_NOTIFY_BACKOFF_MAX_MS", "200"),
        ])
        .unwrap()
        .notify;
        assert_eq!(notify.retry.max_attempts, 3);
        assert_eq!(notify.retry.base, Duration::from_millis(50));
        let callback = notify.callback.unwrap();
        assert_eq!(callback.url, "http://127.0.0.1:9/hook");
        assert!(!format!("{callback:?}").contains("dGVzdA"));
        let https = config(&[
            ("PAYHOOK_NOTIFY_URL", "https://shop.example/payhook"),
            ("PAYHOOK_NOTIFY_SECRET", "whsec_dGVzdA=="),
        ])
        .unwrap();
        assert_eq!(
            https.notify.callback.unwrap().url,
            "https://shop.example/payhook"
        );
    }

    #[test]
    fn retention_is_days_or_off() {
        let defaults = config(&[]).unwrap();
        assert_eq!(defaults.retention, Some(Duration::from_secs(90 * 86_400)));
        assert_eq!(defaults.prune_interval, Duration::from_secs(3600));
        let set = config(&[
            ("PAYHOOK_RETENTION_DAYS", "7"),
            ("PAYHOOK_PRUNE_INTERVAL", "30s"),
        ])
        .unwrap();
        assert_eq!(set.retention, Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(set.prune_interval, Duration::from_secs(30));
        assert_eq!(
            config(&[("PAYHOOK_RETENTION_DAYS", "off")])
                .unwrap()
                .retention,
            None
        );
        for bad in ["0", "-1", "1.5", "90d", "never", "36501"] {
            let error = config(&[("PAYHOOK_RETENTION_DAYS", bad)]).unwrap_err();
            assert_eq!(error.variable, "PAYHOOK_RETENTION_DAYS", "{bad}");
        }
        let short = config(&[("PAYHOOK_RETENTION", "30m")]).unwrap();
        assert_eq!(short.retention, Some(Duration::from_secs(1800)));
        assert_eq!(
            config(&[("PAYHOOK_RETENTION", "OFF")]).unwrap().retention,
            None
        );
        for bad in ["0s", "59s", "30", "1.5h", "36501d", "soon"] {
            let error = config(&[("PAYHOOK_RETENTION", bad)]).unwrap_err();
            assert_eq!(error.variable, "PAYHOOK_RETENTION", "{bad}");
        }
        let both = config(&[
            ("PAYHOOK_RETENTION", "30m"),
            ("PAYHOOK_RETENTION_DAYS", "7"),
        ])
        .unwrap_err();
        assert_eq!(both.variable, "PAYHOOK_RETENTION");
        for bad in ["0s", "30", "soon"] {
            let error = config(&[("PAYHOOK_PRUNE_INTERVAL", bad)]).unwrap_err();
            assert_eq!(error.variable, "PAYHOOK_PRUNE_INTERVAL", "{bad}");
        }
    }

    #[test]
    fn reconciliation_is_off_without_credentials_and_has_the_documented_defaults() {
        let reconcile = config(&[]).unwrap().reconcile;
        assert!(reconcile.stripe.is_none());
        assert!(reconcile.paypal.is_none());
        assert!(reconcile.gateways().is_empty());
        assert_eq!(reconcile.after, Duration::from_secs(15 * 60));
        assert_eq!(reconcile.interval, Duration::from_secs(5 * 60));
        assert_eq!(reconcile.batch, 100);
    }

    #[test]
    fn each_gateway_is_reconciled_once_its_credentials_are_set() {
        let reconcile = config(&[
            ("STRIPE_API_KEY", "sk_test_123"),
            ("PAYPAL_CLIENT_ID", "client-1"),
            ("PAYPAL_CLIENT_SECRET", "secret-1"),
            ("PAYHOOK_RECONCILE_AFTER", "30s"),
            ("PAYHOOK_RECONCILE_INTERVAL", "1h"),
            ("PAYHOOK_RECONCILE_BATCH", "25"),
        ])
        .unwrap()
        .reconcile;
        assert_eq!(reconcile.gateways(), ["stripe", "paypal"]);
        let stripe = reconcile.stripe.unwrap();
        assert_eq!(stripe.api_key.expose(), "sk_test_123");
        assert_eq!(stripe.base_url, "https://api.stripe.com");
        let paypal = reconcile.paypal.unwrap();
        assert_eq!(paypal.api.client_id(), "client-1");
        assert_eq!(paypal.environment, PayPalEnvironment::Live);
        assert_eq!(paypal.api.base_url(), "https://api-m.paypal.com");
        assert_eq!(reconcile.after, Duration::from_secs(30));
        assert_eq!(reconcile.interval, Duration::from_secs(3600));
        assert_eq!(reconcile.batch, 25);
    }

    #[test]
    fn paypal_sandbox_and_base_url_overrides() {
        let credentials = [
            ("PAYPAL_CLIENT_ID", "client-1"),
            ("PAYPAL_CLIENT_SECRET", "secret-1"),
        ];
        let sandbox = config(&[
            credentials[0],
            credentials[1],
            ("PAYPAL_ENVIRONMENT", "sandbox"),
        ])
        .unwrap()
        .reconcile
        .paypal
        .unwrap();
        assert_eq!(sandbox.environment, PayPalEnvironment::Sandbox);
        assert_eq!(sandbox.api.base_url(), "https://api-m.sandbox.paypal.com");
        let local = config(&[
            credentials[0],
            credentials[1],
            ("PAYHOOK_PAYPAL_API_BASE", "http://127.0.0.1:9999/"),
            ("STRIPE_API_KEY", "sk_test_1"),
            ("PAYHOOK_STRIPE_API_BASE", "http://[::1]:8080"),
        ])
        .unwrap()
        .reconcile;
        assert_eq!(
            local.paypal.unwrap().api.base_url(),
            "http://127.0.0.1:9999"
        );
        assert_eq!(local.stripe.unwrap().base_url, "http://[::1]:8080");
        for allowed in [
            "https://stripe-proxy.internal",
            "https://10.0.0.5:8443/prefix",
            "http://localhost:12111",
            "http://127.0.0.2",
        ] {
            let base = config(&[
                ("STRIPE_API_KEY", "sk_test_1"),
                ("PAYHOOK_STRIPE_API_BASE", allowed),
            ])
            .unwrap()
            .reconcile
            .stripe
            .unwrap()
            .base_url;
            assert_eq!(base, allowed, "{allowed}");
        }
    }

    #[test]
    fn reconciliation_refusals_name_their_variable() {
        let cases: [(&[(&str, &str)], &str); 18] = [
            (&[("STRIPE_API_KEY", "sk_test_a b")], "STRIPE_API_KEY"),
            (
                &[
                    ("PAYPAL_CLIENT_ID", "client 1"),
                    ("PAYPAL_CLIENT_SECRET", "secret-1"),
                ],
                "PAYPAL_CLIENT_ID",
            ),
            (&[("PAYPAL_CLIENT_ID", "client-1")], "PAYPAL_CLIENT_SECRET"),
            (&[("PAYPAL_CLIENT_SECRET", "secret-1")], "PAYPAL_CLIENT_ID"),
            (
                &[("PAYPAL_ENVIRONMENT", "production")],
                "PAYPAL_ENVIRONMENT",
            ),
            (
                &[("PAYHOOK_RECONCILE_AFTER", "15")],
                "PAYHOOK_RECONCILE_AFTER",
            ),
            (
                &[("PAYHOOK_RECONCILE_AFTER", "-1m")],
                "PAYHOOK_RECONCILE_AFTER",
            ),
            (
                &[("PAYHOOK_RECONCILE_AFTER", "1.5h")],
                "PAYHOOK_RECONCILE_AFTER",
            ),
            (
                &[("PAYHOOK_RECONCILE_INTERVAL", "0s")],
                "PAYHOOK_RECONCILE_INTERVAL",
            ),
            (
                &[("PAYHOOK_RECONCILE_INTERVAL", "5 minutes")],
                "PAYHOOK_RECONCILE_INTERVAL",
            ),
            (
                &[("PAYHOOK_RECONCILE_BATCH", "0")],
                "PAYHOOK_RECONCILE_BATCH",
            ),
            (
                &[("PAYHOOK_RECONCILE_BATCH", "10001")],
                "PAYHOOK_RECONCILE_BATCH",
            ),
            (
                &[("PAYHOOK_STRIPE_API_BASE", "http://api.stripe.com")],
                "PAYHOOK_STRIPE_API_BASE",
            ),
            (
                &[("PAYHOOK_STRIPE_API_BASE", "http://10.0.0.1:80")],
                "PAYHOOK_STRIPE_API_BASE",
            ),
            (
                &[("PAYHOOK_STRIPE_API_BASE", "ftp://127.0.0.1")],
                "PAYHOOK_STRIPE_API_BASE",
            ),
            (
                &[("PAYHOOK_PAYPAL_API_BASE", "https://")],
                "PAYHOOK_PAYPAL_API_BASE",
            ),
            (
                &[("PAYHOOK_PAYPAL_API_BASE", "https://user:pw@api.example")],
                "PAYHOOK_PAYPAL_API_BASE",
            ),
            (
                &[("PAYHOOK_PAYPAL_API_BASE", "http://localhost.evil.example")],
                "PAYHOOK_PAYPAL_API_BASE",
            ),
        ];
        for (vars, variable) in cases {
            let error = config(vars).unwrap_err();
            assert_eq!(error.variable, variable, "{vars:?}");
            assert!(!error.to_string().contains("secret-1"), "{error}");
        }
    }

    #[test]
    fn durations_are_a_number_and_a_unit() {
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration(" 15m "), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        for bad in [
            "",
            "m",
            "15",
            "15 m",
            "1.5h",
            "-1s",
            "15min",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_output_hides_secrets() {
        let config = config(&[
            ("STRIPE_WEBHOOK_SECRET", "whsec_topsecret"),
            ("PAYHOOK_API_TOKEN", "token-topsecret"),
            ("WEBHOOK_SECRET", "whsec_generic-topsecret"),
            ("DATABASE_URL", "postgres://u:pw-topsecret@h/db"),
            ("STRIPE_API_KEY", "sk_test_topsecret"),
            ("PAYPAL_CLIENT_ID", "client-1"),
            ("PAYPAL_CLIENT_SECRET", "paypal-topsecret"),
        ])
        .unwrap();
        let printed = format!("{config:?}");
        assert!(!printed.contains("topsecret"), "{printed}");
    }
}
