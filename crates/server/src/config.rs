//! Configuration from the environment: the only place that reads it.
//!
//! A bad value stops start-up with one line naming the variable; secrets are
//! kept in [`Secret`] so that printing the configuration never shows them.

use std::net::SocketAddr;
use std::time::Duration;

use payhook_domain::{AmountPolicy, Secret};

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
    /// What to do with a confirmation of another amount.
    pub amount_policy: AmountPolicy,
    /// Largest accepted webhook body.
    pub max_body_bytes: usize,
    /// Most database connections.
    pub db_pool_size: u32,
    /// How long a request waits for a database connection.
    pub db_timeout: Duration,
}

/// The defaults of the design brief.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://payhook.db";
/// Listen address when `PAYHOOK_ADDR` is unset.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8000";
/// 1 MiB: real gateway events are a few KiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the variables through `lookup`, so tests need not touch the
    /// process environment. Empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let invalid = |variable: &'static str, reason: &str| ConfigError {
            variable,
            reason: reason.to_owned(),
        };

        let database_url = get("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        payhook_store_diesel::Target::parse(&database_url)
            .map_err(|e| invalid("DATABASE_URL", &e.to_string()))?;

        let addr_text = get("PAYHOOK_ADDR").unwrap_or_else(|| DEFAULT_ADDR.to_owned());
        let addr = addr_text
            .parse()
            .map_err(|_| invalid("PAYHOOK_ADDR", "expected host:port, e.g. 127.0.0.1:8000"))?;

        let stripe_secrets = get("STRIPE_WEBHOOK_SECRET")
            .map(|value| {
                let secrets: Vec<Secret> = value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(Secret::new)
                    .collect();
                if secrets.is_empty() {
                    Err(invalid("STRIPE_WEBHOOK_SECRET", "no secret in the list"))
                } else {
                    Ok(secrets)
                }
            })
            .transpose()?;

        let amount_policy = match get("PAYHOOK_AMOUNT_MISMATCH").as_deref().map(str::trim) {
            None | Some("warn") => AmountPolicy::Warn,
            Some("reject") => AmountPolicy::Reject,
            Some(_) => {
                return Err(invalid(
                    "PAYHOOK_AMOUNT_MISMATCH",
                    "expected warn or reject",
                ))
            }
        };

        let max_body_bytes = match get("PAYHOOK_MAX_BODY_BYTES") {
            None => DEFAULT_MAX_BODY_BYTES,
            Some(text) => match text.trim().parse::<usize>() {
                Ok(n) if n > 0 => n,
                _ => {
                    return Err(invalid(
                        "PAYHOOK_MAX_BODY_BYTES",
                        "expected a positive number of bytes",
                    ))
                }
            },
        };

        let db_pool_size = match get("PAYHOOK_DB_POOL_SIZE") {
            None => 8,
            Some(text) => match text.trim().parse::<u32>() {
                Ok(n) if (1..=1024).contains(&n) => n,
                _ => {
                    return Err(invalid(
                        "PAYHOOK_DB_POOL_SIZE",
                        "expected a number from 1 to 1024",
                    ))
                }
            },
        };

        let db_timeout = match get("PAYHOOK_DB_TIMEOUT_MS") {
            None => Duration::from_secs(5),
            Some(text) => match text.trim().parse::<u64>() {
                Ok(n) if n > 0 => Duration::from_millis(n),
                _ => {
                    return Err(invalid(
                        "PAYHOOK_DB_TIMEOUT_MS",
                        "expected a positive number of milliseconds",
                    ))
                }
            },
        };

        Ok(Self {
            database_url: Secret::new(database_url),
            addr,
            api_token: get("PAYHOOK_API_TOKEN").map(Secret::new),
            stripe_secrets,
            amount_policy,
            max_body_bytes,
            db_pool_size,
            db_timeout,
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
            ("PAYHOOK_DB_POOL_SIZE", "0"),
            ("PAYHOOK_DB_TIMEOUT_MS", "soon"),
            ("STRIPE_WEBHOOK_SECRET", " , "),
        ];
        for (variable, value) in cases {
            let error = config(&[(variable, value)]).unwrap_err();
            assert_eq!(error.variable, variable, "{value}");
        }
    }

    #[test]
    fn debug_output_hides_secrets() {
        let config = config(&[
            ("STRIPE_WEBHOOK_SECRET", "whsec_topsecret"),
            ("PAYHOOK_API_TOKEN", "token-topsecret"),
            ("DATABASE_URL", "postgres://u:pw-topsecret@h/db"),
        ])
        .unwrap();
        let printed = format!("{config:?}");
        assert!(!printed.contains("topsecret"), "{printed}");
    }
}
