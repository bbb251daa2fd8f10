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
    line(
        "PAYHOOK_RETENTION_DAYS",
        &config.retention_days.map_or_else(
            || "off (nothing is pruned)".to_owned(),
            |days| days.to_string(),
        ),
    );
    line(
        "PAYHOOK_PRUNE_INTERVAL",
        &crate::pruner::format_period(config.prune_interval),
    );
    out
}

/// Builds every configured adapter, so an unusable secret or certificate is
/// reported now rather than at the first webhook.
pub fn validate(config: &Config) -> anyhow::Result<()> {
    Gateways::from_config(config)?;
    Ok(())
}
