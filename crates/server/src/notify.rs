//! The notifiers: an HTTP callback signed with the Standard Webhooks
//! scheme, and the default that only logs.
//!
//! The callback is `POST <PAYHOOK_NOTIFY_URL>` with the notification's JSON
//! body and three headers: `webhook-id` (the same on every retry of one
//! notification), `webhook-timestamp` (Unix seconds of this attempt) and
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`
//! keyed with the base64-decoded part of `whsec_<base64>`. Any Standard
//! Webhooks library verifies it.

use std::time::Duration;

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use payhook_domain::ports::Notifier;
use payhook_domain::{NotifyError, OutboxMessage};
use ring::hmac;

use crate::config::NotifyCallback;

/// The `v1` Standard Webhooks signature of `body` sent as message `id` at
/// `timestamp`, keyed with `key` (the decoded secret).
pub fn standard_webhooks_signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut context = hmac::Context::with_key(&key);
    context.update(format!("{id}.{timestamp}.").as_bytes());
    context.update(body);
    format!("v1,{}", BASE64.encode(context.sign().as_ref()))
}

/// POSTs each notification to the shop, signed.
pub struct HttpNotifier {
    client: awc::Client,
    url: String,
    key: Vec<u8>,
}

impl std::fmt::Debug for HttpNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpNotifier")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl HttpNotifier {
    /// A notifier for `callback`, giving each call `timeout` to answer.
    /// Must be created on the thread that will run it (awc is thread-bound).
    pub fn new(callback: &NotifyCallback, timeout: Duration) -> Self {
        // rustls needs a process-wide crypto provider for https:// calls;
        // ring is the one payhook already uses. A second install (a second
        // notifier, tests) finds it there, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = awc::Client::builder()
            .timeout(timeout)
            .disable_redirects()
            .add_default_header(("User-Agent", concat!("payhook/", env!("CARGO_PKG_VERSION"))))
            .finish();
        // Validated when the configuration was read.
        let key = BASE64.decode(callback.key.expose()).unwrap_or_default();
        Self {
            client,
            url: callback.url.clone(),
            key,
        }
    }
}

#[async_trait(?Send)]
impl Notifier for HttpNotifier {
    async fn deliver(&self, message: &OutboxMessage) -> Result<(), NotifyError> {
        let body = message.body();
        let id = message.webhook_id();
        let timestamp = chrono::Utc::now().timestamp();
        let signature = standard_webhooks_signature(&self.key, &id, timestamp, body.as_bytes());
        let sent = self
            .client
            .post(&self.url)
            .insert_header(("webhook-id", id))
            .insert_header(("webhook-timestamp", timestamp.to_string()))
            .insert_header(("webhook-signature", signature))
            .content_type("application/json")
            .send_body(body)
            .await;
        match sent {
            Ok(mut response) => {
                // Read (a bounded part of) the answer so the connection can be reused.
                let _ = response.body().limit(64 * 1024).await;
                if response.status().is_success() {
                    Ok(())
                } else {
                    Err(NotifyError::Rejected {
                        status: response.status().as_u16(),
                    })
                }
            }
            Err(awc::error::SendRequestError::Timeout) => Err(NotifyError::Timeout),
            Err(awc::error::SendRequestError::Connect(error)) => {
                Err(NotifyError::Unreachable(error.to_string()))
            }
            Err(other) => Err(NotifyError::Other(other.to_string())),
        }
    }
}

/// The default without `PAYHOOK_NOTIFY_URL`: logs the notification (kind
/// and ids, never a secret) and counts it as delivered.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogNotifier;

#[async_trait(?Send)]
impl Notifier for LogNotifier {
    async fn deliver(&self, message: &OutboxMessage) -> Result<(), NotifyError> {
        tracing::info!(
            notification = message.id,
            kind = message.kind.as_str(),
            order_id = message.order_id.0,
            payment_id = message.payment_id.0,
            "notification (PAYHOOK_NOTIFY_URL unset: logged, marked delivered)"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_standard_webhooks_test_vector() {
        // The example of the Standard Webhooks specification's libraries.
        let key = BASE64.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signature = standard_webhooks_signature(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
