//! `payhook check-config`: the effective configuration, secrets masked, and
//! the checks that need more than parsing (certificates, secret formats).

use std::fmt::Write;

use crate::config::{Config, LogFormat};
use crate::gateways::Gateways;

fn masked(set: bool) -> &'static str {
    if set {
        "[set, redacted]"
    } else {
        "(unset)"
    }
}

/// One `NAME = value` line per setting; secrets show only whether they are set.
pub fn describe(config: &Config) -> String {
    let database = if config.database_url.expose().starts_with("sqlite:") {
        config.database_url.expose().to_owned()
    } else {
        "postgres://[redacted]".to_owned()
    };
    let secrets = |list: &Option<Vec<payhook_domain::Secret>>| match list {
        Some(list) => format!("[{} secret(s), redacted]", list.len()),
        None => "(unset)".to_owned(),
    };
    let mut out = String::new();
    let mut line = |name: &str, value: &str| {
        let _ = writeln!(out, "{name:<36} = {value}");
    };
    line("DATABASE_URL", &database);
    line("PAYHOOK_ADDR", &config.addr.to_string());
    line("PAYHOOK_API_TOKEN", masked(config.api_token.is_some()));
    line("STRIPE_WEBHOOK_SECRET", &secrets(&config.stripe_secrets));
    line("WEBHOOK_SECRET", &secrets(&config.generic_secrets));
    line(
        "PAYHOOK_ALLOW_UNSIGNED_GENERIC",
        &config.allow_unsigned_generic.to_string(),
    );
    match &config.paypal {
        Some(paypal) => {
            line("PAYPAL_WEBHOOK_ID", &paypal.webhook_id);
            line("PAYPAL_CERT_FILE", &paypal.cert_file);
        }
        None => {
            line("PAYPAL_WEBHOOK_ID", "(unset)");
            line("PAYPAL_CERT_FILE", "(unset)");
        }
    }
    line(
        "PAYHOOK_AMOUNT_MISMATCH",
        match config.amount_policy {
            payhook_domain::AmountPolicy::Warn => "warn",
            payhook_domain::AmountPolicy::Reject => "reject",
        },
    );
    line("PAYHOOK_MAX_BODY_BYTES", &config.max_body_bytes.to_string());
    line(
        "PAYHOOK_BODY_TIMEOUT_MS",
        &config.body_timeout.as_millis().to_string(),
    );
    line(
        "PAYHOOK_MAX_RECEIVING_BYTES",
        &config.max_receiving_bytes.to_string(),
    );
    line("PAYHOOK_DB_POOL_SIZE", &config.db_pool_size.to_string());
    line(
        "PAYHOOK_DB_WRITERS",
        &crate::startup::writers_description(config),
    );
    line(
        "PAYHOOK_DB_TIMEOUT_MS",
        &config.db_timeout.as_millis().to_string(),
    );
    line(
        "PAYHOOK_LOG_FORMAT",
        match config.log_format {
            LogFormat::Json => "json",
            LogFormat::Pretty => "pretty",
        },
    );
    line(
        "PAYHOOK_FAILED_ATTEMPTS_PER_SECOND",
        &config.failed_attempts_per_second.to_string(),
    );
    line(
        "PAYHOOK_FAILED_ATTEMPTS_BURST",
        &config.failed_attempts_burst.to_string(),
    );
    line("PAYHOOK_MAX_IN_FLIGHT", &config.max_in_flight.to_string());
    let notify = &config.notify;
    line(
        "PAYHOOK_NOTIFY_URL",
        notify
            .callback
            .as_ref()
            .map_or("(unset: notifications are logged)", |c| c.url.as_str()),
    );
    line("PAYHOOK_NOTIFY_SECRET", masked(notify.callback.is_some()));
    line(
        "PAYHOOK_NOTIFY_MAX_ATTEMPTS",
        &notify.retry.max_attempts.to_string(),
    );
    line(
        "PAYHOOK_NOTIFY_BACKOFF_BASE_MS",
        &notify.retry.base.as_millis().to_string(),
    );
    line(
        "PAYHOOK_NOTIFY_BACKOFF_MAX_MS",
        &notify.retry.max.as_millis().to_string(),
    );
    line(
        "PAYHOOK_NOTIFY_POLL_MS",
        &notify.poll.as_millis().to_string(),
    );
    line(
        "PAYHOOK_NOTIFY_TIMEOUT_MS",
        &notify.timeout.as_millis().to_string(),
    );
    line("PAYHOOK_GROUP_COMMIT", &config.group_commit.to_string());
    // Whole days show as the variable most set them with; a shorter period
    // can only have come from PAYHOOK_RETENTION.
    match config.retention {
        None => line("PAYHOOK_RETENTION_DAYS", "off (nothing is pruned)"),
        Some(retention) if retention.as_secs() % 86_400 == 0 => line(
            "PAYHOOK_RETENTION_DAYS",
            &(retention.as_secs() / 86_400).to_string(),
        ),
        Some(retention) => line(
            "PAYHOOK_RETENTION",
            &crate::config::format_duration(retention),
        ),
    }
    line(
        "PAYHOOK_PRUNE_INTERVAL",
        &crate::config::format_duration(config.prune_interval),
    );
    let reconcile = &config.reconcile;
    line("STRIPE_API_KEY", masked(reconcile.stripe.is_some()));
    line(
        "PAYHOOK_STRIPE_API_BASE",
        reconcile
            .stripe
            .as_ref()
            .map_or("(unused: no STRIPE_API_KEY)", |s| s.base_url.as_str()),
    );
    match &reconcile.paypal {
        Some(paypal) => {
            line("PAYPAL_CLIENT_ID", paypal.api.client_id());
            line("PAYPAL_CLIENT_SECRET", masked(true));
            line("PAYPAL_ENVIRONMENT", paypal.environment.as_str());
            line("PAYHOOK_PAYPAL_API_BASE", paypal.api.base_url());
        }
        None => {
            line("PAYPAL_CLIENT_ID", "(unset)");
            line("PAYPAL_CLIENT_SECRET", "(unset)");
            line("PAYPAL_ENVIRONMENT", "(unused: no PayPal API credentials)");
            line(
                "PAYHOOK_PAYPAL_API_BASE",
                "(unused: no PayPal API credentials)",
            );
        }
    }
    let gateways = reconcile.gateways();
    line(
        "reconciled gateways",
        &if gateways.is_empty() {
            "(none: reconciliation is off)".to_owned()
        } else {
            gateways.join(", ")
        },
    );
    line(
        "PAYHOOK_RECONCILE_AFTER",
        &crate::config::format_duration(reconcile.after),
    );
    line(
        "PAYHOOK_RECONCILE_INTERVAL",
        &crate::config::format_duration(reconcile.interval),
    );
    line("PAYHOOK_RECONCILE_BATCH", &reconcile.batch.to_string());
    out
}

/// Builds every configured adapter, so an unusable secret or certificate is
/// reported now rather than at the first webhook.
pub fn validate(config: &Config) -> anyhow::Result<()> {
    Gateways::from_config(config)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn described(vars: &[(&str, &str)]) -> String {
        let config = Config::from_lookup(|name| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        })
        .expect("a valid configuration");
        describe(&config)
    }

    #[test]
    fn reconciliation_credentials_are_masked() {
        let text = described(&[
            ("STRIPE_API_KEY", "sk_test_keyvalue"),
            ("PAYPAL_CLIENT_ID", "client-id-1"),
            ("PAYPAL_CLIENT_SECRET", "client-secret-value"),
            ("PAYPAL_ENVIRONMENT", "sandbox"),
            ("PAYHOOK_RECONCILE_AFTER", "90s"),
        ]);
        assert!(!text.contains("sk_test_keyvalue"), "{text}");
        assert!(!text.contains("client-secret-value"), "{text}");
        for expected in [
            "STRIPE_API_KEY                       = [set, redacted]",
            "PAYHOOK_STRIPE_API_BASE              = https://api.stripe.com",
            "PAYPAL_CLIENT_ID                     = client-id-1",
            "PAYPAL_CLIENT_SECRET                 = [set, redacted]",
            "PAYHOOK_PAYPAL_API_BASE              = https://api-m.sandbox.paypal.com",
            "reconciled gateways                  = stripe, paypal",
            "PAYHOOK_RECONCILE_AFTER              = 90s",
            "PAYHOOK_RECONCILE_INTERVAL           = 5m",
            "PAYHOOK_RECONCILE_BATCH              = 100",
        ] {
            assert!(text.contains(expected), "{expected} not in {text}");
        }
    }

    #[test]
    fn reconciliation_shows_as_off_without_credentials() {
        let text = described(&[]);
        assert!(
            text.contains("reconciled gateways                  = (none: reconciliation is off)"),
            "{text}"
        );
        assert!(text.contains("STRIPE_API_KEY                       = (unset)"));
    }

    #[test]
    fn durations_print_in_their_largest_whole_unit() {
        use std::time::Duration;
        assert_eq!(crate::config::format_duration(Duration::ZERO), "0s");
        assert_eq!(
            crate::config::format_duration(Duration::from_millis(1500)),
            "1500ms"
        );
        assert_eq!(
            crate::config::format_duration(Duration::from_secs(90)),
            "90s"
        );
        assert_eq!(
            crate::config::format_duration(Duration::from_secs(900)),
            "15m"
        );
        assert_eq!(
            crate::config::format_duration(Duration::from_secs(7200)),
            "2h"
        );
    }
}
